"""`python -m bot` (or `frontdesk`): run the server, or manage the database, knowledge and persona."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError
from tqdm import tqdm

from bot import db
from bot import transfer as transfer_module
from bot.encryption import secret_box
from bot.knowledge import knowledge_sources
from bot.observability import configure_logging
from bot.settings import PROJECT_ROOT, Settings
from models import Bot as Tenant
from models import KnowledgeSource, SourceStatus
from services import accounts, bot_settings, bots, budgets, knowledge, persona, widget
from services.embeddings import create_embedder
from services.knowledge_index import KnowledgeIndex
from services.knowledge_sources import KnowledgeSources, SourceError, SourceView
from services.redaction import Secrets
from services.secrets_box import new_key

T = TypeVar("T")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Frontdesk: an AI front desk on Telegram.")
    # Commands that touch one business's data name its bot; with one bot in the deployment, that one.
    one_bot = argparse.ArgumentParser(add_help=False)
    one_bot.add_argument("--bot", default=None, metavar="USERNAME_OR_ID",
                         help="the bot whose data this is (default: the only one; `bots list` shows them)")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="start the server (the default)")
    commands.add_parser("migrate", help="apply database migrations")
    kb = commands.add_parser("kb", help="the knowledge base").add_subparsers(dest="kb_command", required=True)
    kb_import = kb.add_parser("import", parents=[one_bot],
                              help="import a .csv (question,answer[,tags]) or .md (## question) file")
    kb_import.add_argument("file", type=Path)
    kb_add = kb.add_parser("add", parents=[one_bot],
                           help="index a document (PDF, Word .docx, HTML, Markdown, text) or a website; "
                                "exits 0 once it is ready")
    kb_add.add_argument("location", metavar="PATH_OR_URL")
    kb_add.add_argument("--single-page", action="store_true", help="a URL: only this page, not the site it is on")
    kb_add.add_argument("--page-limit", type=int, default=None, help="a site: at most this many pages "
                                                                      "(default KNOWLEDGE_PAGE_LIMIT, 200)")
    kb.add_parser("sync", parents=[one_bot], help="re-read every web source now")
    kb.add_parser("sources", parents=[one_bot], help="list the documents and websites")
    kb_remove = kb.add_parser("remove", parents=[one_bot], help="delete a source and its passages")
    kb_remove.add_argument("source_id", type=int, metavar="ID")
    persona_parser = commands.add_parser("persona", help="the AI persona").add_subparsers(
        dest="persona_command", required=True)
    persona_set = persona_parser.add_parser("set", parents=[one_bot], help="make a text file the active persona")
    persona_set.add_argument("file", type=Path)
    export = commands.add_parser("export", help="write the whole database, or one bot's data (--bot), to a file "
                                                "(JSON Lines)")
    export.add_argument("file", type=Path)
    export.add_argument("--bot", default=None, metavar="USERNAME_OR_ID",
                        help="only this bot's data (default: the whole database, every bot)")
    load = commands.add_parser("import", help="load an export into a new, migrated database")
    load.add_argument("file", type=Path)
    sites = commands.add_parser("site", help="websites that embed the chat widget").add_subparsers(
        dest="site_command", required=True)
    site_add = sites.add_parser("add", parents=[one_bot], help="register a website; prints its public key last")
    site_add.add_argument("--origin", action="append", required=True, metavar="URL",
                          help="an origin allowed to embed the widget, e.g. https://shop.example (repeatable)")
    site_add.add_argument("--title", default="", help="the chat window's title")
    site_add.add_argument("--color", default="", help="the accent colour, e.g. #2563eb")
    site_add.add_argument("--text-color", default="", help="text on the accent colour, e.g. #ffffff")
    site_add.add_argument("--greeting", default="", help="the first message visitors see")
    sites.add_parser("list", parents=[one_bot], help="the registered websites")
    site_remove = sites.add_parser("remove", parents=[one_bot], help="stop serving a website's widget")
    site_remove.add_argument("key")
    site_rotate = sites.add_parser("rotate-secret", parents=[one_bot],
                                   help="give a website a new identity secret; prints it last")
    site_rotate.add_argument("key")
    site_rotate.add_argument("--overlap-hours", type=float, default=None, metavar="N",
                             help="how long the old secret still verifies identities (default "
                                  "WIDGET_SECRET_OVERLAP_HOURS, 24; 0: it stops at once)")
    link = commands.add_parser("dashboard-link", parents=[one_bot],
                               help="print a one-time link that signs an admin in to the desk "
                                    "in a browser (works without Telegram)")
    link.add_argument("--admin", type=int, default=None, metavar="ID",
                      help="which of ADMIN_IDS it signs in (default: the first)")
    link.add_argument("--name", default="", help="your first name, as customers see it when you join a chat "
                                                 "(Telegram tells it once you use the bot)")
    commands.add_parser("demo", parents=[one_bot],
                        help="load the demo coffee shop: its knowledge in English, Russian and Uzbek, its "
                             "persona and its name (works while the server runs)")
    _bots_parser(commands)
    commands.add_parser("encryption-key", help="print a new random ENCRYPTION_KEY")
    commands.add_parser("rotate-keys", help="re-seal stored API keys under ENCRYPTION_KEY (after changing it: "
                                            "put the old key in ENCRYPTION_OLD_KEYS first)")
    return parser


def _amount(text: str) -> Decimal | None:
    try:
        return budgets.parse_amount(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _bots_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bots_parser = commands.add_parser("bots", help="the bots this deployment serves (the platform owner's)")
    bots_commands = bots_parser.add_subparsers(dest="bots_command", required=True)
    add = bots_commands.add_parser("add", help="serve a bot: its token from @BotFather ('-' reads it from stdin, "
                                               "which keeps it out of the shell's history)")
    add.add_argument("token", metavar="TOKEN")
    bots_commands.add_parser("list", help="each bot's id, username, Telegram id and state")
    for name, text in (("pause", "stop serving a bot, keeping everything"), ("resume", "serve a paused bot again")):
        bots_commands.add_parser(name, help=text).add_argument("bot", metavar="USERNAME_OR_ID")
    remove = bots_commands.add_parser("remove", help="stop serving a bot; its data is deleted after "
                                                     "BOT_RETENTION_DAYS")
    remove.add_argument("bot", metavar="USERNAME_OR_ID")
    remove.add_argument("--export", type=Path, default=None, metavar="FILE",
                        help="first write its data to FILE (as `export --bot`); it is removed only if that worked")
    budget = bots_commands.add_parser("budget", help="a bot's monthly AI budget in dollars: at it, the AI pauses until "
                                                     "the month ends (UTC) and the bot's admins are told")
    budget.add_argument("bot", metavar="USERNAME_OR_ID")
    budget.add_argument("amount", metavar="AMOUNT|off", type=_amount,
                        help="dollars, like 25 or 12.50; 'off': no budget")
    token = bots_commands.add_parser("token", help="give a bot its new token (after /revoke in @BotFather)")
    token.add_argument("bot", metavar="USERNAME_OR_ID")
    token.add_argument("token", metavar="TOKEN", help="'-' reads it from stdin")


async def _with_database(settings: Settings, work: Awaitable[T]) -> T:
    await db.open_database(settings.database_url, pool_size=settings.database_pool_size)
    try:
        return await work
    finally:
        await db.close_database()


async def _business(settings: Settings, reference: str | None) -> Tenant:
    """The bot a command acts on: `--bot`, else the deployment's only one (services.bots.for_command)."""
    return await bots.for_command(reference, settings.bot_telegram_id, settings.telegram_enabled)


async def _import_knowledge(settings: Settings, path: Path, reference: str | None) -> None:
    entries = knowledge.parse_file(path)
    tenant = await _business(settings, reference)
    with tqdm(total=len(entries), unit="item", desc=f"Importing {path.name}") as bar:
        report = await knowledge.import_entries(tenant.id, entries, progress=bar.update)
    print(f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged")


def _knowledge_sources(settings: Settings) -> KnowledgeSources:
    # The CLI does nothing else meanwhile: the in-process model may use every core (two: 1.9x as fast).
    threads = max(settings.embedding_threads, os.cpu_count() or 1)
    embedder = create_embedder(settings.embedding_base_url, settings.embedding_api_key, settings.embedding_model,
                               threads)
    return knowledge_sources(settings, embedder, KnowledgeIndex(embedder), lambda: None)


async def _knowledge_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.kb_command == "import":
        await _import_knowledge(settings, args.file, args.bot)
        return 0
    tenant = await _business(settings, args.bot)
    sources = _knowledge_sources(settings)
    try:
        if args.kb_command == "add":
            return await _add_source(sources, tenant.id, args)
        if args.kb_command == "sync":
            synced = await sources.sync_all(tenant.id, _print_source)
            return 1 if any(source.status == SourceStatus.FAILED for source in synced) else 0
        if args.kb_command == "sources":
            for view in await sources.list_sources(tenant.id):
                _print_view(view)
            return 0
        await sources.remove(tenant.id, args.source_id)
        print(f"removed source {args.source_id}")
        return 0
    finally:
        await sources.embedder.close()


async def _add_source(sources: KnowledgeSources, bot_id: int, args: argparse.Namespace) -> int:
    bar = tqdm(total=0, unit="passage", desc=f"Indexing {args.location}", disable=not sys.stderr.isatty())

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        source = await sources.index_now(bot_id, args.location, whole_site=not args.single_page,
                                         page_limit=args.page_limit, progress=progress)
    except SourceError as error:
        bar.close()
        print(f"error: {args.location}: {error}", file=sys.stderr)
        return 1
    bar.close()
    print(f"source {source.id} is ready: {source.title} ({source.chunk_count} passages)")
    return 0


def _print_source(source: KnowledgeSource) -> None:
    reason = f": {source.error.get('detail') or source.error.get('code')}" if source.error else ""
    print(f"{source.id}\t{source.status}{reason}\t{source.chunk_count} passages\t{source.location}")


def _print_view(view: SourceView) -> None:
    synced = f"{view.last_synced_at:%Y-%m-%d %H:%M}" if view.last_synced_at else "-"
    state = view.status.value + ("" if view.enabled else " (disabled)")
    print(f"{view.id}\t{view.kind.value}\t{state}\t{view.chunk_count} passages\t{synced}\t{view.title}\t"
          f"{view.location}")


async def _set_persona(settings: Settings, path: Path, reference: str | None) -> None:
    tenant = await _business(settings, reference)
    version = await persona.set_persona(tenant.id, path.read_text(encoding="utf-8"))
    print(f"persona version {version.version} is now active")


async def _site_command(settings: Settings, args: argparse.Namespace) -> None:
    tenant = await _business(settings, args.bot)
    if args.site_command == "add":
        site = await widget.create_site(tenant.id, args.origin, title=args.title, color=args.color,
                                        text_color=args.text_color, greeting=args.greeting)
        base = settings.public_address.base()
        print(f"origins: {', '.join(site.allowed_origins)}")
        print(f"identity secret (keep it on your server): {site.secret}")
        print(f"embed: {widget.embed_snippet(site, base)}")
        print(site.public_key)
    elif args.site_command == "list":
        for site in await widget.list_sites(tenant.id):
            print(f"{site.public_key}\t{site.title or '-'}\t{' '.join(site.allowed_origins)}")
    elif args.site_command == "rotate-secret":
        await _rotate_secret(settings, tenant, args.key, args.overlap_hours)
    elif not await widget.remove_site(tenant.id, args.key):
        raise ValueError(f"no site has the key {args.key!r}")
    else:
        print(f"removed {args.key}")


async def _rotate_secret(settings: Settings, tenant: Tenant, key: str, overlap_hours: float | None) -> None:
    hours = settings.widget_secret_overlap_hours if overlap_hours is None else overlap_hours
    if not 0 <= hours <= widget.MAX_SECRET_OVERLAP_HOURS:
        raise ValueError(f"--overlap-hours must be between 0 and {widget.MAX_SECRET_OVERLAP_HOURS}")
    site = await widget.site_by_key(key)
    if site is None or site.bot_id != tenant.id:
        raise ValueError(f"no site has the key {key!r}")
    site = await widget.rotate_secret(site, timedelta(hours=hours))
    until = widget.previous_secret_until(site)
    print(f"the old secret works until {until:%Y-%m-%d %H:%M} UTC" if until else "the old secret no longer works")
    print(f"new identity secret (keep it on your server): {site.secret}")


async def _rotate_keys(settings: Settings, secrets: Secrets) -> int:
    from services.provider_keys import KeyPolicy, ProviderKeys  # the openai client: only this command needs it

    box = secret_box(settings, secrets)
    report = await ProviderKeys(box, secrets, KeyPolicy()).rotate()
    print(f"re-sealed {report.resealed} keys under the current ENCRYPTION_KEY; {report.current} already were")
    tokens, unreadable_tokens = await bots.reseal_tokens(box)
    print(f"re-sealed {tokens} bot tokens")
    if report.unreadable:
        ids = ", ".join(map(str, report.unreadable))
        print(f"error: {len(report.unreadable)} keys (ids {ids}) open with neither ENCRYPTION_KEY nor any of "
              "ENCRYPTION_OLD_KEYS: add the key they were sealed with to ENCRYPTION_OLD_KEYS and run this again",
              file=sys.stderr)
    if unreadable_tokens:
        print(f"error: the tokens of bots {', '.join(map(str, unreadable_tokens))} open with no configured key: add "
              "the key they were sealed with to ENCRYPTION_OLD_KEYS and run this again, or give each its token "
              "again (`bots token`)", file=sys.stderr)
    return 1 if report.unreadable or unreadable_tokens else 0


def _token_argument(value: str) -> str:
    """A token from the command line, or from stdin for '-' (out of the shell's history and `ps`)."""
    return sys.stdin.readline().strip() if value == "-" else value


async def _bots_command(settings: Settings, secrets: Secrets, args: argparse.Namespace) -> None:
    from bot.bot_tokens import token_identifier  # only these commands talk to Telegram

    if args.bots_command == "list":
        for listed in await bots.listed():
            print(bots.describe(listed))
        return
    if args.bots_command == "add":
        token = _token_argument(args.token)
        secrets.add(token)  # never in a log line from here on
        print(bots.describe(await bots.add_bot(token, token_identifier(settings), secret_box(settings, secrets))))
        await _tell_instances(settings)
        return
    found = await bots.find(args.bot)
    if found is None:
        raise bots.BotError(f"no bot is called {args.bot!r} (`bots list` shows them)")
    bot = found
    if args.bots_command == "token":
        token = _token_argument(args.token)
        secrets.add(token)
        bot = await bots.replace_token(bot, token, token_identifier(settings), secret_box(settings, secrets))
    elif args.bots_command == "pause":
        bot = await bots.pause(bot)
    elif args.bots_command == "resume":
        bot = await bots.resume(bot)
    elif args.bots_command == "budget":
        await budgets.set_budget(bot.id, args.amount)
        limit = "none" if args.amount is None else f"${args.amount:.2f} a month"
        print(f"AI budget: {limit}; spent this month (UTC): ${await budgets.spent_this_month(bot.id):.2f}")
    else:
        if args.export is not None:  # first: a failed export raises, and the bot stays as it is
            print(_exported(await transfer_module.export_file(args.export, bot.id)), file=sys.stderr)
        bot = await bots.remove(bot)
        print(f"its data is deleted after {settings.bot_retention_days} days; `bots add` with its token before "
              "then brings it back with its data", file=sys.stderr)
    if args.bots_command != "budget":
        await _tell_instances(settings)
    print(bots.describe(bot))


async def _tell_instances(settings: Settings) -> None:
    """The running instances apply a change to the bot table now (through Redis), else within
    BOTS_RECHECK_SECONDS (each looks at the table that often)."""
    if not settings.redis_url:
        return
    from redis.asyncio import Redis

    from bot.events import RedisBus, bus_prefix

    redis = Redis.from_url(settings.redis_url)
    try:
        await RedisBus(redis, bus_prefix(settings)).publish(bots.CHANGED_CHANNEL, {"bots": "changed"})
    except OSError as error:  # the change is made; the instances see it at their next look
        print(f"the running instances were not told at once ({error}); they see it within "
              f"{settings.bots_recheck_seconds:g} s", file=sys.stderr)
    finally:
        await redis.aclose()


async def _export(path: Path, reference: str | None) -> dict[str, int]:
    """The whole database (every bot: moving the deployment), or the bot named (a removed one too, while its
    data is kept)."""
    if reference is None:
        return await transfer_module.export_file(path)
    bot = await bots.find(reference)
    if bot is None:
        raise bots.BotError(f"no bot is called {reference!r} (`bots list` shows them)")
    return await transfer_module.export_file(path, bot.id)


def _exported(counts: dict[str, int]) -> str:
    return "exported " + ", ".join(f"{count} {table}" for table, count in counts.items())


DEMO = PROJECT_ROOT / "demo"
DEMO_BUSINESS = "Bean There"


async def _load_demo(settings: Settings, reference: str | None) -> None:
    """The demo shop, loaded again as often as wanted: items by question, the persona once, the name unless set."""
    files = sorted(DEMO.glob("knowledge*.md"))
    if not files:
        raise ValueError(f"the demo files are not in {DEMO} (they come with the source, not the package)")
    tenant = await _business(settings, reference)
    entries = [entry for path in files for entry in knowledge.parse_file(path)]
    report = await knowledge.import_entries(tenant.id, entries)
    print(f"knowledge ({', '.join(path.name for path in files)}): {report.created} created, {report.updated} "
          f"updated, {report.unchanged} unchanged")
    text = (DEMO / "persona.md").read_text(encoding="utf-8").strip()
    if await persona.active_persona(tenant.id) != text:
        print(f"persona version {(await persona.set_persona(tenant.id, text)).version} is now active")
    name = await bot_settings.set_business_name(tenant.id, DEMO_BUSINESS, None, via="cli", only_if_unset=True)
    print(f"business name: {name}")


def _link_admin(settings: Settings, wanted: int | None) -> int:
    """Which admin `dashboard-link` signs in: `--admin`, which must be in ADMIN_IDS, else the first of them."""
    if not settings.admin_ids:
        raise ValueError("ADMIN_IDS is empty: put your Telegram user id in it (in .env; README.md says how to "
                         "find it), then run this again")
    if wanted is not None and wanted not in settings.admin_ids:
        raise ValueError(f"--admin {wanted} is not one of ADMIN_IDS ({', '.join(map(str, settings.admin_ids))})")
    return settings.admin_ids[0] if wanted is None else wanted


async def _dashboard_link(settings: Settings, admin_id: int, name: str, reference: str | None) -> None:
    tenant = await _business(settings, reference)
    token = await accounts.admin_login_link(tenant.id, admin_id, name)
    minutes = int(accounts.LINK_LIFETIME.total_seconds() // 60)
    print(f"Sign-in link for admin {admin_id}: open it in your browser within {minutes} minutes; it works once.",
          file=sys.stderr)
    print(f"{settings.public_address.base()}/app/login?token={token}")


def _command(*args: str) -> str:
    """How to run another command of this installation from where the operator stands (.venv/bin/python -m bot)."""
    python = Path(sys.executable)
    try:
        shown = str(python.relative_to(Path.cwd()))
    except ValueError:
        shown = "python"
    return " ".join((shown, "-m", "bot", *args))


def next_steps(settings: Settings, *, has_knowledge: bool, has_bot: bool) -> list[str]:
    """What an operator does next, printed once the server is up: the first run's path, then what is missing."""
    base = settings.public_address.base()
    steps = []
    if settings.demo_enabled:
        steps.append(f"See the demo: open {base}/ and ask the chat bubble something.")
    if not has_knowledge:
        steps.append(f"Load the demo knowledge (in another terminal, while this runs): {_command('demo')}")
    if settings.admin_ids:
        steps.append(f"Sign in to the desk (the inbox of handed-off chats): {_command('dashboard-link')}")
    else:
        steps.append("Sign in to the desk: put your Telegram id in ADMIN_IDS in .env (send /id to your bot, or "
                     f"ask @userinfobot), restart, then run {_command('dashboard-link')}")
    if not has_bot:
        steps.append("Connect a bot: put BOT_TOKEN (from @BotFather) in .env and restart (README.md, "
                     "\"Connect a real bot\").")
    return ["", "Next steps:", *(f"  {number}. {step}" for number, step in enumerate(steps, 1)), ""]


def _serve(settings: Settings, secrets: Secrets) -> None:
    # Imported here: aiogram's types take seconds to import, which the other commands need not pay.
    from aiohttp import web

    from bot.app import create_app
    from bot.keys import TELEGRAM
    from miniapp.auth import MINIAPP
    from models import KnowledgeItem

    async def print_next_steps(app: web.Application) -> None:
        has_knowledge = await KnowledgeItem.filter(bot_id=app[MINIAPP].default_bot_id).exists()
        telegram = app.get(TELEGRAM)
        has_bot = settings.telegram_enabled or (telegram is not None and len(telegram.fleet) > 0)
        print("\n".join(next_steps(settings, has_knowledge=has_knowledge, has_bot=has_bot)), flush=True)

    logging.getLogger("bot").info("Frontdesk listens on http://%s:%s", settings.host, settings.port)
    app = create_app(settings, secrets)
    if settings.log_format == "text":  # a person at a terminal; JSON logs are read by machines
        app.on_startup.append(print_next_steps)  # after the app's own start: the database is open
    # SIGTERM/SIGINT: stop listening, give requests and running jobs the grace period, then exit.
    web.run_app(app, host=settings.host, port=settings.port, print=None,
                shutdown_timeout=settings.shutdown_grace_seconds)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "encryption-key":  # before the settings: production refuses to load without one
        print(new_key())
        return 0
    try:
        settings = Settings()
    except ValidationError as error:
        # Without the input values: they may hold the bot token or API keys.
        problems = "\n".join(f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                             for e in error.errors(include_input=False))
        print(f"error: the settings are not valid:\n{problems}", file=sys.stderr)
        return 2
    secrets = Secrets(settings.secrets)
    configure_logging(settings.log_level, settings.log_format, secrets)
    try:
        if args.command in (None, "run"):
            _serve(settings, secrets)
        elif args.command == "migrate":
            asyncio.run(db.migrate(settings.database_url))
            print("migrations applied")
        elif args.command == "kb":
            return asyncio.run(_with_database(settings, _knowledge_command(settings, args)))
        elif args.command == "persona":
            asyncio.run(_with_database(settings, _set_persona(settings, args.file, args.bot)))
        elif args.command == "site":
            asyncio.run(_with_database(settings, _site_command(settings, args)))
        elif args.command == "export":
            print(_exported(asyncio.run(_with_database(settings, _export(args.file, args.bot)))))
        elif args.command == "import":
            counts = asyncio.run(_with_database(settings, transfer_module.import_file(args.file)))
            print("imported " + ", ".join(f"{count} {table}" for table, count in counts.items()))
        elif args.command == "demo":
            asyncio.run(_with_database(settings, _load_demo(settings, args.bot)))
        elif args.command == "dashboard-link":
            admin_id = _link_admin(settings, args.admin)
            asyncio.run(_with_database(settings, _dashboard_link(settings, admin_id, args.name, args.bot)))
        elif args.command == "bots":
            asyncio.run(_with_database(settings, _bots_command(settings, secrets, args)))
        elif args.command == "rotate-keys":
            return asyncio.run(_with_database(settings, _rotate_keys(settings, secrets)))
    except (ValueError, OSError, transfer_module.TransferError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
