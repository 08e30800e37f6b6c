"""Documents staff upload become headed sections of text, and sections become chunks for retrieval.

Every file here is made in the test by a real writer (fpdf2, python-docx, zipfile) and read by the real
libraries; nothing is mocked.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docx
import pytest
from docx.document import Document as WordDocument
from fpdf import FPDF
from PIL import Image

from services.chunking import TINY_WORDS, Chunk, chunk_sections
from services.documents import DocumentError, DocumentLimits, Section, extract, extract_html

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
# Cyrillic in a PDF needs a Unicode TrueType font; without DejaVu (Debian's fonts-dejavu-core) fpdf2's built-in
# fonts only write Latin-1, and the PDF tests fall back to Latin text.
CYRILLIC = DEJAVU.exists()
RUSSIAN = ("Доставка по Ташкенту занимает один день, а по области два дня. Курьер звонит за час до приезда "
           "и ждёт у входа не больше пятнадцати минут." if CYRILLIC else
           "Delivery in Tashkent takes one day and two days in the regions. The courier calls an hour before "
           "arriving and waits at the door for no more than fifteen minutes.")
UZBEK = ("Yetkazib berish bepul, agar buyurtma besh yuz ming so'mdan oshsa. Buyurtmani telefon orqali yoki "
         "saytda berish mumkin, to'lov naqd yoki karta bilan qabul qilinadi.")


def _new_pdf(title: str = "") -> FPDF:
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    if CYRILLIC:
        pdf.add_font("DejaVu", fname=str(DEJAVU))
        pdf.set_font("DejaVu", size=12)
    else:
        pdf.set_font("helvetica", size=12)
    return pdf


def _write(pdf: FPDF, text: str, size: int = 12) -> None:
    """A paragraph: wrapped lines, then a gap as wide as a blank line."""
    pdf.set_font_size(size)
    pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)


def _three_page_pdf() -> bytes:
    pdf = _new_pdf(title="Price list")
    for page in range(1, 4):
        pdf.add_page()
        _write(pdf, f"Page {page}. {RUSSIAN}")
        _write(pdf, f"Paragraph two of page {page}. {UZBEK}")
    return bytes(pdf.output())


def _error(filename: str, data: bytes, limits: DocumentLimits | None = None) -> DocumentError:
    with pytest.raises(DocumentError) as raised:
        extract(filename, data, limits or DocumentLimits())
    return raised.value


def _docx_bytes(document: WordDocument) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# -- PDF ----------------------------------------------------------------------------------------------------

def test_pdf_text_is_read_page_by_page_with_its_paragraphs() -> None:
    document = extract("prices.pdf", _three_page_pdf())

    assert document.title == "Price list"
    assert document.pages == 3
    assert [section.page for section in document.sections] == [1, 2, 3]
    for page, section in enumerate(document.sections, start=1):
        assert section.heading_path == ()
        assert section.text.split("\n\n") == [f"Page {page}. {RUSSIAN}", f"Paragraph two of page {page}. {UZBEK}"]


def test_pdf_bookmarks_become_heading_paths_even_within_a_page() -> None:
    pdf = _new_pdf()
    pdf.add_page()
    _write(pdf, "Welcome to the Sunrise Hotel, open all year round.")
    pdf.start_section("Delivery", level=0)
    _write(pdf, "Delivery", size=16)
    _write(pdf, "We deliver meals to every room until midnight.")
    pdf.start_section("Prices", level=1)
    _write(pdf, "1.1 Prices", size=14)  # numbered on the page, not in the bookmark
    _write(pdf, "A delivery costs five dollars.")
    pdf.add_page()
    _write(pdf, "Delivery is free for suites.")
    pdf.start_section("Returns", level=0)
    _write(pdf, "Returns", size=16)
    _write(pdf, "Unopened goods can be returned within two weeks.")

    document = extract("guide.pdf", bytes(pdf.output()))

    assert [(section.heading_path, section.page, section.text) for section in document.sections] == [
        ((), 1, "Welcome to the Sunrise Hotel, open all year round."),
        (("Delivery",), 1, "We deliver meals to every room until midnight."),
        (("Delivery", "Prices"), 1, "A delivery costs five dollars."),
        (("Delivery", "Prices"), 2, "Delivery is free for suites."),
        (("Returns",), 2, "Unopened goods can be returned within two weeks."),
    ]
    assert document.title == "guide"  # no title in the PDF's metadata: the file's name


def test_pdf_running_headers_footers_and_page_numbers_are_left_out() -> None:
    pdf = _new_pdf()
    pdf.set_auto_page_break(auto=False)  # the footer is written into the bottom margin
    for page in range(1, 5):
        pdf.add_page()
        _write(pdf, "Sunrise Hotel: guest guide", size=9)
        _write(pdf, f"Rule {page}. {RUSSIAN * page}")
        _write(pdf, "Ask the front desk.")  # a short line on every page too, but lower the longer the rule
        pdf.set_y(-20)
        _write(pdf, f"Page {page} of 4", size=9)

    document = extract("rules.pdf", bytes(pdf.output()))

    assert [section.text for section in document.sections] == [
        f"Rule {page}. {RUSSIAN * page}\n\nAsk the front desk." for page in range(1, 5)]


def test_encrypted_pdf_is_refused_with_its_reason() -> None:
    pdf = _new_pdf()
    pdf.set_encryption(owner_password="owner-secret", user_password="guest-secret")
    pdf.add_page()
    _write(pdf, RUSSIAN)

    error = _error("locked.pdf", bytes(pdf.output()))

    assert error.code == "encrypted"
    assert "encrypted" in str(error)


def test_scanned_pdf_without_a_text_layer_is_refused_as_a_scan() -> None:
    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.image(Image.new("L", (400, 560), color=200), x=10, y=10, w=190)
        pdf.set_fill_color(40, 40, 40)
        pdf.rect(30, 40, 150, 8, style="F")  # what a scanned line of text is to a PDF: shapes, no characters

    error = _error("scan.pdf", bytes(pdf.output()))

    assert (error.code, error.params) == ("no_text", {"kind": "PDF"})
    assert "scan" in str(error)


def test_random_bytes_named_pdf_are_unreadable() -> None:
    error = _error("invoice.pdf", b"%PDF-1.7\n" + os.urandom(4096))

    assert (error.code, error.params) == ("unreadable", {"kind": "PDF"})


def test_pdf_with_more_pages_than_the_limit_is_refused() -> None:
    error = _error("prices.pdf", _three_page_pdf(), DocumentLimits(max_pages=2))

    assert (error.code, error.params) == ("too_many_pages", {"limit": 2})


def test_pdfs_read_in_several_threads_at_once_come_out_whole() -> None:
    """PDFium is not thread-safe and the caller reads uploads in a thread pool: calls must take turns."""
    data = _three_page_pdf()
    expected = extract("prices.pdf", data)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: extract("prices.pdf", data), range(12)))

    assert results == [expected] * 12


# -- Word -----------------------------------------------------------------------------------------------------

def test_word_headings_paragraphs_and_tables_become_sections() -> None:
    document = docx.Document()
    document.core_properties.title = "Guest guide"
    document.add_paragraph("Welcome to the Sunrise Hotel.")
    document.add_heading("Delivery", level=1)
    document.add_paragraph("We deliver in Tashkent.")
    document.add_heading("Prices", level=2)
    document.add_paragraph("Prices depend on the district.")
    table = document.add_table(rows=4, cols=2)
    for row, cells in zip(table.rows, [("District", "Price"), ("Chilonzor", "20 000 so'm"), ("Yunusobod", "")],
                          strict=False):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    merged = table.rows[3].cells[0].merge(table.rows[3].cells[1])
    merged.text = "Free above 500 000 so'm"
    document.add_heading("Returns", level=1)
    document.add_paragraph("Возврат   в течение\t14 дней.")

    extracted = extract("guide.docx", _docx_bytes(document))

    assert extracted.title == "Guest guide"
    assert [(section.heading_path, section.text) for section in extracted.sections] == [
        ((), "Welcome to the Sunrise Hotel."),
        (("Delivery",), "We deliver in Tashkent."),
        (("Delivery", "Prices"), "Prices depend on the district.\n\nDistrict | Price\n\nChilonzor | 20 000 so'm"
                                 "\n\nYunusobod\n\nFree above 500 000 so'm"),
        (("Returns",), "Возврат в течение 14 дней."),
    ]
    assert all(section.page is None for section in extracted.sections)


def test_word_title_style_heads_the_paths_and_names_an_untitled_document() -> None:
    document = docx.Document()
    document.add_heading("Guest guide", level=0)
    document.add_paragraph("Read this before your stay.")
    document.add_heading("Breakfast", level=1)
    document.add_paragraph("Breakfast is served from seven to ten.")

    extracted = extract("guide.docx", _docx_bytes(document))

    assert extracted.title == "Guest guide"
    assert [section.heading_path for section in extracted.sections] == [("Guest guide",), ("Guest guide", "Breakfast")]


def test_zip_bomb_docx_is_refused_before_it_is_unpacked() -> None:
    buffer = io.BytesIO()
    zeros = bytes(1024 * 1024)
    # 200 MB of zeros, streamed (never in memory at once), at the fastest compression: under 1 MB on disk
    with (zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
          archive.open("word/document.xml", "w") as member):
        for _ in range(200):
            member.write(zeros)
    data = buffer.getvalue()
    assert len(data) < 1024 * 1024

    started = time.perf_counter()
    error = _error("bomb.docx", data)

    assert time.perf_counter() - started < 0.5
    assert (error.code, error.params) == ("zip_bomb", {"limit_mb": 100})
    assert str(error) == "the file unpacks to more than 100 MB"


def _zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize("data", [b"not a zip at all", b"PK\x03\x04" + bytes(64), _zip(notes=b"a zip, no Word")],
                         ids=["text", "broken-zip", "other-zip"])
def test_file_that_is_not_really_word_is_unreadable(data: bytes) -> None:
    error = _error("guide.docx", data)

    assert (error.code, error.params) == ("unreadable", {"kind": "Word"})


# -- limits and types -----------------------------------------------------------------------------------------

def test_file_over_the_size_limit_is_refused_before_it_is_read() -> None:
    error = _error("scan.pdf", os.urandom(1024 * 1024 + 1), DocumentLimits(max_bytes=1024 * 1024))

    assert (error.code, error.params) == ("too_large", {"limit_mb": 1})
    assert str(error) == "the file is larger than 1 MB"
    assert _error("big.txt", b"a " * 20, DocumentLimits(max_bytes=10)).code == "too_large"


@pytest.mark.parametrize("filename", ["photo.jpg", "README", "old.doc"])
def test_unknown_type_is_unsupported(filename: str) -> None:
    error = _error(filename, b"whatever")

    assert error.code == "unsupported_type"
    assert error.params == {"suffix": Path(filename).suffix}


@pytest.mark.parametrize(("filename", "data"), [("blank.txt", b" \n\n\t\n"), ("blank.md", b"# \n\n---\n"),
                                                 ("blank.docx", _docx_bytes(docx.Document()))])
def test_document_without_any_text_is_empty(filename: str, data: bytes) -> None:
    error = _error(filename, data)

    assert error.code == "empty"
    assert str(error) == "the document has no text"


# -- HTML -----------------------------------------------------------------------------------------------------

PAGE = """<!doctype html><html lang="en"><head><meta charset="{charset}"><title>Sunrise Hotel — Services</title></head>
<body>
<header><div class="logo">Sunrise Hotel</div>
  <nav><ul><li><a href="/">Home page</a></li><li><a href="/rooms">Our rooms</a></li>
    <li><a href="/contact">Contact us</a></li></ul></nav>
</header>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience. Accept all cookies?</div>
<main><article>
<h1>Our services</h1>
<p>The Sunrise Hotel offers a range of services to all guests, from airport transfers to laundry.</p>
<h2>Airport transfer</h2>
<p>We pick guests up at Tashkent airport at any hour. The transfer costs 20 dollars per car.</p>
<h3>Night arrivals</h3>
<p>Between midnight and six in the morning the transfer costs 30 dollars: the night tariff.</p>
<h2>Laundry<a class="headerlink" href="#laundry" title="Link to this heading">¶</a></h2>
<p>Laundry is collected every morning at nine and returned the same evening, ironed and folded.</p>
<ul><li>Shirt: 3 dollars</li><li>Suit: 10 dollars</li></ul>
<table><tr><th>Item</th><th>Price</th></tr><tr><td>Dress</td><td>8 dollars</td></tr></table>
<p>{extra}</p>
</article></main>
<footer><p>© 2024 Sunrise Hotel. All rights reserved. Privacy policy.</p></footer>
</body></html>"""


def test_web_page_keeps_the_article_under_its_headings_and_drops_navigation_and_footer() -> None:
    document = extract_html(PAGE.format(charset="utf-8", extra="Ask at the front desk."),
                            url="https://sunrise.example/services")

    assert [(section.heading_path, section.text) for section in document.sections] == [
        (("Our services",), "The Sunrise Hotel offers a range of services to all guests, from airport transfers "
                            "to laundry."),
        (("Our services", "Airport transfer"), "We pick guests up at Tashkent airport at any hour. The transfer "
                                               "costs 20 dollars per car."),
        (("Our services", "Airport transfer", "Night arrivals"), "Between midnight and six in the morning the "
                                                                 "transfer costs 30 dollars: the night tariff."),
        (("Our services", "Laundry"), "Laundry is collected every morning at nine and returned the same evening, "
                                      "ironed and folded.\n\nShirt: 3 dollars\n\nSuit: 10 dollars\n\n"
                                      "Item | Price\n\nDress | 8 dollars\n\nAsk at the front desk."),
    ]
    text = " ".join(section.text for section in document.sections)
    for boilerplate in ("Home page", "Our rooms", "Contact us", "cookies", "All rights reserved"):
        assert boilerplate not in text
    assert document.title == "Sunrise Hotel — Services"


def test_html_file_in_its_declared_charset_is_read_and_undeclared_latin1_is_refused() -> None:
    page = PAGE.format(charset="windows-1251", extra="Спросите на стойке регистрации.")

    document = extract("services.html", page.encode("cp1251"))

    assert document.sections[-1].text.endswith("Спросите на стойке регистрации.")
    latin1 = "<html><body><h2>Réception</h2><p>Demandez à la réception, ouverte jour et nuit.</p></body></html>"
    assert _error("services.htm", latin1.encode("latin-1")).code == "not_utf8"


def test_web_page_without_a_title_takes_the_callers_fallback() -> None:
    html = "<html><body><article><p>Breakfast is served from seven to ten in the garden.</p></article></body></html>"

    assert extract_html(html, url="https://sunrise.example/food").title == ""
    assert extract_html(html, url="https://sunrise.example/food", fallback_title="sunrise.example").title == (
        "sunrise.example")


def test_web_page_without_content_is_empty() -> None:
    with pytest.raises(DocumentError) as raised:
        extract_html("<html><head><title>Soon</title></head><body></body></html>")

    assert raised.value.code == "empty"


# -- Markdown and plain text --------------------------------------------------------------------------------

MARKDOWN = """---
title: front matter is metadata, not text
---
# Guest guide

Read this *before* your stay, or ask [the front desk](https://sunrise.example).

## Delivery

We deliver **every day**.

- Tashkent: one day
- Regions: two days

### Prices

| District | Price |
|----------|-------|
| Chilonzor | 20 000 |

```
order = {"district": "Chilonzor"}
send(order)
```

## Returns

Return   unopened goods
within 14 days.

<details><summary>Parking?</summary>Free for guests.</details>
"""


def test_markdown_nested_headings_build_the_path() -> None:
    document = extract("guide.md", MARKDOWN.encode())

    assert document.title == "Guest guide"
    assert [(section.heading_path, section.text) for section in document.sections] == [
        (("Guest guide",), "Read this before your stay, or ask the front desk."),
        (("Guest guide", "Delivery"), "We deliver every day.\n\nTashkent: one day\n\nRegions: two days"),
        (("Guest guide", "Delivery", "Prices"), 'District | Price\n\nChilonzor | 20 000\n\n'
                                                'order = {"district": "Chilonzor"}\nsend(order)'),
        (("Guest guide", "Returns"), "Return unopened goods within 14 days.\n\nParking? Free for guests."),
    ]


def test_utf8_text_is_split_into_paragraphs_at_blank_lines() -> None:
    data = "\ufeffНаш отель открыт\r\nкруглый год.\r\n\r\n\r\nMehmonxona   har kuni ochiq.\n".encode()

    document = extract("C:\\Users\\desk\\about hotel.txt", data)

    assert document.title == "about hotel"
    assert document.sections == [Section((), "Наш отель открыт круглый год.\n\nMehmonxona har kuni ochiq.")]


@pytest.mark.parametrize("filename", ["about.txt", "about.md"])
def test_text_that_is_not_utf8_is_refused(filename: str) -> None:
    error = _error(filename, "Le café est ouvert à 7 h.".encode("latin-1"))

    assert error.code == "not_utf8"
    assert str(error) == "the text is not in UTF-8"


def test_error_without_its_parameters_still_reads() -> None:
    assert str(DocumentError("too_large")) == "too_large"
    assert str(DocumentError("encrypted")) == "the document is encrypted (password-protected)"


# -- chunking -------------------------------------------------------------------------------------------------

def _numbered_sentences(count: int, start: int = 1) -> str:
    return " ".join(f"Sentence {number} tells the guest something useful." for number in range(start, start + count))


def _words(text: str) -> str:
    return " ".join(text.split())


def _sentences_of(chunk: Chunk) -> list[str]:
    return re.findall(r"Sentence \d+ tells the guest something useful\.", chunk.text)


def test_chunks_never_span_two_headings_or_two_pages_and_are_numbered_in_order() -> None:
    sections = [Section(("Delivery",), _numbered_sentences(40), page=1),
                Section(("Delivery",), _numbered_sentences(3, start=41), page=2),
                Section(("Delivery", "Prices"), "Five dollars.", page=2),
                Section(("Returns",), _numbered_sentences(25, start=44), page=2)]

    chunks = chunk_sections(sections, max_words=60, overlap_words=14)

    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        owners = [section for section in sections if _words(chunk.text) in _words(section.text)]
        assert [(owner.heading_path, owner.page) for owner in owners] == [(chunk.heading_path, chunk.page)]
    assert [(chunk.heading_path, chunk.page) for chunk in chunks].count((("Delivery", "Prices"), 2)) == 1


def test_long_section_is_split_into_chunks_that_overlap_by_whole_sentences() -> None:
    chunks = chunk_sections([Section(("Rooms",), _numbered_sentences(60))], max_words=60, overlap_words=14)

    assert len(chunks) > 5
    for before, after in itertools.pairwise(chunks):
        repeated = [sentence for sentence in _sentences_of(after) if sentence in _sentences_of(before)]
        assert repeated == _sentences_of(after)[:len(repeated)] == _sentences_of(before)[-len(repeated):]
        assert 1 <= sum(len(sentence.split()) for sentence in repeated) <= 14
    assert all(len(chunk.text.split()) <= 60 for chunk in chunks[:-1])
    covered = {sentence for chunk in chunks for sentence in _sentences_of(chunk)}
    assert covered == set(_sentences_of(Chunk(_numbered_sentences(60), (), None, 0)))


def test_chunks_start_and_end_at_sentence_boundaries_in_russian_and_uzbek_cyrillic() -> None:
    text = " ".join(["Завтрак подают с семи до десяти, т.е. три часа каждый день.",
                     "Ужин заказывают заранее… Повар готовит его к семи вечера!",
                     "Нонушта соат еттидан ўнгача берилади.", "Хоналар ҳар куни тозаланади?",
                     "Қабулхона кечаю кундуз ишлайди."] * 8)

    chunks = chunk_sections([Section(("Питание",), text)], max_words=40, overlap_words=10)

    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text[0].isupper()
        assert chunk.text[-1] in ".!?…"
        assert "т.е. три часа" in chunk.text or "т.е." not in chunk.text  # an abbreviation is no sentence end


def test_whole_paragraphs_are_packed_together_up_to_the_limit() -> None:
    paragraphs = [" ".join(f"{name}{number}" for number in range(40)) + "." for name in ("alpha", "beta", "gamma")]

    chunks = chunk_sections([Section((), "\n\n".join(paragraphs))], max_words=100, overlap_words=20)

    assert chunks[0].text == f"{paragraphs[0]}\n\n{paragraphs[1]}"
    assert chunks[1].text.endswith(f"\n\n{paragraphs[2]}")  # after a repeated tail of the paragraph before it
    assert len(chunks) == 2


def test_sentence_longer_than_a_chunk_is_cut_at_word_boundaries() -> None:
    words = [f"word{number}" for number in range(300)]

    chunks = chunk_sections([Section((), " ".join(words))], max_words=50, overlap_words=10)

    assert all(len(chunk.text.split()) <= 50 for chunk in chunks)
    assert all(chunk.text.split()[0] in words for chunk in chunks)
    assert [word for word in words if not any(word in chunk.text.split() for chunk in chunks)] == []
    assert chunks[1].text.split()[:10] == chunks[0].text.split()[-10:]


def test_sentence_that_fits_a_chunk_is_never_cut_and_a_long_last_sentence_is_repeated_whole() -> None:
    long_sentence = "Then " + " ".join(f"step{number}" for number in range(43)) + "."  # over 50 - 12 words
    text = " ".join([_numbered_sentences(2), long_sentence, _numbered_sentences(6, start=3)])

    chunks = chunk_sections([Section((), text)], max_words=50, overlap_words=12)

    assert long_sentence in chunks[1].text
    assert not any(long_sentence[:40] in chunk.text for chunk in chunks[2:])  # too long to repeat: 44 > 12 * 1.5
    shorter = "Items " + " ".join(f"item{number}" for number in range(14)) + "."  # 15 words: over 12, under 18
    chunks = chunk_sections([Section((), f"{_numbered_sentences(5)} {shorter} {_numbered_sentences(5, start=6)}")],
                            max_words=50, overlap_words=12)
    assert chunks[1].text.startswith(shorter)


def test_tiny_tail_of_a_section_joins_the_chunk_before_it() -> None:
    main = " ".join(f"word{number}" for number in range(45)) + "."
    tail = "Call the front desk."

    chunks = chunk_sections([Section((), f"{main}\n\n{tail}")], max_words=50, overlap_words=10)

    assert [chunk.text for chunk in chunks] == [f"{main}\n\n{tail}"]
    assert len(tail.split()) < TINY_WORDS


def test_chunk_limits_must_leave_room_for_new_words() -> None:
    with pytest.raises(ValueError, match="overlap_words"):
        chunk_sections([], max_words=30, overlap_words=30)


def test_extracted_pdf_chunks_keep_their_pages() -> None:
    chunks = chunk_sections(extract("prices.pdf", _three_page_pdf()).sections, max_words=40, overlap_words=8)

    pages = [chunk.page or 0 for chunk in chunks]
    assert pages == sorted(pages)
    assert set(pages) == {1, 2, 3}
    assert all(chunk.text.startswith(f"Page {chunk.page}.") for chunk in chunks if chunk.text.startswith("Page"))
