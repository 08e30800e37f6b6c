"""Reading a model's stream: every OpenAI-compatible server's way of writing server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.ai import _sse_data


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


async def _read(*lines: str) -> list[str]:
    """What the reader makes of a body of these lines, however the network cut it into chunks."""
    body = "\n".join(lines).encode()
    readings = [[data async for data in _sse_data(_chunks(body, size))] for size in (1, 3, 7, len(body) or 1)]
    assert all(reading == readings[0] for reading in readings)
    return readings[0]


async def test_events_end_at_blank_lines_and_the_stream_at_done() -> None:
    assert await _read('data: {"a": 1}', "", 'data:{"b": 2}', "", "data: [DONE]", "", 'data: {"late": 1}', "") == [
        '{"a": 1}', '{"b": 2}']


async def test_comments_and_other_fields_are_skipped_and_data_lines_joined() -> None:
    assert await _read(": keep-alive", "", "event: message", "id: 7", 'data: {"a":', "data: 1}", "",
                       "retry: 1000", "") == ['{"a":\n1}']


async def test_a_last_event_without_its_blank_line_still_counts() -> None:
    assert await _read('data: {"a": 1}') == ['{"a": 1}']
    assert await _read("data: [DONE]") == []


async def test_carriage_returns_and_multibyte_text_cut_anywhere() -> None:
    assert await _read('data: {"t": "привет 😀"}\r', "\r", 'data: {"t": "o‘zbek"}', "") == [
        '{"t": "привет 😀"}', '{"t": "o‘zbek"}']
