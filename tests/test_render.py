"""Model Markdown becomes Telegram HTML that Telegram's own parser (tgsim's TDLib port) accepts."""

from __future__ import annotations

import pytest
from tgsim.formatting import format_text

from services.render import markdown_to_html, split_html


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
    html = markdown_to_html("[ok](https://example.com/?a=1&b=2) [no](javascript:alert(1))")
    assert '<a href="https://example.com/?a=1&amp;b=2">ok</a>' in html
    assert "javascript" not in html.split("</a>")[0]


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
