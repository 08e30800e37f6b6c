"""Answering a customer's message: the knowledge base, else the AI (streamed), else a person.

Runs from the outbox, never inside the webhook. Every stored customer message gets exactly one
outcome: an answer, a handoff notice, or a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from tortoise.transactions import in_transaction

from models import (
    AuthorKind,
    Bot,
    Conversation,
    ConversationMode,
    ConversationStatus,
    HandoffReason,
    KnowledgeItem,
    Message,
    MessageCopy,
    OutboxJob,
    User,
)
from services import (
    albums,
    bot_settings,
    conversations,
    customer_files,
    handoff,
    knowledge,
    persona,
    quotas,
    retrieval,
    tenant_settings,
    tokens,
    transcription,
    vision,
)
from services.ai import AIClient, AIReply, AIUnavailable
from services.budgets import BudgetWatch
from services.channels import Channels, CustomerChannel
from services.documents import DocumentError
from services.flow import ConversationFlow
from services.generation import GenerationStopped, Typing
from services.i18n import N_, Translate
from services.knowledge_index import KnowledgeIndex
from services.outbox import JobKind
from services.ports import MediaUnavailable, RecipientBlocked
from services.render import escape, html_to_text, markdown_to_html
from services.retrieval import Passage
from services.staff import WorkingHoursSource
from services.transcription import Transcriber, TranscriptionFailed

log = logging.getLogger(__name__)

FROM_KNOWLEDGE_BASE = N_("📚 From our knowledge base:")
SOURCES = N_("Sources:")
SLOW_DOWN = N_("You're sending messages very quickly. Please wait a moment, then write again.")
QUOTA_REACHED = N_("You've reached today's limit of AI answers, so I've passed your conversation to a person.")
NOT_TEXT = {  # photos go to a vision model, voice to a transcriber (or people): neither reaches these
    "sticker": N_("Nice sticker! How can I help you? Just type your question."),
    "document": N_("Thanks, I've received your file. Please also describe in words what you need."),
}
VOICE_TO_PEOPLE = N_("I can't listen to voice messages, so I've passed yours to a person.")
VOICE_TOO_LONG = N_("Your voice message is too long for me to listen to, so I've passed it to a person.")
VOICE_QUOTA = N_("You've reached today's limit of voice messages I can listen to, so I've passed yours to a person.")
IMAGES_QUOTA = N_("You've reached today's limit of images I can look at, so I've passed your conversation to a "
                  "person.")
NOT_TEXT_DEFAULT = N_("I've received your message, but I can only read text. Please type your question.")

# When the AI is down, a knowledge item is offered if it holds this share of the customer's words.
FALLBACK_COVERAGE = 0.5
FALLBACK_CANDIDATES = 3  # the best items by words the answer without the AI is chosen from


@dataclass(frozen=True)
class AnswerPolicy:
    kb_direct_threshold: float = 0.8
    daily_ai_quota: int = 200
    context_tokens: int = 3000
    draft_interval: float = 0.6
    widget_delta_interval: float = 0.15  # a widget shows the answer growing at about this pace
    vision_max_bytes: int = 10_000_000  # a bigger image is not given to the model (VISION_MAX_BYTES)
    transcribe_max_seconds: int = 300  # a longer voice goes to people untranscribed (TRANSCRIBE_MAX_SECONDS)
    daily_transcriptions: int = 50  # per customer per UTC day (CUSTOMER_DAILY_TRANSCRIPTIONS)
    daily_images: int = 30  # images given to a vision model, per customer per UTC day (CUSTOMER_DAILY_IMAGES)
    album_settle_seconds: float = 1.0  # an album is answered once its items stopped arriving (ALBUM_SETTLE_SECONDS)
    file_max_bytes: int = 10_000_000  # a bigger file a customer sends is not read (CUSTOMER_FILE_MAX_BYTES)
    file_tokens: int = 4000  # of the customer's files, the AI reads this much (CUSTOMER_FILE_TOKENS)


# Marks the reply to a question nobody could answer (the AI said it cannot; no AI and no knowledge
# item held it): what the knowledge base lacks, listed for staff by services.knowledge_suggestions.
UNANSWERED = "unanswered"


# --- what the real answer and the staff's "try it" both decide with -------------------------------


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, Any]]
    passages: list[Passage]  # the knowledge put before the model, best first, numbered from 1

    @property
    def hits(self) -> list[Passage]:
        """The Q&A items among the passages."""
        return [passage for passage in self.passages if passage.kind == "item"]


# The share of the prompt's token budget that knowledge passages may take; history gets the rest.
KNOWLEDGE_SHARE = 0.6
PASSAGES = 8

KNOWLEDGE_RULES = (
    "Answer from these passages only. Mark each fact with the number of the passage it came from, "
    "like [1] or [2][3]. If the passages do not hold the answer, say so plainly; never guess prices, "
    "dates, policies or promises.")


def knowledge_section(passages: Sequence[Passage]) -> str:
    """The passages as the model reads them: numbered, each with where it came from."""
    blocks = "\n\n".join(f"[{number}] {passage.label}\n{passage.text}"
                          for number, passage in enumerate(passages, start=1))
    return f"# Knowledge (the best matches for the customer's message)\n\n{blocks}\n\n{KNOWLEDGE_RULES}"


async def build_prompt(bot_id: int, question: str, *, locale: str, context_tokens: int,
                       earlier: Sequence[Message] = (), index: KnowledgeIndex | None = None,
                       persona_text: str | None = None, images: Sequence[dict[str, Any]] = (),
                       files: Sequence[tuple[str, str]] = (),
                       items_by_words: Sequence[knowledge.KnowledgeHit] | None = None) -> Prompt:
    """The persona (the active one, unless a draft is tried), the best passages of knowledge, the customer's
    files (`files`: name and text, for this conversation only), as much of `earlier` as the budget holds, the
    question. `items_by_words`: what `items_by_words` found for the question, when the caller has it."""
    system = persona_text if persona_text is not None else await persona.active_persona(bot_id)
    found = await retrieval.retrieve(bot_id, question, index=index, limit=PASSAGES, items_by_words=items_by_words)
    passages = retrieval.within_budget(found, int(context_tokens * KNOWLEDGE_SHARE) - tokens.estimate(system))
    if passages:
        system += "\n\n" + knowledge_section(passages)
    if files:  # their own budget (CUSTOMER_FILE_TOKENS): the history's is not spent on them
        system += "\n\n" + customer_files.section(files)
    system += f"\n\nThe customer's language: {locale}. Today is {datetime.now(UTC):%Y-%m-%d}."
    budget = context_tokens - tokens.estimate(system) + sum(tokens.estimate(text) for _, text in files)
    turns: list[dict[str, Any]] = []
    for message in reversed(earlier):
        said = transcription.said(message.text, message.attachments)
        cost = tokens.estimate(said)
        if cost > budget or not said:
            break
        budget -= cost
        role = "user" if message.author_kind == AuthorKind.CUSTOMER else "assistant"
        # A manager's words are stored as Telegram HTML (their formatting reaches the customer).
        content = html_to_text(said) if message.author_kind == AuthorKind.MANAGER else said
        turns.append({"role": role, "content": content})
    turns.reverse()
    return Prompt([{"role": "system", "content": system}, *turns, _asked(question, images)], passages)


def _asked(question: str, images: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The customer's message: its words, and the images they sent with it as content parts."""
    if not images:
        return {"role": "user", "content": question}
    return {"role": "user", "content": [{"type": "text", "text": question or vision.WITHOUT_WORDS}, *images]}


_CITATION = re.compile(r"[ \t]?\[(\d{1,2})\]")


@dataclass(frozen=True)
class Source:
    title: str
    url: str  # "" for a document


@dataclass(frozen=True)
class Cited:
    text: str  # the answer without its [n] marks
    sources: list[Source]  # the documents and pages it drew from, each once


# An answer that marks nothing drew from a top passage when it shares at least this share of its content
# words with it; a greeting or a "let me check" shares none, and names no source.
UNMARKED_SOURCE_WORDS = 0.3


def cite(text: str, passages: Sequence[Passage]) -> Cited:
    """The answer's sources: the passages it marked, else those of the top three whose words it repeats.

    Only documents and web pages are sources (a Q&A item is the business's own answer). Marks that
    name no passage are removed too; a link is only ever a page that was given to the model.
    """
    marked = [int(number) for number in _CITATION.findall(text)]
    clean = _CITATION.sub("", text).strip()
    used = [passages[n - 1] for n in dict.fromkeys(marked) if 1 <= n <= len(passages)]
    if not marked:
        used = [passage for passage in passages[:3] if passage.kind == "chunk"
                and retrieval.shared_words(clean, passage.text) >= UNMARKED_SOURCE_WORDS]
    sources: dict[tuple[str, str], Source] = {}
    for passage in used:
        if passage.kind == "chunk":
            sources.setdefault((passage.title, passage.url), Source(passage.title or passage.url, passage.url))
    return Cited(clean, list(sources.values()))


def sources_html(translate: Translate, locale: str, sources: Sequence[Source]) -> str:
    """The line under an answer: document titles, and links to the web pages."""
    names = [f'<a href="{escape(source.url)}">{escape(source.title)}</a>' if source.url else escape(source.title)
             for source in sources]
    return f"<i>{escape(translate(locale, SOURCES))}</i> " + "; ".join(names)


def passages_meta(passages: Sequence[Passage]) -> list[dict[str, Any]]:
    """What staff see under an AI answer: the passages it was given, so a wrong answer can be traced."""
    return [{"kind": passage.kind, "id": passage.id, "label": passage.label, "url": passage.url,
             "score": round(passage.score, 4),
             "similarity": None if passage.similarity is None else round(passage.similarity, 4),
             "text": passage.text[:600]} for passage in passages]


async def items_by_words(bot_id: int, question: str) -> list[knowledge.KnowledgeHit]:
    """The knowledge items the question's words find, as many as each use of them needs: one search for
    the direct answer, the AI's passages and the answer without the AI."""
    return await knowledge.search(bot_id, question, limit=retrieval.Scoring().candidates)


def fallback_among(found: Sequence[knowledge.KnowledgeHit]) -> knowledge.KnowledgeHit | None:
    """Without the AI: the item holding most of the customer's words, when it holds enough of them, among
    `found`, knowledge.search's hits for the question (of any limit: its first ones are the same)."""
    best = max(found[:FALLBACK_CANDIDATES], key=lambda hit: hit.coverage, default=None)
    return best if best is not None and best.coverage >= FALLBACK_COVERAGE else None


def knowledge_answer_html(translate: Translate, locale: str, item: KnowledgeItem) -> str:
    """A knowledge item's answer as the customer sees it: its Markdown, rendered, under a header."""
    header = escape(translate(locale, FROM_KNOWLEDGE_BASE))
    return f"<i>{header}</i>\n\n{markdown_to_html(item.answer)}"


@dataclass(frozen=True)
class _NotHeard:
    notice: str  # what the customer is told as people take the voice over


@dataclass
class _Context:
    message: Message
    conversation: Conversation
    customer: User  # their language was set when they were registered
    channel: CustomerChannel  # where they wrote: the answer is shown there
    settings: tenant_settings.TenantSettings  # the bot's, read once with the message (budget, quota, models)
    previewed: bool = False  # the customer reads the answer's draft already
    images: list[dict[str, Any]] = field(default_factory=list)  # image parts the model is shown with the question
    # What knowledge.search found for a question, searched once: at rush hour every statement waits its turn
    found_by_words: dict[str, list[knowledge.KnowledgeHit]] = field(default_factory=dict)

    @property
    def locale(self) -> str:
        return str(self.customer.language)


class Answerer:
    def __init__(self, channels: Channels, flow: ConversationFlow, translate: Translate, policy: AnswerPolicy,
                 ai: AIClient | None = None, hours: WorkingHoursSource | None = None,
                 index: KnowledgeIndex | None = None, transcriber: Transcriber | None = None,
                 budget: BudgetWatch | None = None) -> None:
        self.channels = channels
        self.budget = budget  # None: no bot has a monthly AI budget
        self.transcriber = transcriber  # None: voice goes to people
        self.flow = flow  # the outcomes are conversation events: open pages and widgets hear of them
        self.index = index  # None: knowledge is found by its words alone
        self.translate = translate
        self.policy = policy
        self.hours = hours or WorkingHoursSource("", "UTC")
        self.ai = ai

    async def try_answer(self, bot_id: int, question: str, locale: str) -> TryAnswer:
        """What a customer would get for `question` now (see `try_answer`), with this answerer's settings."""
        return await try_answer(bot_id, question, ai=self.ai, policy=self.policy, translate=self.translate,
                                hours=self.hours, locale=locale, index=self.index)

    # --- outbox job handlers -----------------------------------------------------------------

    async def answer_job(self, job: OutboxJob) -> None:
        context = await self._load(job)
        if context is None:
            return
        await albums.settle(context.message, self.policy.album_settle_seconds)  # an album: all of its items
        first_handoff = context.conversation.handed_off_at is None
        with contextlib.suppress(RecipientBlocked):  # the channel marked them: nothing more is sent there
            await self._answer(context)
        if first_handoff and context.message.attachments:
            await self._media_to_people(context)
        await conversations.note_customer_message(context.message)  # once, after the outcome
        await self.flow.answered(context.conversation)

    async def slow_down_job(self, job: OutboxJob) -> None:
        await self._notice_job(job, SLOW_DOWN, count=True)

    async def gave_up(self, job: OutboxJob) -> None:
        """A job failed for good: people take over, and the customer is told so, never left in silence."""
        if job.kind != JobKind.ANSWER:
            return
        context = await self._load(job)
        if context is None or context.conversation.mode == ConversationMode.HUMAN:
            return  # people have it already (a voice heard for them failed): nothing to hand over or tell
        with contextlib.suppress(RecipientBlocked):
            await self._hand_off(context, HandoffReason.AI_FAILURE)

    async def _notice_job(self, job: OutboxJob, notice: str, *, count: bool = False) -> None:
        context = await self._load(job)
        if context is None:
            return
        if count:
            await conversations.note_customer_message(context.message)
        with contextlib.suppress(RecipientBlocked):
            await self._notice(context, notice, {"source": "notice"})

    # --- the decision ----------------------------------------------------------------------------

    async def _load(self, job: OutboxJob) -> _Context | None:
        message = await Message.get_or_none(id=job.payload.get("message_id")).select_related(
            "conversation__user", "conversation__bot")  # one query: this runs for every answer, hundreds at once
        if message is None:
            return None
        if await Message.exists(reply_to_id=message.id):
            return None  # answered already: this is a re-run after a crash
        conversation = message.conversation
        channel = self.channels.of(conversation)
        if not channel.reachable(conversation.user):  # Postpone while the channel is off
            return None
        return _Context(message, conversation, conversation.user, channel, tenant_settings.of(conversation.bot))

    async def _by_words(self, context: _Context, question: str) -> list[knowledge.KnowledgeHit]:
        found = context.found_by_words.get(question)
        if found is None:
            found = context.found_by_words[question] = await items_by_words(context.customer.bot_id, question)
        return found

    async def _answer(self, context: _Context) -> None:
        voice = transcription.spoken(context.message.attachments)
        if context.conversation.mode == ConversationMode.HUMAN:
            if voice is not None:  # heard for the managers, who read it under the voice; the AI stays silent
                await self._hear(context, voice)
            await self._while_people_have_it(context)  # the manager desk copies it to them, if there is one
            return
        if vision.images_of(context.message.attachments):
            await self._answer_images(context)
            return
        if customer_files.files_of(context.message.attachments):
            await self._answer_files(context)
            return
        question = context.message.text.strip()
        if voice is not None:
            heard = await self._hear(context, voice)
            if isinstance(heard, _NotHeard):
                await self._hand_off(context, HandoffReason.CANNOT_ANSWER, lead=heard.notice)
                return
            question = f"{question}\n\n{heard}".strip()
        if not question:
            kind = next((str(a.get("type")) for a in context.message.attachments), "")
            await self._notice(context, NOT_TEXT.get(kind, NOT_TEXT_DEFAULT), {"source": "notice"})
            return
        await self._answer_question(context, question)

    async def _answer_question(self, context: _Context, question: str, *, asked: str = "") -> None:
        """Words to answer: the knowledge base's direct answer, else the AI within the quota, else the best item
        or people. `asked` is what the AI is asked when the customer gave no words (a file alone)."""
        if question:
            direct = knowledge.direct_among(await self._by_words(context, question), question,
                                            self.policy.kb_direct_threshold)
            if direct is not None:
                await self._answer_from_knowledge(context, direct)
                return
        if self.ai is None:
            await self._without_ai(context, question)
            return
        await self._answer_with_quota(context, question or asked)

    async def _answer_with_quota(self, context: _Context, question: str) -> bool:
        """The AI's answer within the customer's daily quota; False when the quota was used up (people have
        it now, and no model was asked)."""
        bot_id: int = context.customer.bot_id
        if self.budget is not None and not await self.budget.allows_ai(bot_id, context.settings):
            # The bot's monthly AI budget is used up: as without the AI, its best item or people (not for images).
            await self._without_ai(context, "" if context.images else question, HandoffReason.CANNOT_ANSWER)
            return False
        # Taken before the call, so that parallel answers (another conversation, the widget) cannot
        # together pass the quota; given back when no model answered or the job will run again.
        quota = bot_settings.daily_ai_quota_of(context.settings, self.policy.daily_ai_quota)
        reservation = await quotas.reserve(bot_id, context.customer.id, quota)
        if reservation is None:
            await self._hand_off(context, HandoffReason.CANNOT_ANSWER, lead=QUOTA_REACHED)
            return False
        try:
            await self._answer_with_ai(context, question, reservation)
        finally:
            await asyncio.shield(reservation.release())  # a no-op once the model's use was settled
        return True

    async def _hear(self, context: _Context, voice: dict[str, Any]) -> str | _NotHeard:
        """The voice's transcript, stored with the message (in its attachment) before it is answered, and
        shown to the managers; or why it was not heard: no provider, longer than allowed, the customer's
        daily transcriptions used up, the file not fetched, nothing heard."""
        if voice.get("transcript"):
            return str(voice["transcript"])  # a re-run after a crash: heard already
        if self.transcriber is None:
            return _NotHeard(VOICE_TO_PEOPLE)
        seconds = transcription.seconds_of(voice)
        if seconds > self.policy.transcribe_max_seconds:
            return _NotHeard(VOICE_TOO_LONG)
        allowance = await quotas.allow(context.customer.bot_id, context.customer.id, "transcriptions", 1,
                                       self.policy.daily_transcriptions)
        if allowance is None:
            return _NotHeard(VOICE_QUOTA)
        heard: transcription.Transcript | None = None
        try:
            content = await context.channel.media(context.customer.bot_id, voice, self.transcriber.max_bytes)
            if content is not None:
                heard = await self.transcriber.transcribe(content, str(voice["type"]), context.locale)
        except (MediaUnavailable, TranscriptionFailed) as error:
            log.warning("voice of message %s not transcribed: %s", context.message.id, error)
        finally:
            if heard is None:  # the provider transcribed nothing: the customer's transcription is given back
                await asyncio.shield(allowance.release())
        if heard is None:
            return _NotHeard(VOICE_TO_PEOPLE)
        await allowance.settle(audio_seconds=seconds, cost=self.transcriber.cost(seconds))
        if not heard.text:
            return _NotHeard(VOICE_TO_PEOPLE)
        voice["transcript"] = heard.text
        voice["transcribed_by"] = heard.model
        await self.flow.transcribed(context.message)
        return heard.text

    async def _answer_images(self, context: _Context) -> None:
        """A photo or image file, with its caption: a model that sees images answers, within the customer's
        daily images, else a person."""
        if self.ai is None or not self.ai.can_see:
            await self._hand_off(context, HandoffReason.CANNOT_ANSWER, lead=vision.CANNOT_SEE)
            return
        allowance = await quotas.allow(context.customer.bot_id, context.customer.id, "images",
                                       len(vision.images_of(context.message.attachments)), self.policy.daily_images)
        if allowance is None:
            await self._hand_off(context, HandoffReason.CANNOT_ANSWER, lead=IMAGES_QUOTA)
            return
        for attachment in vision.images_of(context.message.attachments):
            try:
                data = await context.channel.media(context.customer.bot_id, attachment, self.policy.vision_max_bytes)
            except MediaUnavailable as error:
                log.info("image of message %s not fetched: %s", context.message.id, error)
                data = None
            part = vision.image_part(data) if data else None
            if part is not None:
                context.images.append(part)
        if not context.images:  # too big, gone, or no image after all
            await allowance.release()
            await self._hand_off(context, HandoffReason.CANNOT_ANSWER, lead=vision.NOT_OPENED)
            return
        try:
            if await self._answer_with_quota(context, context.message.text.strip()):
                await allowance.settle(len(context.images))  # the images the model was given
        finally:
            await asyncio.shield(allowance.release())  # none was given; a no-op once settled

    async def _answer_files(self, context: _Context) -> None:
        """A file (or an album of files): its text is context for this conversation, and its caption (or, without
        one, a request to look at it) is answered like text. A file that cannot be read goes to a person."""
        problem = await self._read_files(context)
        if problem is not None:
            await self._hand_off(context, HandoffReason.CANNOT_ANSWER, lead=problem)
            return
        await self._answer_question(context, context.message.text.strip(), asked=customer_files.WITHOUT_WORDS)

    async def _media_to_people(self, context: _Context) -> None:
        """When the answer to photos or a file handed the conversation to people, they see those in the topic
        (the message was stored before the topic existed, and the header card only names it)."""
        if await Conversation.filter(id=context.conversation.id, mode=ConversationMode.HUMAN).exists():
            await conversations.show_to_managers(context.message, context.customer)
            self.flow.wake()

    async def _read_files(self, context: _Context) -> str | None:
        """Each file's text, kept in its attachment (`text`) for the later turns too; the customer's notice when
        one cannot be read. Never written to the knowledge base."""
        limit = self.policy.file_max_bytes
        problem: str | None = None
        read = False
        for attachment in customer_files.files_of(context.message.attachments):
            if attachment.get("text"):
                continue  # read before (a re-run after a crash)
            name = customer_files.filename(attachment)
            size = attachment.get("size")
            if isinstance(size, int) and size > limit:
                problem = customer_files.TOO_BIG
                continue
            if name is None:
                problem = customer_files.UNSUPPORTED
                continue
            try:
                data = await context.channel.media(context.customer.bot_id, attachment, limit)
                if data is None:
                    raise MediaUnavailable("this channel cannot fetch it")
                attachment["text"] = await asyncio.to_thread(customer_files.read, name, data, limit,
                                                             self.policy.file_tokens)
                read = True
            except MediaUnavailable as error:
                log.info("file of message %s not fetched: %s", context.message.id, error)
                problem = customer_files.NOT_READ
            except DocumentError as error:
                log.info("file of message %s not read: %s", context.message.id, error)
                problem = customer_files.TOO_BIG if error.code in ("too_large", "too_many_pages", "zip_bomb") \
                    else customer_files.NOT_READ
        if read:
            await Message.filter(id=context.message.id).update(attachments=context.message.attachments)
        return problem

    async def _answer_with_ai(self, context: _Context, question: str, reservation: quotas.Reservation) -> None:
        try:
            reply, passages = await self._ask_ai(context, question)
        except GenerationStopped as stopped:
            await reservation.settle()
            await self._deliver_stopped(context, without_marks(stopped.text))
            return
        except AIUnavailable as error:
            log.warning("AI unavailable for message %s: %s", context.message.id, error)
            await reservation.release()
            await self._without_ai(context, question)
            return
        await reservation.settle(tokens_in=reply.tokens_in, tokens_out=reply.tokens_out, cost=reply.cost)
        unanswered = reply.handoff_reason == HandoffReason.CANNOT_ANSWER
        if reply.handoff_reason is not None:
            # People own the conversation before the customer reads the AI's last words.
            await self._hand_off(context, HandoffReason(reply.handoff_reason), quiet=bool(reply.text),
                                 unanswered=unanswered)
            if not reply.text:
                return
        await self._deliver_ai(context, reply, passages, unanswered=unanswered)

    async def _without_ai(self, context: _Context, question: str, reason: HandoffReason | None = None) -> None:
        """No AI (none configured, all models failed, or the budget is used up): the best knowledge item, else a
        person."""
        best = fallback_among(await self._by_words(context, question))
        if best is not None:
            await self._answer_from_knowledge(context, best)
        else:
            await self._hand_off(context, reason or without_ai_reason(self.ai is not None), unanswered=True)

    async def _while_people_have_it(self, context: _Context) -> None:
        """A message to people who hear of it in the app's inbox only (no manager chat): while none has
        joined yet, the customer is told it waits there. One notice answers a run of messages: a message
        that something of ours already follows gets none of its own."""
        conversation = context.conversation
        if conversation.status != ConversationStatus.WAITING:
            return
        bot = await Bot.get(id=context.customer.bot_id)
        if bot.manager_chat_id is not None:
            return  # the managers see it in their chat; the handoff notice said when they answer
        followed = await Message.filter(conversation_id=conversation.id, id__gt=context.message.id).exclude(
            author_kind=AuthorKind.CUSTOMER).exists()
        if not followed:
            await self._notice(context, handoff.STILL_WAITING, {"source": "notice", "waiting": True})

    async def _answer_from_knowledge(self, context: _Context, hit: knowledge.KnowledgeHit) -> None:
        await knowledge.count_hit(hit.item)
        await self._reply(context, knowledge_answer_html(self.translate, context.locale, hit.item), AuthorKind.AI,
                          {"source": "knowledge", "knowledge_item": hit.item.id}, markdown=hit.item.answer)

    async def _hand_off(self, context: _Context, reason: HandoffReason, *, lead: str | None = None,
                        quiet: bool = False, unanswered: bool = False) -> None:
        await self.flow.ai_handed_off(context.conversation, reason)
        if quiet:
            return
        bot = await Bot.get(id=context.customer.bot_id)
        hours = self.hours(bot)
        if lead is None:
            text = await handoff.handoff_notice(bot, hours, self.translate, context.locale, reason)
        else:
            text = f"{self.translate(context.locale, lead)} " \
                   f"{await handoff.expectation(bot, hours, self.translate, context.locale)}"
        meta: dict[str, Any] = {"source": "handoff", "reason": reason.value}
        if unanswered:
            meta[UNANSWERED] = True
        await self._reply(context, escape(text), AuthorKind.SYSTEM, meta)

    # --- the AI ----------------------------------------------------------------------------------

    async def _ask_ai(self, context: _Context, question: str) -> tuple[AIReply, list[Passage]]:
        assert self.ai is not None
        prompt = await self._prompt(context, question)
        typing = self._typing(context)
        try:
            reply = await self._stream(context, prompt, typing)
        finally:
            await typing.waiting(False)
        return reply, prompt.passages

    async def _stream(self, context: _Context, prompt: Prompt, typing: Typing) -> AIReply:
        """The AI's answer, shown to the customer as it is written (a draft in Telegram, the widget's deltas)."""
        assert self.ai is not None
        bot_id: int = context.customer.bot_id
        preview = None
        try:
            async with context.channel.preview(context.customer, context.message) as preview:
                return await self.ai.answer(prompt.messages, preview.update, tenant=bot_id, on_wait=typing.waiting,
                                            order=context.settings.ai_routes, pause=preview.read_pause)
        finally:
            context.previewed = preview is not None and preview.shown  # also when stopped: what was read stays

    def _typing(self, context: _Context) -> Typing:
        """Shows the customer "typing…" while their answer waits for its turn at the AI provider."""
        return context.channel.typing(context.customer, context.message)

    async def _deliver_stopped(self, context: _Context, text: str) -> None:
        """Keep what was written before the customer pressed stop."""
        meta = {"source": "ai", "stopped": True}
        if text.strip():
            await self._reply(context, markdown_to_html(text), AuthorKind.AI, meta, markdown=text)
        else:
            await self._record(context, "", AuthorKind.AI, meta, sent=[])

    async def _prompt(self, context: _Context, question: str) -> Prompt:
        earlier = await conversations.history(context.conversation.id, before_id=context.message.id)
        return await build_prompt(context.customer.bot_id, question, locale=context.locale,
                                  context_tokens=self.policy.context_tokens, earlier=earlier, index=self.index,
                                  images=context.images, files=customer_files.conversation_files(
                                      [*earlier, context.message], self.policy.file_tokens),
                                  items_by_words=await self._by_words(context, question))

    async def _deliver_ai(self, context: _Context, reply: AIReply, passages: Sequence[Passage], *,
                          unanswered: bool = False) -> None:
        """The answer without its [n] marks, under it the documents and pages it drew from."""
        cited = cite(reply.text, passages)
        sources = [] if unanswered else cited.sources
        meta = reply.meta()
        meta["passages"] = passages_meta(passages)
        if sources:
            meta["sources"] = [{"title": source.title, "url": source.url} for source in sources]
        if unanswered:
            meta[UNANSWERED] = True
        html = markdown_to_html(cited.text)
        if sources:
            html += "\n\n" + sources_html(self.translate, context.locale, sources)
        await self._reply(context, html, AuthorKind.AI, meta, markdown=cited.text)

    # --- delivery --------------------------------------------------------------------------------

    async def _notice(self, context: _Context, message_id: str, meta: dict[str, Any]) -> None:
        """One of our own fixed messages, in the customer's language."""
        await self._reply(context, escape(self.translate(context.locale, message_id)), AuthorKind.SYSTEM, meta)

    async def _reply(self, context: _Context, html: str, author: AuthorKind, meta: dict[str, Any], *,
                     markdown: str | None = None) -> None:
        """Show the reply where the customer wrote, and record it; the record marks the message answered."""
        text = markdown if markdown is not None else html

        async def record(sent: list[int]) -> Message:
            return await self._record(context, text, author, meta, sent)

        await context.channel.reply(context.customer, html, record, previewed=context.previewed)

    async def _record(self, context: _Context, text: str, author: AuthorKind, meta: dict[str, Any],
                      sent: list[int]) -> Message:
        bot_id: int = context.customer.bot_id
        async with in_transaction():
            reply = await Message.create(
                bot_id=bot_id, conversation_id=context.conversation.id, author_kind=author,
                text=text, ai_meta=meta, reply_to_id=context.message.id)
            chat_id = context.customer.telegram_id
            await MessageCopy.bulk_create([MessageCopy(bot_id=bot_id, message=reply, chat_id=chat_id,
                                                       telegram_message_id=sent_id) for sent_id in sent])
            now = datetime.now(UTC)
            await Conversation.filter(id=context.conversation.id).update(last_message_at=now)
            await Conversation.filter(id=context.conversation.id, first_response_at=None).update(
                first_response_at=now)
        return reply


# --- "try it": the same decisions, nothing stored, sent or counted ---------------------------------


@dataclass(frozen=True)
class UsedItem:
    id: int
    question: str
    rank: float  # the database's relevance: larger is better


@dataclass(frozen=True)
class TryAnswer:
    """What a customer asking the question would get now."""

    source: Literal["knowledge", "ai", "none"]
    text: str  # the item's or the model's Markdown; a handoff notice is plain text
    html: str  # the Telegram HTML the customer would see
    items: list[UsedItem]  # the item answered with, or the items put before the model
    handoff_reason: str | None = None  # people would take the conversation over, for this reason
    model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    cost: float = 0.0
    ai_error: str = ""  # every model failed: the answer is the one given without the AI
    passages: list[dict[str, Any]] = field(default_factory=list)  # what the model was given (`passages_meta`)
    sources: list[Source] = field(default_factory=list)  # the documents and pages the answer names


MAX_TRY_CHARS = 4096


async def try_answer(bot_id: int, question: str, *, ai: AIClient | None, policy: AnswerPolicy,
                     translate: Translate, hours: WorkingHoursSource, locale: str,
                     index: KnowledgeIndex | None = None, persona_text: str | None = None,
                     earlier: Sequence[Message] = ()) -> TryAnswer:
    """The answer `Answerer` would give a new conversation's first message (or, with `earlier`, the
    next one), for staff trying it out; with `persona_text`, as a draft persona would answer.

    Nothing is stored, sent or counted (no message, usage, quota or hit count); the AI is really
    called, so its metrics count the call. Staff have no quota, so the quota check is left out.
    """
    question = question.strip()
    if not question:
        raise knowledge.KnowledgeError("empty_question")
    if len(question) > MAX_TRY_CHARS:
        raise knowledge.KnowledgeError("too_long", field="question", limit=MAX_TRY_CHARS)
    found = await items_by_words(bot_id, question)
    direct = knowledge.direct_among(found, question, policy.kb_direct_threshold)
    if direct is not None:
        return _tried_knowledge(translate, locale, direct)
    if ai is None:
        return await _tried_without_ai(bot_id, found, translate, hours, locale, ai_configured=False)
    prompt = await build_prompt(bot_id, question, locale=locale, context_tokens=policy.context_tokens, index=index,
                                earlier=earlier, persona_text=persona_text, items_by_words=found)
    try:
        reply = await ai.answer(prompt.messages, _unseen, tenant=bot_id)
    except AIUnavailable as error:
        return replace(await _tried_without_ai(bot_id, found, translate, hours, locale, ai_configured=True),
                       ai_error=str(error))
    cited = cite(reply.text, prompt.passages)
    sources = [] if reply.handoff_reason == HandoffReason.CANNOT_ANSWER else cited.sources
    text, html = cited.text, markdown_to_html(cited.text)
    if sources:
        html += "\n\n" + sources_html(translate, locale, sources)
    if reply.handoff_reason is not None and not reply.text:
        text = await _handoff_text(bot_id, HandoffReason(reply.handoff_reason), translate, hours, locale)
        html = escape(text)
    return TryAnswer("ai", text, html, [_used(hit) for hit in prompt.hits], reply.handoff_reason, reply.model,
                     reply.tokens_in, reply.tokens_out, reply.latency_ms, reply.cost,
                     passages=passages_meta(prompt.passages), sources=sources)


async def _tried_without_ai(bot_id: int, found: Sequence[knowledge.KnowledgeHit], translate: Translate,
                            hours: WorkingHoursSource, locale: str, *, ai_configured: bool) -> TryAnswer:
    best = fallback_among(found)
    if best is not None:
        return _tried_knowledge(translate, locale, best)
    reason = without_ai_reason(ai_configured)
    text = await _handoff_text(bot_id, reason, translate, hours, locale)
    return TryAnswer("none", text, escape(text), [], reason.value)


def without_ai_reason(ai_configured: bool) -> HandoffReason:
    """Why a question nobody answered goes to people: with no AI configured nothing failed, the knowledge
    base had no answer; with one, every model failed."""
    return HandoffReason.AI_FAILURE if ai_configured else HandoffReason.NOT_IN_KNOWLEDGE


def _tried_knowledge(translate: Translate, locale: str, hit: knowledge.KnowledgeHit) -> TryAnswer:
    return TryAnswer("knowledge", hit.item.answer, knowledge_answer_html(translate, locale, hit.item), [_used(hit)])


async def _handoff_text(bot_id: int, reason: HandoffReason, translate: Translate, hours: WorkingHoursSource,
                        locale: str) -> str:
    bot = await Bot.get(id=bot_id)
    return await handoff.handoff_notice(bot, hours(bot), translate, locale, reason)


def _used(hit: knowledge.KnowledgeHit | Passage) -> UsedItem:
    if isinstance(hit, Passage):
        return UsedItem(hit.id, hit.title, hit.score)
    return UsedItem(hit.item.id, hit.item.question, hit.rank)


def without_marks(text: str) -> str:
    """The answer as the customer gets it: without its [n] marks (only where it is shown: the model's
    text grows by a token at a time, and most of its states are never shown)."""
    return _CITATION.sub("", text)


def preview_html(text_so_far: str) -> str:
    """An answer's draft as Telegram shows it."""
    return markdown_to_html(without_marks(text_so_far))


async def _unseen(text_so_far: str) -> None:
    """Nobody watches a preview being written."""
