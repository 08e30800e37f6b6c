"""Reading a model's stream: every OpenAI-compatible server's way of writing server-sent events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI, DefaultAioHttpClient

from services.ai import AIClient, Route, _sse_data
from services.generation import MAX_READ_PAUSE, read_pause
from tests.fake_ai import FakeAI


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


async def test_a_stream_left_unread_between_reads_still_gives_the_whole_answer_in_fewer_progress_steps(
        ai: FakeAI) -> None:
    """A busy bot's answer (its customers see a draft every few seconds at most) reads the model's pieces
    in bunches: the first words at once, then the whole answer, with a progress step per read, not per piece."""
    ai.script.reply = "".join(f"piece {n:02d}. " for n in range(60))
    ai.script.chunk_size = len("piece 00. ")
    ai.script.chunk_delay = 0.02
    client = AIClient([Route("main-model", AsyncOpenAI(base_url=ai.base_url, api_key="k", max_retries=0,
                                                       http_client=DefaultAioHttpClient()))],
                      lambda model: (0.0, 0.0), reads_coalesce=True)
    messages = [{"role": "user", "content": "hi"}]

    async def steps(pause: float | None) -> tuple[list[str], float]:
        seen: list[str] = []

        async def progress(text: str) -> None:
            seen.append(text)

        started = time.monotonic()
        reply = await client.answer(messages, progress, pause=None if pause is None else (lambda: pause))
        assert reply.text == ai.script.reply.strip()
        return seen, time.monotonic() - started

    try:
        (read_at_once, _), (read_in_bunches, took) = await steps(None), await steps(0.2)
    finally:
        await client.close()
    assert len(read_at_once) == 60  # a step per piece
    assert read_in_bunches[0] == "piece 00. "  # the first words are not held back
    assert len(read_in_bunches) <= took / 0.2 + 3  # a read every 200 ms at most after them
    assert len(read_in_bunches) < 30
    assert all(ai.script.reply.startswith(text) for text in read_in_bunches)  # the whole reply is checked above


def test_answers_pause_their_reading_only_while_the_budget_cannot_show_each_at_its_interval() -> None:
    assert read_pause(streams=10, per_second=30.0, interval=0.6) == 0.0  # 10 drafts every 0.6 s fit in 30/s
    assert read_pause(streams=24, per_second=30.0, interval=0.6) == pytest.approx(0.2)  # one every 0.8 s each
    assert read_pause(streams=300, per_second=30.0, interval=0.6) == MAX_READ_PAUSE  # the end is seen soon enough
