"""Uploaded documents and web pages as structured text: headed sections of paragraphs, ready for chunking.

Pure and synchronous (no database, no network): the caller runs `extract` in a worker thread. Each format is
read by its library (pypdfium2, python-docx, trafilatura, markdown-it-py); this module only turns what they
give into `Section`s and turns their failures into a `DocumentError` whose `code` the UI translates.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import io
import itertools
import logging
import re
import statistics
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PureWindowsPath
from typing import Any

import docx
import lxml.html
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import trafilatura
from docx.styles.style import CharacterStyle
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml import etree
from markdown_it import MarkdownIt
from markdown_it.token import Token
from trafilatura.utils import load_html

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".pdf", ".docx", ".html", ".htm", ".md", ".markdown", ".txt")

_MESSAGES = {
    "too_large": "the file is larger than {limit_mb:g} MB",
    "unsupported_type": "files of type '{suffix}' are not supported",
    "unreadable": "the {kind} file cannot be read: it is damaged or not really a {kind} file",
    "encrypted": "the document is encrypted (password-protected)",
    "no_text": "the {kind} has no text layer: it looks like a scan, so its text must be recognised (OCR) first",
    "too_many_pages": "the document has more than {limit} pages",
    "zip_bomb": "the file unpacks to more than {limit_mb:g} MB",
    "not_utf8": "the text is not in UTF-8",
    "empty": "the document has no text",
}


class DocumentError(Exception):
    """A document that cannot be read; `code` is stable (the UI translates it), `params` fill the message."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params

    def __str__(self) -> str:
        template = _MESSAGES.get(self.code, self.code)
        try:
            return template.format(**self.params)
        except (KeyError, IndexError, ValueError):  # raised without the params its message needs
            return f"{self.code} {self.params}" if self.params else self.code


@dataclass(frozen=True)
class DocumentLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pages: int = 1000  # PDF pages
    max_unpacked_bytes: int = 100 * 1024 * 1024  # a .docx's unzipped size (zip bombs)


@dataclass(frozen=True)
class Section:
    heading_path: tuple[str, ...]  # e.g. ("Delivery", "Prices"); () before any heading
    text: str  # paragraphs separated by "\n\n"; normalised whitespace inside paragraphs
    page: int | None = None  # 1-based PDF page; None elsewhere


@dataclass(frozen=True)
class ExtractedDocument:
    title: str
    sections: list[Section]
    pages: int | None = None  # PDF page count


def extract(filename: str, data: bytes, limits: DocumentLimits = DocumentLimits()) -> ExtractedDocument:
    """By the file's suffix; raises DocumentError. Checks the size first."""
    if len(data) > limits.max_bytes:
        raise DocumentError("too_large", limit_mb=_megabytes(limits.max_bytes))
    # Windows paths arrive from browsers now and then; PureWindowsPath splits on both kinds of slash
    name = PureWindowsPath(filename)
    suffix = name.suffix.lower()
    if suffix not in _READERS:
        raise DocumentError("unsupported_type", suffix=suffix)
    kind, read = _READERS[suffix]
    with _library_errors(kind):
        document = read(data, name.stem, limits)
    if not document.sections:  # sections are never empty: one with no text is no section
        raise DocumentError("empty")
    return document


def extract_html(html: str, url: str = "", fallback_title: str = "") -> ExtractedDocument:
    """A web page's main content (trafilatura), with headings kept as the heading path."""
    with _library_errors("HTML"):
        tree = load_html(html) if html.strip() else None  # trafilatura logs an empty page as an ERROR
        if tree is None:
            raise DocumentError("empty")
        result = trafilatura.extract_with_metadata(tree, url=url or None, output_format="xml", include_comments=False,
                                                   include_tables=True, prune_xpath=_PERMALINKS)
        if result is None or not result.text:
            raise DocumentError("empty")
        root = etree.fromstring(result.text, etree.XMLParser(resolve_entities=False, no_network=True))
        sections = _Sections()
        for main in root.iterchildren("main"):
            _walk_xml(main, sections)
        # the page's <title> before trafilatura's guess, which passes over any title with a dot in it
        # ("Underscore.js") for the first <h1> or even <h2>
        title = _clean(tree.xpath("string(//head/title)")) or _clean(result.title or "")
    found = sections.finish()
    if not found:
        raise DocumentError("empty")
    return ExtractedDocument(title=title or fallback_title, sections=found)


@contextlib.contextmanager
def _library_errors(kind: str) -> Iterator[None]:
    """Parsers of untrusted files fail in ways their documentation does not list (python-docx alone lets
    KeyError, ValueError and lxml errors through; a deeply nested file gives RecursionError), so whatever
    escapes the narrow handlers becomes "unreadable" instead of a crash of the upload."""
    try:
        yield
    except DocumentError:
        raise
    except Exception as error:
        log.warning("a %s file could not be read", kind, exc_info=True)
        raise DocumentError("unreadable", kind=kind) from error


def _megabytes(size: int) -> float:
    return round(size / (1024 * 1024), 2)


# -- text clean-up and the section builder shared by every format ------------------------------------------

_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f\u00ad\ufffe\uffff]")  # control chars, soft hyphens


def _clean(text: str) -> str:
    return " ".join(_INVISIBLE.sub("", text).split())


def _clean_lines(text: str) -> str:
    """For preformatted text (code): its line breaks are kept, as they are what separates its statements."""
    return "\n".join(line for line in map(_clean, text.splitlines()) if line)


class _Sections:
    """Collects paragraphs under the current heading path (and PDF page) and starts a section on each change."""

    def __init__(self) -> None:
        self.found: list[Section] = []
        self._levels: list[tuple[int, str]] = []  # the open headings, outermost first
        self._path: tuple[str, ...] = ()
        self._page: int | None = None
        self._paragraphs: list[str] = []

    def heading(self, level: int, text: str) -> None:
        title = _clean(text)
        if not title:
            return
        while self._levels and self._levels[-1][0] >= level:
            self._levels.pop()
        self._levels.append((level, title))
        self.move_to(tuple(title for _, title in self._levels), self._page)

    def move_to(self, path: tuple[str, ...], page: int | None) -> None:
        if (path, page) != (self._path, self._page):
            self._flush()
            self._path, self._page = path, page

    def paragraph(self, text: str, *, keep_lines: bool = False) -> None:
        cleaned = _clean_lines(text) if keep_lines else _clean(text)
        if cleaned:
            self._paragraphs.append(cleaned)

    def finish(self) -> list[Section]:
        self._flush()
        return self.found

    def _flush(self) -> None:
        if self._paragraphs:
            self.found.append(Section(self._path, "\n\n".join(self._paragraphs), self._page))
            self._paragraphs = []


# -- PDF -------------------------------------------------------------------------------------------------

# PDFium is not thread-safe, not even across different documents (pypdfium2's docs: concurrent calls "crash or
# corrupt the process"), and the caller runs us in a thread pool: every PDFium call happens under this lock.
_PDFIUM_LOCK = threading.Lock()
_MIN_CHARS_PER_PAGE = 40  # below this a PDF is a scan: page numbers or "Scanned with ..." stamps are no text
_BULLET = re.compile(r"^(?:[•●▪◦‣∙·\-–—*]|\d{1,3}[.)])\s")
_RUNNING_PAGES = 3  # a short line at the top or bottom of this many pages is a running header or footer
_DIGITS = re.compile(r"\d+")
_NUMBERING = re.compile(r"^(?:\d+(?:\.\d+)*\.?|[IVXLC]+\.|[A-Z]\.)\s+")


@dataclass
class _Line:
    text: str
    left: float
    bottom: float
    right: float
    top: float
    size: float  # the rendered font size of its first letter

    @property
    def height(self) -> float:
        return self.top - self.bottom


@dataclass(frozen=True)
class _Paragraph:
    text: str
    bottom: float  # of its first line, which is where a bookmark to it points at the lowest
    lines: int


def _read_pdf(data: bytes, fallback_title: str, limits: DocumentLimits) -> ExtractedDocument:
    with _PDFIUM_LOCK:
        pdf = _open_pdf(data)
        try:
            return _read_open_pdf(pdf, fallback_title, limits)
        finally:
            pdf.close()  # closes its pages and text pages too, while the lock is still held


def _open_pdf(data: bytes) -> Any:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        if error.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise DocumentError("encrypted") from error
        raise DocumentError("unreadable", kind="PDF") from error


def _read_open_pdf(pdf: Any, fallback_title: str, limits: DocumentLimits) -> ExtractedDocument:
    pages = len(pdf)
    if pages > limits.max_pages:
        raise DocumentError("too_many_pages", limit=limits.max_pages)
    page_lines = [_page_lines(pdf, index) for index in range(pages)]
    layout = _Layout.of([line for lines in page_lines for line in lines])
    page_paragraphs = [_paragraphs(lines, layout) for lines in page_lines]
    running = _running(page_paragraphs)
    outline = _Outline(pdf)
    sections = _Sections()
    characters = 0
    for index, paragraphs in enumerate(page_paragraphs):
        for paragraph in _without_running(paragraphs, running):
            path = outline.path_at(index, paragraph.bottom)
            characters += len(paragraph.text.replace(" ", ""))
            sections.move_to(path, index + 1)
            if not path or _unnumbered(paragraph.text) != _unnumbered(path[-1]):  # else the heading's own line
                sections.paragraph(paragraph.text)
    if characters < _MIN_CHARS_PER_PAGE * pages:
        raise DocumentError("no_text", kind="PDF")
    title = _clean(pdf.get_metadata_value("Title")) or fallback_title
    return ExtractedDocument(title=title, sections=sections.finish(), pages=pages)


def _page_lines(pdf: Any, index: int) -> list[_Line]:
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            return _lines(textpage)
        finally:
            textpage.close()
    finally:
        page.close()  # a 1000-page PDF would otherwise keep every page open until the document closes


def _lines(textpage: Any) -> list[_Line]:
    """PDFium knows text rectangles (runs of text on one line), not lines or paragraphs: rectangles that share
    a baseline make a line."""
    lines: list[_Line] = []
    for index in range(textpage.count_rects()):
        left, bottom, right, top = textpage.get_rect(index)
        text = _clean(textpage.get_text_bounded(left, bottom, right, top))
        if not text:
            continue
        last = lines[-1] if lines else None
        if last and min(last.top, top) - max(last.bottom, bottom) > 0.5 * min(last.height, top - bottom):
            last.text = f"{last.text} {text}"
            last.left, last.right = min(last.left, left), max(last.right, right)
            last.bottom, last.top = min(last.bottom, bottom), max(last.top, top)
        else:
            lines.append(_Line(text, left, bottom, right, top, _font_size(textpage, left, bottom, top)))
    return lines


def _font_size(textpage: Any, left: float, bottom: float, top: float) -> float:
    """The height of the first letter's loose box (the font's full height). Not the rectangle's: that follows
    the glyphs ("Prices" has no descender). Not FPDFText_GetFontSize: it says 1 for text scaled by its matrix,
    as some producers write all text. Not a bracket's or a bullet's: they often come from another font."""
    first = textpage.get_index(left + 0.5, (bottom + top) / 2, 2, 2)
    if first is None:
        return top - bottom
    following = range(first, min(first + 8, textpage.count_chars()))
    letter = next((index for index in following if chr(pdfium_c.FPDFText_GetUnicode(textpage, index)).isalnum()), first)
    _, box_bottom, _, box_top = textpage.get_charbox(letter, loose=True)
    return float(box_top - box_bottom)


def _unnumbered(heading: str) -> str:
    return _NUMBERING.sub("", heading).casefold()  # the line says "2.1 Prices", its bookmark "Prices"


def _edge_key(paragraph: _Paragraph) -> tuple[str, int]:
    """The line's text ("Page 3 of 9" and "Page 4 of 9" alike) and height on the page: furniture stays put, while
    a short line of the text that recurs on a few pages moves with the text above it."""
    return _DIGITS.sub("#", paragraph.text.casefold()), round(paragraph.bottom / 6)


def _edges(paragraphs: list[_Paragraph]) -> list[_Paragraph]:
    """Where running headers and footers are: two paragraphs at the top, two at the bottom, of one short line."""
    return [paragraph for paragraph in paragraphs[:2] + paragraphs[2:][-2:]
            if paragraph.lines == 1 and len(paragraph.text.split()) <= 12]


def _running(page_paragraphs: list[list[_Paragraph]]) -> set[tuple[str, int]]:
    """Running headers, footers and page numbers: the same short line at the top or bottom of several pages.
    Furniture, which would otherwise open every page's chunk."""
    pages_with: dict[tuple[str, int], int] = {}
    for paragraphs in page_paragraphs:
        for key in {_edge_key(paragraph) for paragraph in _edges(paragraphs)}:
            pages_with[key] = pages_with.get(key, 0) + 1
    return {key for key, count in pages_with.items() if count >= _RUNNING_PAGES}


def _without_running(paragraphs: list[_Paragraph], running: set[tuple[str, int]]) -> list[_Paragraph]:
    furniture = {id(paragraph) for paragraph in _edges(paragraphs) if _edge_key(paragraph) in running}
    return [paragraph for paragraph in paragraphs if id(paragraph) not in furniture]


def _paragraphs(lines: list[_Line], layout: _Layout) -> list[_Paragraph]:
    if not lines:
        return []
    paragraphs: list[list[_Line]] = [[lines[0]]]
    for above, below in itertools.pairwise(lines):
        if layout.breaks(above, below):
            paragraphs.append([])
        paragraphs[-1].append(below)
    return [_Paragraph(" ".join(line.text for line in group), group[0].bottom, len(group)) for group in paragraphs]


@dataclass(frozen=True)
class _Layout:
    """What is usual in the document, against which the end of a paragraph stands out. Measured over all pages:
    one page has too few lines to tell line spacing from paragraph spacing."""

    line_height: float
    widest_gap: float
    left: float
    width: float

    @classmethod
    def of(cls, lines: list[_Line]) -> _Layout:
        if not lines:
            return cls(0.0, 0.0, 0.0, 0.0)
        line_height = statistics.median(line.height for line in lines)
        gaps = sorted(gap for above, below in itertools.pairwise(lines) if (gap := above.bottom - below.top) >= 0)
        # The lower quartile, as lists and one-line paragraphs can make paragraph gaps the most common ones; and
        # at most what double line spacing leaves, for documents with too few lines to tell.
        usual_gap = min(gaps[len(gaps) // 4] if gaps else 0.0, 0.8 * line_height)
        left, right = min(line.left for line in lines), max(line.right for line in lines)
        return cls(line_height, max(usual_gap * 1.8, usual_gap + 0.4 * line_height), left, right - left)

    def breaks(self, above: _Line, below: _Line) -> bool:
        gap = above.bottom - below.top
        return (gap > self.widest_gap or gap < -0.5 * self.line_height  # a blank line; a jump up to a new column
                or abs(above.size - below.size) > 0.1 * max(above.size, below.size)  # a heading's font
                or (above.right < self.left + 0.7 * self.width and above.text[-1] in ".!?:…")  # a short last line
                or bool(_BULLET.match(below.text)))


class _Outline:
    """The PDF's bookmarks as heading paths: a paragraph is under the last bookmark that points above it."""

    def __init__(self, pdf: Any) -> None:
        marks: list[tuple[tuple[int, float], tuple[str, ...]]] = []
        stack: list[str] = []
        for bookmark in pdf.get_toc():
            del stack[bookmark.level:]
            stack.append(_clean(bookmark.get_title()))
            dest = bookmark.get_dest()
            page = dest.get_index() if dest is not None else None
            if page is not None:
                marks.append(((page, -_dest_top(dest)), tuple(title for title in stack if title)))
        marks.sort(key=lambda mark: mark[0])
        self._keys = [key for key, _ in marks]
        self._paths = [path for _, path in marks]

    def path_at(self, page: int, y: float) -> tuple[str, ...]:
        """Bookmarks point at the top of their heading, or at its baseline (some producers): either is above
        the bottom of the heading's line, and below the lines before it."""
        found = bisect.bisect_right(self._keys, (page, -(y - 1.0)))
        return self._paths[found - 1] if found else ()


def _dest_top(dest: Any) -> float:
    """How high on its page a bookmark points; the top of the page when the destination does not say."""
    mode, position = dest.get_view()
    tops = {pdfium_c.PDFDEST_VIEW_XYZ: 1, pdfium_c.PDFDEST_VIEW_FITH: 0, pdfium_c.PDFDEST_VIEW_FITBH: 0,
            pdfium_c.PDFDEST_VIEW_FITR: 3}
    at = tops.get(mode)
    top = float(position[at]) if at is not None and at < len(position) else 0.0
    return top if top > 0 else float("inf")  # 0 is how PDFium reports "unchanged" (null) coordinates


# -- Word ------------------------------------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"heading\s*([1-9])", re.IGNORECASE)


def _read_docx(data: bytes, fallback_title: str, limits: DocumentLimits) -> ExtractedDocument:
    _check_unpacked_size(data, limits)
    document = docx.Document(io.BytesIO(data))
    sections = _Sections()
    title = _clean(document.core_properties.title or "")
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in _table_rows(block):
                sections.paragraph(row)
            continue
        level = _heading_level(block)
        if level is None:
            sections.paragraph(block.text)
        else:
            sections.heading(level, block.text)
            title = title or (_clean(block.text) if level == 0 else "")  # Word's own "Title" style
    return ExtractedDocument(title=title or fallback_title, sections=sections.finish())


def _check_unpacked_size(data: bytes, limits: DocumentLimits) -> None:
    """Before python-docx inflates anything. The sizes are the archive's own claims, but zipfile never inflates a
    member beyond its claimed size (it stops there and fails the CRC check), so a lie cannot get past this."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as error:
        raise DocumentError("unreadable", kind="Word") from error
    if unpacked > limits.max_unpacked_bytes:
        raise DocumentError("zip_bomb", limit_mb=_megabytes(limits.max_unpacked_bytes))


def _heading_level(paragraph: Paragraph) -> int | None:
    """0 for "Title", n for "Heading n", also for a custom style based on one of them."""
    style: CharacterStyle | None = paragraph.style
    for _ in range(5):  # a short walk up the base styles; style chains can loop in hand-made files
        if style is None:
            return None
        name = (style.name or "").strip()
        if name.casefold() == "title":
            return 0
        if match := _HEADING_STYLE.fullmatch(name):
            return int(match.group(1))
        style = style.base_style
    return None


def _table_rows(table: Table) -> Iterator[str]:
    """A row per paragraph, its cells joined, so a price stays next to what it is the price of."""
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell is not previous:  # python-docx repeats the same object for a merged (spanning) cell
                cells.append(_clean(cell.text))
            previous = cell
        if any(cells):
            yield " | ".join(text for text in cells if text)


# -- HTML ------------------------------------------------------------------------------------------------

# the "¶" or "#" links beside headings (Sphinx, MkDocs, GitHub), which would end up in the heading path
_PERMALINKS = "//a[normalize-space(.)='¶' or normalize-space(.)='#' or normalize-space(.)='§']"
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([-\w.:]+)""", re.IGNORECASE)


def _read_html(data: bytes, fallback_title: str, limits: DocumentLimits) -> ExtractedDocument:
    return extract_html(_decode_html(data), fallback_title=fallback_title)


def _decode_html(data: bytes) -> str:
    """UTF-8, or the charset the page declares in a <meta> tag (older pages saved as windows-1251 and such)."""
    with contextlib.suppress(UnicodeDecodeError):
        return data.decode("utf-8-sig")
    declared = _META_CHARSET.search(data[:4096])
    if declared:
        with contextlib.suppress(LookupError, UnicodeDecodeError):  # an unknown name, or not a text encoding
            return data.decode(codecs.lookup(declared.group(1).decode("ascii")).name, errors="replace")
    raise DocumentError("not_utf8")


def _walk_xml(container: Any, sections: _Sections) -> None:
    """trafilatura's XML: <head rend="h2">, <p>, <list><item>, <table><row><cell>, <quote>, <code>."""
    sections.paragraph(container.text or "")
    for element in container:
        _xml_block(element, sections)
        sections.paragraph(element.tail or "")


def _xml_block(element: Any, sections: _Sections) -> None:
    tag = element.tag
    if tag == "head":
        rend = element.get("rend", "")
        sections.heading(int(rend[1]) if re.fullmatch(r"h[1-6]", rend) else 6, _xml_text(element))
    elif tag == "table":
        for row in element.iterchildren("row"):
            cells = (_clean(_xml_text(cell)) for cell in row.iterchildren("cell"))
            sections.paragraph(" | ".join(text for text in cells if text))
    elif tag in ("list", "quote", "div"):
        _walk_xml(element, sections)
    elif tag == "code":
        sections.paragraph(_xml_text(element), keep_lines=True)
    else:  # p, item and anything newer
        sections.paragraph(_xml_text(element))
        for nested in element.iterchildren("list", "table"):
            _xml_block(nested, sections)


def _xml_text(element: Any) -> str:
    """An element's text without its nested lists and tables (they become paragraphs of their own)."""
    parts = [element.text or ""]
    for child in element:
        if child.tag == "lb":
            parts.append("\n")
        elif child.tag not in ("list", "table"):
            parts.append(_xml_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


# -- Markdown and plain text -----------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---\r?\n.*?\r?\n---[ \t]*\r?\n", re.DOTALL)  # YAML metadata, not content
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


def _decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DocumentError("not_utf8") from error


def _read_markdown(data: bytes, fallback_title: str, limits: DocumentLimits) -> ExtractedDocument:
    source = _FRONT_MATTER.sub("", _decode_utf8(data), count=1)
    sections = _Sections()
    title = ""
    level: int | None = None  # set between heading_open and its inline token
    row: list[str] | None = None  # the cells of the table row being read
    for token in MarkdownIt("commonmark").enable("table").parse(source):
        if token.type == "heading_open":
            level = int(token.tag[1:])
        elif token.type == "inline" and level is not None:
            heading = _clean(_markdown_text(token))
            sections.heading(level, heading)
            title = title or (heading if level == 1 else "")
            level = None
        elif token.type == "inline" and row is not None:
            row.append(_clean(_markdown_text(token)))
        elif token.type == "inline":
            sections.paragraph(_markdown_text(token))
        elif token.type in ("fence", "code_block"):
            sections.paragraph(token.content, keep_lines=True)
        elif token.type == "html_block":
            sections.paragraph(_html_fragment_text(token.content))
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row is not None:
            sections.paragraph(" | ".join(cell for cell in row if cell))
            row = None
    return ExtractedDocument(title=title or fallback_title, sections=sections.finish())


def _markdown_text(token: Token) -> str:
    """Inline Markdown without its syntax: text, code spans and image descriptions; emphasis and links unwrapped."""
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline", "image"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
    return "".join(parts)


def _html_fragment_text(html: str) -> str:
    """The text of raw HTML in Markdown (a <details> answer, say); its elements' texts apart, as blocks are."""
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except etree.ParserError:  # nothing but a doctype or the like
        return ""
    for element in root.xpath("//script|//style"):
        element.drop_tree()
    return " ".join(root.itertext())


def _read_text(data: bytes, fallback_title: str, limits: DocumentLimits) -> ExtractedDocument:
    sections = _Sections()
    for paragraph in _BLANK_LINE.split(_decode_utf8(data)):
        sections.paragraph(paragraph)
    return ExtractedDocument(title=fallback_title, sections=sections.finish())


_Reader = Callable[[bytes, str, DocumentLimits], ExtractedDocument]
_READERS: dict[str, tuple[str, _Reader]] = {
    ".pdf": ("PDF", _read_pdf),
    ".docx": ("Word", _read_docx),
    ".html": ("HTML", _read_html),
    ".htm": ("HTML", _read_html),
    ".md": ("Markdown", _read_markdown),
    ".markdown": ("Markdown", _read_markdown),
    ".txt": ("text", _read_text),
}
