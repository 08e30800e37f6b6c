"""Manager-group backlog benchmark: N customers handed off within a second, at Telegram's real limits.

Frontdesk (SQLite, one process) serves a tgsim Simulator whose flood limits are Telegram's: 20
messages a minute into one group, 1 a second into a private chat after a burst of 3, 30 a second
in all. N customers each send /human and two texts at once. Measured: how long until every customer
had their handoff notice (customers come first; the time of the last notice's sendMessage, from
tgsim's call log), and until the forum group showed every topic with its header card and every
text, in order. The script exits 1 when a customer had no notice, a topic or a text is missing or
out of order, or the group got other than three messages a customer. The best possible time for M group messages at 20 a
minute is (M - 1) // 20 minutes. `python bench/desk_backlog.py [--customers 50]` writes its
section of docs/BENCHMARKS.md; it takes about as many minutes as there are customers x 3 / 20.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from common import DOC_PATH, marks, write_section
from tgsim import Simulator

from bot import db
from tests.conftest import TOKEN, free_port, frontdesk_environment, running_frontdesk

BEGIN_MARK, END_MARK = marks("desk_backlog.py")
GROUP_PER_MINUTE = 20
NOTICE = "Sure! I've asked a person to join."  # the /human notice, in English


class NotDone(Exception):
    """The work the benchmark times did not happen."""


async def run(customers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as work:
        database_url = f"sqlite://{work}/bench.sqlite3"
        await db.migrate(database_url)
        async with Simulator(token=TOKEN, port=0, bot_username="frontdesk_bench_bot") as sim:
            boss = sim.create_user("Boss", id=900_001)
            group = sim.create_group("Managers", owner=boss["id"], forum=True)
            env = frontdesk_environment(database_url, sim, None, free_port(), MANAGER_CHAT_ID=group["id"],
                                        ADMIN_IDS="900001", LOG_LEVEL="WARNING")
            env.pop("REDIS_URL", None)
            async with running_frontdesk(env):
                people = [sim.create_user(f"Customer {n:03d}") for n in range(customers)]
                started = time.time()  # tgsim's call log is stamped with time.time()
                for person in people:
                    sim.send_command(person["id"], "human")
                for person in people:
                    sim.send_text(person["id"], f"first from {person['first_name']}")
                    sim.send_text(person["id"], f"second from {person['first_name']}")
                await sim.wait_until_delivered(timeout=120)
                accepted = time.time() - started

                def notices() -> dict[str, float]:  # when each customer's notice was sent
                    return {str(c["params"]["chat_id"]): c["time"] for c in sim.calls("sendMessage")
                            if c["ok"] and NOTICE in str(c["params"].get("text", ""))}

                try:
                    await sim.wait_until(lambda: len(notices()) >= customers, 120, "every customer's notice")
                except TimeoutError as error:
                    raise NotDone(f"{customers - len(notices())} customers had no handoff notice") from error
                notified = max(notices().values()) - started
                if {str(p["id"]) for p in people} != set(notices()):
                    raise NotDone("a notice went to someone other than the customers")
                chat = sim.world.find_chat(group["id"])
                assert chat is not None

                def done() -> bool:
                    texts = [m.get("text", "") for m in sim.chat_history(group["id"])]
                    return sum("second from" in text for text in texts) == customers

                try:
                    await sim.wait_until(done, customers * 60, "the backlog")
                except TimeoutError as error:
                    raise NotDone("not every customer's second text reached the group") from error
                elapsed = time.time() - started
                sent = [c for c in sim.calls() if c["ok"] and c["params"].get("chat_id") == group["id"]
                        and c["method"] in ("sendMessage", "createForumTopic")]
                flooded = [c for c in sim.calls() if c.get("error_code") == 429]
                check_topics(sim, group["id"], people)
                if len(chat.topics) != customers or len(sent) != 3 * customers:
                    raise NotDone(f"{len(chat.topics)} topics and {len(sent)} group messages for {customers} "
                                  f"customers (expected one topic and three messages each)")
                return {"customers": customers, "accepted": accepted, "notified": notified, "elapsed": elapsed,
                        "group_messages": len(sent), "best": (len(sent) - 1) // GROUP_PER_MINUTE * 60.0,
                        "topics": len(chat.topics), "flooded": len(flooded)}


def check_topics(sim: Simulator, group_id: int, people: list[dict[str, Any]]) -> None:
    """Each customer's topic shows their header card, then the first text, then the second."""
    chat = sim.world.find_chat(group_id)
    assert chat is not None
    names = {p["first_name"] for p in people}
    for topic in chat.topics.values():
        name = topic.name.removeprefix("❗ ")
        shown = "\n".join(m.get("text", "") for m in sim.chat_history(group_id, thread_id=topic.thread_id))
        names.discard(name)
        try:
            if not shown.index(name) < shown.index(f"first from {name}") < shown.index(f"second from {name}"):
                raise NotDone(f"{name}'s topic shows their messages out of order")
        except ValueError as error:
            raise NotDone(f"{name}'s topic lacks their card or a text") from error
    if names:
        raise NotDone(f"no topic for {len(names)} customers")


def report(result: dict[str, float], command: str) -> str:
    return "\n".join([
        BEGIN_MARK,
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Command: `{command}` (one run: the figure is set by the limit, not by the machine)",
        "",
        "| what | value |",
        "| --- | --- |",
        f"| customers handed off within a second, each then writing two texts | {int(result['customers'])} |",
        f"| all updates acknowledged by the webhook | {result['accepted']:.1f} s |",
        f"| every customer had their handoff notice (the last notice's sendMessage) | {result['notified']:.1f} s |",
        f"| topics created | {int(result['topics'])} |",
        f"| messages into the group (topic creations, header cards, copies) | {int(result['group_messages'])} |",
        f"| every text shown in its topic, in order | {result['elapsed']:.1f} s |",
        f"| best possible at {GROUP_PER_MINUTE} messages a minute | {result['best']:.0f} s |",
        f"| backlog time against that best | {result['elapsed'] / max(result['best'], 1):.2f}x |",
        f"| 429 answers (each waited out and retried) | {int(result['flooded'])} |",
        "",
        "Two texts a customer sent while their topic's copies were queued went out as one message, so "
        "each customer cost three group messages (topic, card, texts) instead of four.",
        END_MARK,
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    try:
        result = asyncio.run(run(args.customers))
    except NotDone as error:
        print(f"desk_backlog: the work did not happen: {error}", file=sys.stderr)
        return 1
    section = report(result, f"python bench/desk_backlog.py --customers {args.customers}")
    print(section)
    if not args.no_write:
        write_section(DOC_PATH, "desk_backlog.py", section, "Manager group backlog at Telegram's real limits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
