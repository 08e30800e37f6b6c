"""A model that streams like a hosted one, in a process of its own, for the benchmarks.

tests/fake_ai.py's FakeAI answers every chat completion with the same reply of `--chars` characters,
its first words `--first-token` seconds after the request and the rest in `--chunks` pieces
`--chunk-delay` seconds apart (by default 250 ms, then 100 pieces of 18 characters, 50 ms apart:
about 5.25 s an answer, some 80 tokens a second). Running it here keeps its CPU out of the
process that drives the clients.

It prints one JSON line, `{"port": P, "stats_port": S}`, then serves until stopped. On the stats
port: `GET /stats` gives the completions requested, streamed now and the most streamed at once;
`GET /requests` lists when each completion was asked for (wall clock) and the `[customer N]` tag
of its last message (bench/fleet.py's questions carry one); `POST /reset` starts those counts afresh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import signal
import sys
import time
from collections.abc import Sequence

from aiohttp import web
from common import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fake_ai import FakeAI

SENTENCES = (
    "Thank you for writing to us, and for your patience while it is busy in the shop.",
    "We deliver every day from ten in the morning to nine in the evening, across the whole city.",
    "An order placed before six in the evening usually arrives the same day, within two hours.",
    "Delivery is free for orders over forty dollars; below that it costs four dollars.",
    "You can pay by card when you order, or in cash or by card to the courier at the door.",
    "If something in your order is missing or damaged, write to us here and we put it right the same day.",
    "Our shop on the main square is open from nine to eight, and on Sundays from ten to six.",
    "Gift wrapping is free, and we can add a handwritten card with your words if you tell us what to write.",
    "Returns are accepted within fourteen days with the receipt, and the refund reaches your card in a few days.",
    "Regular customers collect points with every order, and every tenth delivery is on us.",
)
LAST_SENTENCE = "Is there anything else I can help you with today?"
CUSTOMER_TAG = re.compile(r"\[customer (\d+)\]")  # bench/fleet.py's questions carry it


def reply_text(chars: int) -> str:
    """A realistic shop answer of about `chars` characters (plain text, nothing to render), ending with
    LAST_SENTENCE, which tells the complete answer apart from a preview of it."""
    sentences: list[str] = []
    while sum(len(sentence) + 1 for sentence in sentences) + len(LAST_SENTENCE) < chars:
        sentences.append(SENTENCES[len(sentences) % len(SENTENCES)])
    return " ".join([*sentences, LAST_SENTENCE])


def chunk_size(chars: int, chunks: int) -> int:
    return max(1, math.ceil(len(reply_text(chars)) / chunks))


async def serve(args: argparse.Namespace) -> None:
    fake = await FakeAI().start()
    fake.script.reply = reply_text(args.chars)
    fake.script.first_token_delay = args.first_token
    fake.script.chunk_delay = args.chunk_delay
    fake.script.chunk_size = chunk_size(args.chars, args.chunks)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"requests": len(fake.started), "streaming": fake.streaming,
                                  "most_streaming": fake.most_streaming})

    async def requests(_: web.Request) -> web.Response:
        """When each completion was asked for (wall clock), and the `[customer N]` tag of its last message."""
        now_wall, now_mono = time.time(), time.monotonic()
        listed = []
        for body, started in zip(fake.requests, fake.started, strict=False):
            found = CUSTOMER_TAG.search(json.dumps(body.get("messages", [])[-1:], ensure_ascii=False))
            listed.append({"at": now_wall - (now_mono - started), "tag": found.group(1) if found else ""})
        return web.json_response(listed)

    async def reset(_: web.Request) -> web.Response:
        fake.started.clear()
        fake.requests.clear()  # FakeAI keeps every request body: let them go between rows
        fake.most_streaming = fake.streaming
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_get("/requests", requests)
    app.router.add_post("/reset", reset)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    stats_port = runner.addresses[0][1]
    print(json.dumps({"port": fake.port, "stats_port": stats_port}), flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    await runner.cleanup()
    await fake.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--first-token", type=float, default=0.25, help="seconds to the first words")
    parser.add_argument("--chunks", type=int, default=100, help="pieces the reply streams in")
    parser.add_argument("--chunk-delay", type=float, default=0.05, help="seconds between pieces")
    parser.add_argument("--chars", type=int, default=1800, help="length of the reply")
    asyncio.run(serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
