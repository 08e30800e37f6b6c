"""Customers' voice (issue 18): a voice message is transcribed and answered like text."""

from __future__ import annotations

from tgsim import Simulator

from models import AuthorKind, Message
from tests.conftest import Frontdesk
from tests.fake_ai import FakeAI


async def test_a_voice_message_gets_the_ais_answer_to_its_transcript(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.answer = lambda question: f"You asked: {question}"
    ann = sim.create_user("Ann")
    sim.send_voice(ann["id"], content=b"Do you deliver on Sundays?", duration=3)
    [answer] = await sim.wait_for_messages(ann["id"])
    assert answer["text"] == "You asked: Do you deliver on Sundays?"
    [heard] = ai.transcription_requests
    assert heard["model"] == "whisper-1"  # TRANSCRIBE_* empty: the AI provider's address, with whisper-1
    [voice] = await Message.filter(author_kind=AuthorKind.CUSTOMER)
    assert voice.attachments[0]["transcript"] == "Do you deliver on Sundays?"  # stored with the message
