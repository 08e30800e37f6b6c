"""Fifty customers handed off within a second: the group's budget is spent in order, nothing is dropped.

Telegram's group limit is a window of N messages a minute. Here N is 100 (the same for tgsim and
for Frontdesk) so the backlog clears in about a minute, not the seven and a half it takes at the
real 20; `bench/desk_backlog.py` runs the same scenario at 20 for docs/BENCHMARKS.md.

It runs in the PostgreSQL run only: most of its minute is Telegram's window, the same on either database,
and the order per topic it guards is most at risk where claims run side by side, as they do on PostgreSQL.
The SQLite run holds the browser tests, so the two runs of tests/run.sh stay about as long as each other.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from tgsim import Simulator

from tests.conftest import BACKEND
from tests.desk_helpers import in_topic, manager_desk, topics
from tests.fake_ai import FakeAI

CUSTOMERS = 50
GROUP_PER_MINUTE = 100
NOTICE = "Sure! I've asked a person to join."


@pytest.mark.skipif(BACKEND != "postgres", reason="a minute of Telegram's window: run once, in the PostgreSQL run")
async def test_fifty_handoffs_in_a_second_reach_the_group_in_order_per_topic(
        database_url: str, sim: Simulator, ai: FakeAI, capsys: pytest.CaptureFixture[str]) -> None:
    sim.set_flood_limits(group_per_minute=GROUP_PER_MINUTE)
    async with manager_desk(database_url, sim, ai, GROUP_MESSAGES_PER_MINUTE=GROUP_PER_MINUTE) as desk:
        customers = [sim.create_user(f"Customer {n:02d}") for n in range(CUSTOMERS)]
        started = time.monotonic()
        for customer in customers:
            sim.send_command(customer["id"], "human")
        for customer in customers:
            sim.send_text(customer["id"], f"first from {customer['first_name']}")
            sim.send_text(customer["id"], f"second from {customer['first_name']}")
        await sim.wait_until_delivered(timeout=30)
        accepted = time.monotonic() - started

        def notified(customer: dict[str, Any]) -> bool:
            return any(m["from"]["is_bot"] and NOTICE in m.get("text", "") for m in sim.chat_history(customer["id"]))

        # Customers come first: every one has their handoff notice while the group's backlog still waits
        # for its budget (the group gets at most GROUP_PER_MINUTE messages in the first minute).
        await sim.wait_until(lambda: all(notified(c) for c in customers), 30, "every customer's handoff notice")
        notified_after = time.monotonic() - started
        group_so_far = [c for c in sim.calls() if c["ok"] and c["params"].get("chat_id") == desk.chat_id
                        and c["method"] in ("sendMessage", "createForumTopic")]
        assert len(group_so_far) <= GROUP_PER_MINUTE < CUSTOMERS * 3

        def shown(thread_id: int) -> str:
            return "\n".join(m.get("text", "") for m in in_topic(sim, desk.chat_id, thread_id))

        def everything_arrived() -> bool:
            opened = topics(sim, desk.chat_id).values()
            return len(opened) == CUSTOMERS and all("second from" in shown(t.thread_id) for t in opened)

        await sim.wait_until(everything_arrived, 180, "every customer's messages in their topic")
        elapsed = time.monotonic() - started

        for topic in topics(sim, desk.chat_id).values():
            name = topic.name.removeprefix("❗ ")
            text = shown(topic.thread_id)
            assert text.index(name) < text.index(f"first from {name}") < text.index(f"second from {name}")
        group_sends = [c for c in sim.calls() if c["params"].get("chat_id") == desk.chat_id
                       and c["method"] in ("sendMessage", "createForumTopic")]
        delivered = [c for c in group_sends if c["ok"]]
        flooded = [c for c in sim.calls() if c.get("error_code") == 429]
        minimum = (len(delivered) - 1) // GROUP_PER_MINUTE * 60  # a window of N a minute
        with capsys.disabled():
            print(f"\n[desk backlog] {CUSTOMERS} handoffs + {2 * CUSTOMERS} messages: webhook acknowledged all in "
                  f"{accepted:.1f}s, every customer notified in {notified_after:.1f}s; the group got {len(delivered)} "
                  f"messages in {elapsed:.1f}s (a {GROUP_PER_MINUTE}/min limit allows {minimum}s at best); "
                  f"429s retried: {len(flooded)}")
        # Two texts that waited behind the backlog went out as one message (the topic plus card are two).
        assert len(delivered) == CUSTOMERS * 3
        assert all(c["ok"] for c in sim.calls() if c.get("error_code") != 429)
