"""Files in the widget, both ways (issue 18): a visitor attaches a photo or a file, a vision model sees it and
managers get it in their topic; a manager's photo reaches the visitor; each file is served only to whoever may
see its message."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import aiohttp
import pytest
from tgsim import Simulator

from bot.settings import Settings
from models import AuthorKind, Message, StoredFile, WidgetSite
from services import widget
from tests.conftest import Frontdesk, eventually
from tests.desk_helpers import BOSS_ID, manager_desk, wait_for_topic, wait_in_topic
from tests.fake_ai import FakeAI
from tests.miniapp_helpers import app_client
from tests.widget_helpers import is_answer, open_widget

# A real 1×1 PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
                       "hKmMIQAAAABJRU5ErkJggg==")
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def upload(http: aiohttp.ClientSession, base_url: str, token: str | None, content: bytes, *,
                 name: str = "photo.png", caption: str = "", client_id: str | None = None, site: str = "demo",
                 lang: str = "en", origin: str | None = None) -> tuple[int, dict[str, Any]]:
    """What widget.js sends: the form, with the visitor's token."""
    form = aiohttp.FormData()
    form.add_field("client_id", client_id or str(uuid.uuid4()))
    form.add_field("caption", caption)
    form.add_field("file", content, filename=name, content_type="application/octet-stream")
    headers = {"Origin": origin or base_url}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with http.post(f"{base_url}/widget/api/upload?site={site}&lang={lang}", data=form,
                         headers=headers) as response:
        return response.status, await response.json()


async def fetch_file(http: aiohttp.ClientSession, base_url: str, token: str, message_id: int | str, index: int = 0,
                     *, site: str = "demo", origin: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    async with http.get(f"{base_url}/widget/api/files/{message_id}/{index}?site={site}",
                        headers={"Authorization": f"Bearer {token}", "Origin": origin or base_url}) as response:
        return response.status, await response.read(), dict(response.headers)


def _image_parts(request: dict[str, Any]) -> list[str]:
    content = request["messages"][-1]["content"]
    return [part["image_url"]["url"] for part in content if part.get("type") == "image_url"] \
        if isinstance(content, list) else []


@pytest.mark.parametrize("frontdesk_settings", [{"AI_VISION_MODELS": "backup-model"}], indirect=True)
async def test_a_visitors_photo_with_a_caption_is_answered_by_a_vision_model(
        frontdesk: Frontdesk, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    ai.script.reply = "That is a tiny transparent square."
    visitor, welcome = await open_widget(http, frontdesk.url)
    status, frame = await upload(http, frontdesk.url, welcome["token"], PNG, caption="What is on this picture?")
    assert status == 201, frame
    assert frame["author"] == "customer"
    assert frame["text"] == "What is on this picture?"
    assert frame["attachments"] == [{"type": "photo", "name": "photo.png", "file": True, "image": True}]
    answer = await visitor.until(lambda f: is_answer(f, frame["id"]), within=30)
    assert answer["text"] == "That is a tiny transparent square."
    [request] = ai.requests
    assert request["model"] == "backup-model"
    assert _image_parts(request) == [f"data:image/png;base64,{base64.b64encode(PNG).decode()}"]
    status, body, headers = await fetch_file(http, frontdesk.url, welcome["token"], frame["id"])
    assert (status, body, headers["Content-Type"]) == (200, PNG, "image/png")  # the visitor sees their own photo
    await visitor.socket.close()


@pytest.mark.parametrize("frontdesk_settings", [{"WIDGET_UPLOAD_MAX_BYTES": "2000"}], indirect=True)
async def test_a_file_too_big_or_of_a_wrong_type_is_refused_with_a_clear_error_and_nothing_is_stored(
        frontdesk: Frontdesk, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    visitor, welcome = await open_widget(http, frontdesk.url)
    token = welcome["token"]
    big = PNG + b"\0" * 3000
    status, body = await upload(http, frontdesk.url, token, PNG + b"\0" * 100_000)  # refused by its length
    assert (status, body["error"]["code"]) == (413, "file_too_large")
    status, body = await upload(http, frontdesk.url, token, big)  # refused as it is read
    assert status == 413
    assert body["error"] == {"code": "file_too_large",
                             "message": "This file is too large: files up to 0.002 MB can be sent."}
    page = b"<html><script>alert(1)</script></html>"
    for content, name in ((page, "photo.png"), (page, "page.html"), (b"MZ\x90\x00" * 10, "setup.exe"),
                          (b"PK\x03\x04not a zip", "report.docx")):
        status, body = await upload(http, frontdesk.url, token, content, name=name)
        assert status == 415, (name, body)
        assert body["error"]["code"] == "file_type"
        assert body["error"]["message"] == ("This kind of file cannot be sent here. "
                                            "You can send: JPEG, PNG, WebP, GIF, PDF, DOCX, TXT.")
    status, body = await upload(http, frontdesk.url, token, b"", name="empty.txt")
    assert (status, body["error"]["code"]) == (400, "empty_file")
    status, body = await upload(http, frontdesk.url, None, PNG)
    assert (status, body["error"]["code"]) == (401, "bad_token")
    status, body = await upload(http, frontdesk.url, token, PNG, origin="https://elsewhere.example")
    assert (status, body["error"]["code"]) == (403, "origin_not_allowed")
    assert await StoredFile.all().count() == 0
    assert await Message.all().count() == 0

    status, body = await upload(http, frontdesk.url, token, b"Order 88-12, two cakes.", name="order.txt")
    assert status == 201, body
    assert body["attachments"] == [{"type": "document", "name": "order.txt", "file": True, "image": False}]
    [stored] = await StoredFile.all()
    assert (stored.mime_type, stored.size, bytes(stored.content)) == ("text/plain", 23, b"Order 88-12, two cakes.")
    await visitor.socket.close()


async def test_a_file_is_served_only_to_the_visitor_whose_conversation_holds_it(
        frontdesk: Frontdesk, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    ai.script.reply = "Thanks, got it."
    ann, ann_welcome = await open_widget(http, frontdesk.url)
    status, photo = await upload(http, frontdesk.url, ann_welcome["token"], PNG)
    assert status == 201
    status, pdf = await upload(http, frontdesk.url, ann_welcome["token"], PDF, name="invoice.pdf")
    assert status == 201
    ann_token = ann_welcome["token"]

    status, body, headers = await fetch_file(http, frontdesk.url, ann_token, pdf["id"])
    assert (status, body) == (200, PDF)
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"] == "attachment; filename*=UTF-8''invoice.pdf"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"].startswith("private")

    bob, bob_welcome = await open_widget(http, frontdesk.url)  # another visitor of the same site
    await bob.send_message("hello")
    await bob.until(lambda f: f["type"] == "message" and f["author"] == "customer")
    bot_id = (await WidgetSite.get(public_key="demo")).bot_id
    other_site = await widget.create_site(bot_id, [frontdesk.url], title="Another shop")
    carl, carl_welcome = await open_widget(http, frontdesk.url, site=other_site.public_key)
    conversation_id = photo["conversation"]
    note = await Message.create(bot_id=bot_id, conversation_id=conversation_id, author_kind=AuthorKind.NOTE,
                                text="staff only", attachments=(await Message.get(id=photo["id"])).attachments)
    refused = [
        (bob_welcome["token"], photo["id"], 0, "demo"),  # another visitor's photo
        (bob_welcome["token"], pdf["id"], 0, "demo"),
        (carl_welcome["token"], photo["id"], 0, other_site.public_key),  # another site's visitor
        (ann_token, photo["id"], 0, other_site.public_key),  # Ann's token is no token on another site
        (ann_token, 987654, 0, "demo"),  # a made-up message
        (ann_token, photo["id"], 1, "demo"),  # an attachment the message has not
        (ann_token, note.id, 0, "demo"),  # a staff note in her own conversation
        (ann_token, "abc", 0, "demo"),
    ]
    for token, message_id, index, site in refused:
        status, body, _ = await fetch_file(http, frontdesk.url, token, message_id, index, site=site)
        expected = 401 if token == ann_token and site != "demo" else 404
        assert status == expected, (message_id, index, site)
        assert PNG not in body
        assert PDF not in body
    status, body, _ = await fetch_file(http, frontdesk.url, ann_token, photo["id"], origin="https://elsewhere.example")
    assert status == 403
    status, body, _ = await fetch_file(http, frontdesk.url, ann_token, photo["id"])
    assert (status, body) == (200, PNG)  # and Ann herself still gets it
    for socket in (ann, bob, carl):
        await socket.socket.close()


async def test_a_visitors_photo_reaches_the_managers_topic_and_a_managers_photo_reaches_the_visitor(
        database_url: str, sim: Simulator, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    ai.script.reply = "Let me find someone."
    async with manager_desk(database_url, sim, ai) as desk:
        url = desk.frontdesk.url
        visitor, welcome = await open_widget(http, url)
        token = welcome["token"]
        await visitor.socket.send_json({"type": "person"})
        await visitor.until(lambda f: f["type"] == "message" and f["author"] == "system")
        [topic] = await wait_for_topic(sim, desk.chat_id)
        await wait_in_topic(sim, desk.chat_id, topic.thread_id, 1)  # the header card
        status, frame = await upload(http, url, token, PNG, caption="The cake as it arrived")
        assert status == 201, frame
        status, pdf = await upload(http, url, token, PDF, name="receipt.pdf")
        assert status == 201, pdf
        shown = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 3)
        photo, document = shown[1], shown[2]
        assert photo["caption"] == "The cake as it arrived"
        assert sim.world.files[photo["photo"][-1]["file_id"]].data == PNG  # the bytes themselves, uploaded
        assert document["document"]["file_name"] == "receipt.pdf"
        assert sim.world.files[document["document"]["file_id"]].data == PDF
        story = "It was dropped at the door. " * 50  # 1400 characters: longer than a Telegram caption
        status, long = await upload(http, url, token, PNG, caption=story)
        assert status == 201, long
        shown = await wait_in_topic(sim, desk.chat_id, topic.thread_id, 5)
        assert "caption" not in shown[3]
        assert sim.world.files[shown[3]["photo"][-1]["file_id"]].data == PNG
        assert shown[4]["text"] == story.strip()  # the words follow the file, whole

        sim.send_photo(desk.mia["id"], content=PNG, caption="Here is the replacement", chat_id=desk.chat_id,
                       thread_id=topic.thread_id)
        reply = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "manager")
        assert reply["text"] == "Here is the replacement"
        assert reply["attachments"] == [{"type": "photo", "name": "", "file": True, "image": True}]
        status, body, headers = await fetch_file(http, url, token, reply["id"])  # through getFile
        assert (status, body, headers["Content-Type"]) == (200, PNG, "image/png")
        assert headers["Content-Disposition"].startswith("inline")
        await eventually(lambda: _has_photo_call(sim), "the photo was fetched with getFile")
        sim.send_document(desk.mia["id"], file_name="menu.pdf", content=PDF, mime_type="application/pdf",
                          chat_id=desk.chat_id, thread_id=topic.thread_id)
        menu = await visitor.until(lambda f: f["type"] == "message" and f["author"] == "manager"
                                   and f["id"] != reply["id"])
        assert menu["attachments"] == [{"type": "document", "name": "menu.pdf", "file": True, "image": False}]
        status, body, headers = await fetch_file(http, url, token, menu["id"])
        assert (status, body, headers["Content-Type"]) == (200, PDF, "application/pdf")
        assert headers["Content-Disposition"] == "attachment; filename*=UTF-8''menu.pdf"
        await visitor.socket.close()

        # Staff see the visitor's files in the Mini App, through a route that checks the conversation is theirs
        # to see; a customer gets nothing, and a message is found only in its own conversation.
        conversation = frame["conversation"]
        other = sim.create_user("Olga")
        sim.send_text(other["id"], "hi")
        await eventually(lambda: Message.filter(author__telegram_id=other["id"]).exists(), "Olga's message")
        olgas = await Message.filter(author__telegram_id=other["id"]).first()
        assert olgas is not None
        async with app_client(desk.frontdesk, sim, BOSS_ID) as boss, app_client(desk.frontdesk, sim,
                                                                                  other["id"]) as olga:
            path = f"/api/conversations/{conversation}/messages/{frame['id']}/files/0"
            async with boss.session.get(boss.base + path, headers=boss.headers()) as response:
                assert (response.status, await response.read()) == (200, PNG)
                assert response.headers["Content-Type"] == "image/png"
                assert response.headers["X-Content-Type-Options"] == "nosniff"
            for who, asked, status in (
                    (olga, path, 403),  # a customer is no staff
                    (boss, f"/api/conversations/{olgas.conversation_id}/messages/{frame['id']}/files/0", 404),
                    (boss, f"/api/conversations/{conversation}/messages/{frame['id']}/files/1", 404),
                    (boss, f"/api/conversations/{conversation}/messages/987654/files/0", 404)):
                async with who.session.get(who.base + asked, headers=who.headers()) as response:
                    assert response.status == status, asked
                    assert PNG not in await response.read()
            async with boss.session.get(boss.base + f"/api/conversations/{conversation}/messages/{pdf['id']}/files/0",
                                        headers=boss.headers()) as response:
                assert (response.status, await response.read()) == (200, PDF)
                assert response.headers["Content-Disposition"] == "attachment; filename*=UTF-8''receipt.pdf"


async def _has_photo_call(sim: Simulator) -> bool:
    return bool(sim.calls("getFile"))


@pytest.mark.parametrize("frontdesk_settings", [{"WIDGET_UPLOAD_TYPES": "image/png, image/jpeg"}], indirect=True)
async def test_a_deployment_that_takes_only_photos_refuses_a_pdf_and_says_what_it_takes(
        frontdesk: Frontdesk, ai: FakeAI, http: aiohttp.ClientSession) -> None:
    visitor, welcome = await open_widget(http, frontdesk.url)
    status, body = await upload(http, frontdesk.url, welcome["token"], PDF, name="invoice.pdf")
    assert status == 415
    assert body["error"]["message"] == "This kind of file cannot be sent here. You can send: PNG, JPEG."
    async with http.get(f"{frontdesk.url}/widget/api/site?site=demo", headers={"Origin": frontdesk.url}) as response:
        site = await response.json()
    assert site["upload"]["types"] == ["image/png", "image/jpeg"]
    assert site["upload"]["accept"] == "image/png,image/jpeg,.png,.jpg,.jpeg"
    assert site["strings"]["file_type"] == "This kind of file cannot be sent here. You can send: PNG, JPEG."
    assert await StoredFile.all().count() == 0
    await visitor.socket.close()


def test_an_upload_type_we_cannot_check_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="WIDGET_UPLOAD_TYPES: image/svg"):
        Settings(_env_file=None, WIDGET_UPLOAD_TYPES="image/png,image/svg+xml")
