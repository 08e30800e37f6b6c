"""Model Markdown to Telegram HTML, and splitting that HTML into messages Telegram accepts.

markdown-it-py parses; the renderer below emits only the tags Telegram's HTML parse mode knows
and escapes every piece of text, so nothing a model or a customer writes can break the markup.
Raw HTML in the input is disabled in the parser, so `<b>` typed by a model shows as text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

TELEGRAM_TEXT_LIMIT = 4096
_SAFE_LINK = re.compile(r"^(https?://|tg://|mailto:)", re.IGNORECASE)
_INLINE_TAGS = {
    "strong_open": "<b>",
    "strong_close": "</b>",
    "em_open": "<i>",
    "em_close": "</i>",
    "s_open": "<s>",
    "s_close": "</s>",
}

_parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": False}).enable(
    ["strikethrough", "table"]
)


def escape(text: str) -> str:
    """Escape text for Telegram HTML (which knows only &lt; &gt; &amp; &quot;)."""
    return html.escape(text, quote=True).replace("&#x27;", "'")


# The HTML we store and show: Telegram's tags that the website widget also allows (webapp_static/widget.js
# keeps the same list, a test holds them together). `br` is not one: Telegram refuses it (newlines break lines).
SAFE_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
                       "blockquote", "span", "tg-spoiler"})
SAFE_SCHEMES = frozenset({"http", "https", "tg", "mailto"})
_LANGUAGE_CLASS = re.compile(r"language-[\w+#.-]{1,32}")
_INERT_LINK = re.compile(r"<a>(.*?)</a>", re.DOTALL)


def _safe_attribute(tag: str, name: str, value: str) -> str | None:
    """The few attributes Telegram's HTML gives meaning to, and only in their own shape."""
    if tag == "code" and name == "class":
        return value if _LANGUAGE_CLASS.fullmatch(value) else None
    if tag == "span" and name == "class":
        return value if value == "tg-spoiler" else None
    if tag == "a" and name == "href":
        return value if _SAFE_LINK.match(value) else None  # nh3 lets relative addresses (`//host`) through
    return value  # blockquote's `expandable`


def sanitize_html(html_text: str) -> str:
    """Telegram HTML from elsewhere (a manager's message) reduced to SAFE_TAGS: any other tag leaves
    only its text, a link only an http(s), tg or mailto address, and what comes out is valid Telegram
    HTML that is also safe inside a web page. Used where it is stored and again wherever it is shown,
    for rows stored by aiogram's html_text, which escaped neither link addresses nor code languages.
    Applying it twice changes nothing."""
    cleaned = nh3.clean(html_text, tags=set(SAFE_TAGS), url_schemes=set(SAFE_SCHEMES), link_rel=None,
                        attributes={"a": {"href"}, "code": {"class"}, "span": {"class"}, "blockquote": {"expandable"}},
                        attribute_filter=_safe_attribute, strip_comments=True)
    # A link whose address was refused is its text (links never nest once parsed); html5ever writes a
    # no-break space as `&nbsp;`, which Telegram shows as those six characters.
    return _INERT_LINK.sub(r"\1", cleaned).replace("&nbsp;", "\u00a0")


def html_to_text(html_text: str) -> str:
    """What a reader sees of Telegram HTML: the text without its markup."""
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


def markdown_to_html(markdown: str) -> str:
    """Render model Markdown as Telegram HTML."""
    return _Renderer().render(_parser.parse(markdown)).strip()


class _Renderer:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.lists: list[list[int]] = []  # one [next number] per open ordered list, [] for bullets

    def render(self, tokens: Sequence[Token]) -> str:
        for token in tokens:
            self._block(token)
        return "".join(self.out)

    def _block(self, token: Token) -> None:
        kind = token.type
        if kind == "inline":
            self.out.append(self._inline(token.children or []))
        elif kind in ("paragraph_close", "heading_close"):
            self.out.append("</b>\n\n" if kind == "heading_close" else ("\n" if self.lists else "\n\n"))
        elif kind == "heading_open":
            self.out.append("<b>")
        elif kind in ("bullet_list_open", "ordered_list_open"):
            self.lists.append([int(token.attrGet("start") or 1)] if kind == "ordered_list_open" else [])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
            if not self.lists:
                self.out.append("\n")
        elif kind == "list_item_open":
            self.out.append(self._bullet())
        elif kind in ("fence", "code_block"):
            self.out.append(self._code_block(token))
        elif kind == "blockquote_open":
            self.out.append("<blockquote>")
        elif kind == "blockquote_close":
            self._trim_trailing_newlines()
            self.out.append("</blockquote>\n\n")
        elif kind == "hr":
            self.out.append("——————\n\n")
        elif kind in ("th_open", "td_open"):
            self.out.append(" | " if self.out and not self.out[-1].endswith("\n") else "")
        elif kind == "tr_close" or kind == "table_close":
            self.out.append("\n")

    def _bullet(self) -> str:
        depth = len(self.lists) - 1
        current = self.lists[-1]
        indent = "   " * depth
        if current:
            number = current[0]
            current[0] += 1
            return f"{indent}{number}. "
        return f"{indent}• "

    def _trim_trailing_newlines(self) -> None:
        while self.out and self.out[-1].endswith("\n"):
            self.out[-1] = self.out[-1].rstrip("\n")
            if self.out[-1]:
                break
            self.out.pop()

    @staticmethod
    def _code_block(token: Token) -> str:
        language = (token.info or "").split(" ")[0].strip()
        code = escape(token.content.rstrip("\n"))
        if language and re.fullmatch(r"[\w+#.-]{1,32}", language):
            return f'<pre><code class="language-{escape(language)}">{code}</code></pre>\n\n'
        return f"<pre>{code}</pre>\n\n"

    def _inline(self, children: Sequence[Token]) -> str:
        parts: list[str] = []
        link_open: list[bool] = []
        for child in children:
            kind = child.type
            if kind == "text":
                parts.append(escape(child.content))
            elif kind == "code_inline":
                parts.append(f"<code>{escape(child.content)}</code>")
            elif kind in _INLINE_TAGS:
                parts.append(_INLINE_TAGS[kind])
            elif kind == "softbreak" or kind == "hardbreak":
                parts.append("\n")
            elif kind == "link_open":
                href = str(child.attrGet("href") or "")
                safe = bool(_SAFE_LINK.match(href))
                link_open.append(safe)
                if safe:
                    parts.append(f'<a href="{escape(href)}">')
            elif kind == "link_close":
                if link_open.pop():
                    parts.append("</a>")
            elif kind == "image":
                parts.append(escape(child.content or str(child.attrGet("src") or "")))
            elif kind in ("html_inline", "html_block"):
                parts.append(escape(child.content))
        return "".join(parts)


# --- splitting -----------------------------------------------------------------------------------

_TAG = re.compile(r"<(/?)([a-z-]+)([^>]*)>")


@dataclass(frozen=True)
class _Char:
    text: str  # one visible character, unescaped
    tags: tuple[str, ...]  # the opening tags in force, outermost first


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _visible(html_text: str) -> list[_Char]:
    """Our own renderer's HTML as visible characters, each with the tags that wrap it."""
    chars: list[_Char] = []
    stack: list[str] = []
    position = 0
    for match in _TAG.finditer(html_text):
        chars.extend(_Char(c, tuple(stack)) for c in html.unescape(html_text[position : match.start()]))
        closing, name, _ = match.groups()
        if closing:
            while stack and not stack.pop().startswith(f"<{name}"):
                pass
        else:
            stack.append(match.group(0))
        position = match.end()
    chars.extend(_Char(c, tuple(stack)) for c in html.unescape(html_text[position:]))
    return chars


def _serialize(chars: Sequence[_Char]) -> str:
    out: list[str] = []
    open_tags: tuple[str, ...] = ()
    for char in chars:
        if char.tags != open_tags:
            common = 0
            while common < min(len(open_tags), len(char.tags)) and open_tags[common] == char.tags[common]:
                common += 1
            out.extend(_closing(tag) for tag in reversed(open_tags[common:]))
            out.extend(char.tags[common:])
            open_tags = char.tags
        out.append(escape(char.text))
    out.extend(_closing(tag) for tag in reversed(open_tags))
    return "".join(out)


def _closing(opening_tag: str) -> str:
    name = _TAG.match(opening_tag)
    return f"</{name.group(2)}>" if name else ""


_BREAKS = (("\n\n", 0.5), ("\n", 0.5), (". ", 0.3), ("! ", 0.3), ("? ", 0.3), ("; ", 0.3), (" ", 0.3))


def _cut_point(text: str, limit: int) -> int:
    """Where to end a part of at most `limit` characters: a paragraph, line, sentence or word end."""
    window = text[:limit]
    for separator, min_share in _BREAKS:
        index = window.rfind(separator)
        if index >= limit * min_share:
            return index + len(separator)
    return limit


def split_html(html_text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split Telegram HTML into parts of at most `limit` visible characters (UTF-16 units), each
    valid on its own: tags open at a cut are closed and reopened in the next part."""
    visible = _visible_text(html_text)
    if visible == visible.strip() and _utf16(visible) <= limit:  # one part, nothing to cut or trim
        return [html_text] if visible else []
    chars = _visible(html_text)
    parts: list[str] = []
    while chars:
        # Count in UTF-16 units: find how many characters fit.
        units = fit = 0
        while fit < len(chars) and units + _utf16(chars[fit].text) <= limit:
            units += _utf16(chars[fit].text)
            fit += 1
        if fit < len(chars):
            plain = "".join(c.text for c in chars[:fit])
            fit = max(1, _cut_point(plain, fit))
        part = _serialize(_strip(chars[:fit]))
        if part:
            parts.append(part)
        chars = chars[fit:]
    return parts


def _strip(chars: Sequence[_Char]) -> Sequence[_Char]:
    start, end = 0, len(chars)
    while start < end and chars[start].text.isspace():
        start += 1
    while end > start and chars[end - 1].text.isspace():
        end -= 1
    return chars[start:end]


def visible_length(html_text: str) -> int:
    """The characters Telegram counts (UTF-16 units) in our own renderer's HTML.

    Called for every draft of every answer streaming, so it never builds `_visible`'s per-character
    list: our HTML has no entity cut by a tag, so dropping the tags and then unescaping counts the same.
    """
    return _utf16(_visible_text(html_text))


def _visible_text(html_text: str) -> str:
    return html.unescape(_TAG.sub("", html_text))
