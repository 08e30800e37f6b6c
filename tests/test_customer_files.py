"""Albums and files customers send on Telegram (issue 18): an album is one message the AI answers once, seeing
every image; a document's text is context for that conversation only, never the knowledge base."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
from typing import Any

import docx
import pytest
from fpdf import FPDF
from tgsim import Simulator

from models import AuthorKind, KnowledgeChunk, KnowledgeItem, KnowledgePage, Message, OutboxJob
from services import conversations, tokens
from services.conversations import Customer, Incoming
from services.limits import MemoryRateLimiter
from tests.conftest import Frontdesk, eventually, outbox_idle
from tests.desk_helpers import in_topic, manager_desk, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
                       "hKmMIQAAAABJRU5ErkJggg==")
VISION = {"AI_VISION_MODELS": "backup-model"}


def _photo(index: int) -> dict[str, Any]:
    """An album item: a PNG of its own (its bytes differ, so each one's data URL does)."""
    return {"type": "photo", "content": PNG + bytes([index])}


def _image_urls(request: dict[str, Any]) -> list[str]:
    content = request["messages"][-1]["content"]
    return [part["image_url"]["url"] for part in content if part.get("type") == "image_url"] \
        if isinstance(content, list) else []


def _system(request: dict[str, Any]) -> str:
    return str(request["messages"][0]["content"])


def _question(request: dict[str, Any]) -> str:
    content = request["messages"][-1]["content"]
    return str(content) if isinstance(content, str) else " ".join(p["text"] for p in content if p["type"] == "text")


def _taken_at_once(sim: Simulator) -> bool:
    """Every update was taken at its first delivery: none failed in the webhook (and was delivered again)."""
    return all(delivery["attempt"] == 1 and delivery["status"] == 200 for delivery in sim.deliveries())


async def _customer_messages() -> list[Message]:
    return await Message.filter(author_kind=AuthorKind.CUSTOMER).order_by("id")


# --- albums ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("frontdesk_settings", [VISION], indirect=True)
async def test_an_album_is_one_message_answered_once_with_all_its_images(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ai.script.reply = "Three tiny squares."
    ann = sim.create_user("Ann", language_code="en")
    sim.send_album(ann["id"], [_photo(1), _photo(2), _photo(3)], caption="Which of these is the newest?")
    [answer] = await sim.wait_for_messages(ann["id"], timeout=30)
    assert answer["text"] == "Three tiny squares."
    await outbox_idle(sim)
    [request] = ai.requests  # one answer to the album, not one per photo
    assert _image_urls(request) == [f"data:image/png;base64,{base64.b64encode(PNG + bytes([i])).decode()}"
                                    for i in (1, 2, 3)]
    assert _question(request) == "Which of these is the newest?"
    [album] = await _customer_messages()
    assert [a["type"] for a in album.attachments] == ["photo", "photo", "photo"]
    assert album.text == "Which of these is the newest?"
    assert len(sim.chat_history(ann["id"])) == 3 + 1  # the album's three items and the one answer
    assert _taken_at_once(sim)


@pytest.mark.parametrize("frontdesk_settings", [VISION], indirect=True)
async def test_an_album_counts_once_against_the_customers_rate(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann", language_code="en")
    sim.send_album(ann["id"], [_photo(i) for i in range(8)], caption="Our new menu")  # more than CUSTOMER_RATE_BURST
    sim.send_text(ann["id"], "Which dish is the spiciest?")
    await sim.wait_for_messages(ann["id"], 2, timeout=30)
    await outbox_idle(sim)
    assert [_question(request) for request in ai.requests] == ["Our new menu", "Which dish is the spiciest?"]


async def test_without_a_vision_model_an_album_gets_one_handoff_notice(
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann", language_code="en")
    sim.send_album(ann["id"], 2, caption="Is this the right part?")
    [notice] = await sim.wait_for_messages(ann["id"], timeout=30)
    assert notice["text"].startswith("I can't see images, so I've passed your conversation to a person.")
    await outbox_idle(sim)
    assert len(sim.chat_history(ann["id"])) == 2 + 1  # one notice for the album, not one per photo
    assert _taken_at_once(sim)
    assert ai.requests == []
    [album] = await _customer_messages()
    assert len(album.attachments) == 2


@pytest.mark.parametrize("frontdesk_settings", [VISION], indirect=True)
async def test_a_redelivered_album_item_is_stored_and_answered_once(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann", language_code="en")
    sent = sim.send_album(ann["id"], [_photo(1), _photo(2)], caption="Two views")
    sim.updates.push("message", copy.deepcopy(sent[1]))  # Telegram delivers an item again (a retry)
    await sim.wait_for_messages(ann["id"], timeout=30)
    await outbox_idle(sim)
    assert len(ai.requests) == 1
    assert len(_image_urls(ai.requests[0])) == 2
    [album] = await _customer_messages()
    assert len(album.attachments) == 2


async def test_an_album_reaches_the_managers_as_one_album_and_is_one_message(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    async with manager_desk(database_url, sim, ai) as desk:
        ann = sim.create_user("Ann")
        sim.send_command(ann["id"], "human")
        [topic] = await wait_for_topic(sim, desk.chat_id)
        await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1)  # the header card
        sim.send_album(ann["id"], 3, caption="Three of them")
        shown = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1 + 3)
        album = shown[1:]
        assert len({m["media_group_id"] for m in album}) == 1
        assert all("photo" in m for m in album)
        assert album[0]["caption"] == "Three of them"
        await outbox_idle(sim)
        [stored] = [m for m in await _customer_messages() if m.attachments]
        assert len(stored.attachments) == 3
        assert len(in_topic(sim, desk.chat_id, topic.thread_id)) == 1 + 3  # copied once


async def test_photos_the_ai_cannot_see_reach_the_people_it_hands_them_to(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    async with manager_desk(database_url, sim, ai) as desk:  # no vision model
        ann = sim.create_user("Ann", language_code="en")
        sim.send_album(ann["id"], 2, caption="Is this the right part?")
        [topic] = await wait_for_topic(sim, desk.chat_id)
        card, *album = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1 + 2)
        assert "Is this the right part?" in card["text"]  # the card names it ...
        assert [("photo" in m, m.get("caption")) for m in album] == [(True, "Is this the right part?"), (True, None)]
        await outbox_idle(sim)
        assert len(in_topic(sim, desk.chat_id, topic.thread_id)) == 1 + 2  # ... and the photos are shown once


# --- documents ---------------------------------------------------------------------------------------------------

FACT = "The spare key is under the blue flower pot by the north gate."


def _pdf(text: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _docx(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


FILES = {
    "pdf": ("booking.pdf", "application/pdf", _pdf),
    "docx": ("booking.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", _docx),
    "txt": ("booking.txt", "text/plain", lambda text: text.encode()),
}


async def _knowledge_rows() -> int:
    return await KnowledgeItem.all().count() + await KnowledgeChunk.all().count() + await KnowledgePage.all().count()


@pytest.mark.parametrize("kind", sorted(FILES))
async def test_a_documents_text_reaches_the_ai_for_that_conversation_only(
        kind: str, frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    name, mime, build = FILES[kind]
    ai.script.reply = "It is under the blue pot."
    knowledge_before = await _knowledge_rows()
    ann = sim.create_user("Ann", language_code="en")
    sim.send_document(ann["id"], file_name=name, content=build(FACT), mime_type=mime, caption="Where is the key?")
    [answer] = await sim.wait_for_messages(ann["id"], timeout=30)
    assert answer["text"] == "It is under the blue pot."
    [request] = ai.requests
    assert FACT in _system(request)
    assert _question(request) == "Where is the key?"
    assert await _knowledge_rows() == knowledge_before  # read for this conversation, not learned

    # A later question in the same conversation still has the file before the AI ...
    sim.send_text(ann["id"], "And which gate was that?")
    await sim.wait_for_messages(ann["id"], 2, timeout=30)
    assert FACT in _system(ai.requests[1])
    # ... and another customer's conversation does not.
    bob = sim.create_user("Bob", language_code="en")
    sim.send_text(bob["id"], "Where is the key?")
    await sim.wait_for_messages(bob["id"], timeout=30)
    assert FACT not in str(ai.requests[2]["messages"])


async def test_an_album_of_files_is_read_whole(frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann", language_code="en")
    sim.send_album(ann["id"], [{"type": "document", "file_name": "gate.txt", "content": FACT.encode()},
                               {"type": "document", "file_name": "code.txt", "content": b"The gate code is 4417."}],
                   caption="How do I get in?")
    await sim.wait_for_messages(ann["id"], timeout=30)
    await outbox_idle(sim)
    [request] = ai.requests
    assert FACT in _system(request)
    assert "The gate code is 4417." in _system(request)
    assert _question(request) == "How do I get in?"


async def test_a_document_without_words_is_looked_at(frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann", language_code="en")
    sim.send_document(ann["id"], file_name="notes.txt", content=FACT.encode(), mime_type="text/plain")
    await sim.wait_for_messages(ann["id"], timeout=30)
    [request] = ai.requests
    assert FACT in _system(request)
    assert "without any words" in _question(request)
    [stored] = await _customer_messages()
    assert FACT in str(stored.attachments[0]["text"])  # kept with the message for the later turns


@pytest.mark.parametrize(("frontdesk_settings", "file_name", "content", "notice"), [
    ({}, "scan.pdf", b"%PDF-1.4 this is not really a PDF", "I couldn't read your file"),
    ({}, "archive.zip", b"PK\x03\x04 zipped", "I can only read PDF, Word (DOCX), text, Markdown and HTML files"),
    ({"CUSTOMER_FILE_MAX_BYTES": "1000"}, "big.txt", b"x " * 1000, "Your file is too big for me to read"),
], indirect=["frontdesk_settings"], ids=["unreadable", "unsupported", "too_big"])
async def test_a_file_that_cannot_be_read_goes_to_a_person_with_a_notice(
        frontdesk_settings: dict[str, Any], file_name: str, content: bytes, notice: str,
        frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    ann = sim.create_user("Ann", language_code="en")
    sim.send_document(ann["id"], file_name=file_name, content=content, mime_type="application/octet-stream",
                      caption="Can you check this?")
    [reply] = await sim.wait_for_messages(ann["id"], timeout=30)
    assert reply["text"].startswith(notice)
    assert ai.requests == []  # no model answered as if it had read it

    async def handed_off() -> bool:
        [stored] = await _customer_messages()
        return "text" not in stored.attachments[0]

    await eventually(handed_off, "nothing stored as the file's text")


async def test_a_file_that_cannot_be_read_reaches_the_people_it_goes_to(
        database_url: str, sim: Simulator, ai: FakeAI) -> None:
    async with manager_desk(database_url, sim, ai) as desk:
        ann = sim.create_user("Ann", language_code="en")
        sim.send_document(ann["id"], file_name="prices.xlsx", content=b"PK\x03\x04 a spreadsheet",
                          mime_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        [topic] = await wait_for_topic(sim, desk.chat_id)
        _, copied = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 2)
        assert copied["document"]["file_name"] == "prices.xlsx"


async def test_album_items_stored_at_once_make_one_message_with_one_answer_job(database: str) -> None:
    """As parallel webhooks on several instances store them (each item on its own connection on PostgreSQL),
    one of the items delivered twice."""
    bot = await conversations.ensure_bot(123)
    limiter = MemoryRateLimiter(100, 100.0)
    ann = Customer(555, first_name="Ann", language_code="en")

    def item(update: int, telegram_id: int, caption: str = "") -> Incoming:
        photo = {"type": "photo", "file_id": f"photo-{telegram_id}", "size": 70, "media_group_id": "4242"}
        return Incoming(source_key=f"tg:{update}", text=caption, attachments=[photo], telegram_message_id=telegram_id,
                        album="4242")

    items = [item(1, 11, "Look"), item(2, 12), item(3, 13), item(4, 12)]  # update 4 re-delivers message 12
    await asyncio.gather(*(conversations.record_customer_message(bot.id, ann, incoming, limiter=limiter,
                                                                 default_locale="en") for incoming in items))
    [album] = await _customer_messages()
    assert [a["file_id"] for a in album.attachments] == ["photo-11", "photo-12", "photo-13"]
    assert album.text == "Look"
    assert await OutboxJob.filter(kind="answer").count() == 1


@pytest.mark.parametrize("frontdesk_settings", [{"CUSTOMER_FILE_TOKENS": "200"}], indirect=True)
async def test_a_long_file_is_cut_to_its_token_budget(
        frontdesk_settings: dict[str, Any], frontdesk: Frontdesk, sim: Simulator, ai: FakeAI) -> None:
    text = " ".join(f"Line {number} of the guest book." for number in range(1, 2001))
    ann = sim.create_user("Ann", language_code="en")
    sim.send_document(ann["id"], file_name="guests.txt", content=text.encode(), caption="Who came first?")
    await sim.wait_for_messages(ann["id"], timeout=30)
    [request] = ai.requests
    assert "Line 1 of the guest book." in _system(request)
    assert "Line 2000 of" not in _system(request)
    assert "the rest of the file is cut off" in _system(request)
    assert tokens.estimate(_system(request)) < 1000
