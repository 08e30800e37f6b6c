"""The intake: Telegram updates made durable before the webhook answers, and handed to workers one chat at a time.

The webhook's whole job is to store the update and answer (issue 20): everything else an update causes
(rate limits, the customer's message, the answer's job) runs later in a worker that reads this table. Two
parts live here, free of aiogram and aiohttp:

- `UpdateStore`, the table's statements in plain parameterised SQL: on the webhook's path and the workers'
  loop, building each statement with the ORM cost more than the rest of the work together (the profile in
  docs/BENCHMARKS.md), and a claim is one statement that the ORM cannot express;
- `GroupCommit`, which writes the updates that arrive while the previous batch is being written in one
  statement, so a burst costs one transaction (one fsync, one turn of SQLite's single connection), and
  answers each caller once the statement that holds its update has returned.

Times are integers, milliseconds since the epoch (`now_ms`): both databases compare them alike.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from models import UpdateState

log = logging.getLogger(__name__)

CLEAN_CHUNK = 5000
SQLITE_BATCH = 500  # 6 variables a row; SQLite allows 32,766 in one statement
UNLIMITED = 2**31 - 1  # a claim with no cap per bot


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Arrival:
    """An update as the webhook took it: whose, which, its chat (the lane), and the bytes Telegram sent."""

    bot_id: int
    update_id: int
    lane: int
    body: bytes

    @property
    def key(self) -> tuple[int, int]:
        return self.bot_id, self.update_id


@dataclass(frozen=True, slots=True)
class ClaimedUpdate:
    """A stored update a worker holds until its lease ends: `attempts` counts this one."""

    id: int
    bot_id: int
    update_id: int
    lane: int
    body: bytes
    attempts: int


# The claim's rule: a row runs only if it is the oldest unfinished row of its (bot, lane), it is due or its
# holder's lease ran out, and nothing else of its lane runs. Bots take turns: each bot's first due chat comes
# before any bot's second, so one bot's flood of new chats does not stand in front of every other bot. And a
# bot's updates that this claimer runs, with those it takes now, are at most $5: once a flood's handlers are
# running, another bot's customer arriving later finds the event loop as free as the bot's share leaves it.
_HEADS = """heads AS (SELECT MIN(id) AS id FROM telegram_update WHERE state < 2 GROUP BY bot_id, lane),
running AS (SELECT bot_id, COUNT(*) AS n FROM telegram_update  -- state < 2 lets SQLite read the open rows' index
            WHERE state < 2 AND state = 1 AND lease_owner = $1 AND lease_until >= $2 GROUP BY bot_id),
turns AS (SELECT u.id, ROW_NUMBER() OVER (PARTITION BY u.bot_id ORDER BY u.id) + COALESCE(running.n, 0) AS turn
          FROM heads JOIN telegram_update u ON u.id = heads.id LEFT JOIN running ON running.bot_id = u.bot_id
          WHERE (u.state = 0 AND u.run_after <= $2) OR (u.state = 1 AND u.lease_until < $2))"""
_CLAIMED = "RETURNING id, bot_id, update_id, lane, body, attempts"
CLAIM_SQLITE = f"""WITH {_HEADS}
UPDATE telegram_update SET state = 1, lease_owner = $1, lease_until = $2 + $3, attempts = attempts + 1
WHERE id IN (SELECT id FROM turns WHERE turn <= $5 ORDER BY turn, id LIMIT $4)
{_CLAIMED}"""
# On PostgreSQL several instances claim at once. The row's own columns are checked again under its lock (a row
# another claimer took after this statement's snapshot is skipped, never claimed twice), SKIP LOCKED keeps
# claimers from waiting on each other, and NOT EXISTS keeps a lane's late-committed older row from starting
# while a newer one of the lane runs (possible only across Telegram's queues: a button against a message).
CLAIM_POSTGRES = f"""WITH {_HEADS},
picked AS (
  SELECT u.id FROM turns JOIN telegram_update u ON u.id = turns.id
  WHERE turns.turn <= $5 AND ((u.state = 0 AND u.run_after <= $2) OR (u.state = 1 AND u.lease_until < $2))
    AND NOT EXISTS (SELECT 1 FROM telegram_update r WHERE r.bot_id = u.bot_id AND r.lane = u.lane
                    AND r.state = 1 AND r.id <> u.id AND r.lease_until >= $2)
  ORDER BY turns.turn, u.id LIMIT $4
  FOR UPDATE OF u SKIP LOCKED)
UPDATE telegram_update SET state = 1, lease_owner = $1, lease_until = $2 + $3, attempts = telegram_update.attempts + 1
FROM picked WHERE telegram_update.id = picked.id
  AND ((telegram_update.state = 0 AND telegram_update.run_after <= $2)
       OR (telegram_update.state = 1 AND telegram_update.lease_until < $2))
RETURNING telegram_update.id, bot_id, update_id, lane, body, attempts"""
APPEND_POSTGRES = """INSERT INTO telegram_update (bot_id, update_id, lane, body, run_after, received_at)
SELECT b, u, l, d, $5, $5 FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::bytea[]) AS t(b, u, l, d)
ON CONFLICT (bot_id, update_id) DO NOTHING
RETURNING bot_id, update_id"""
_APPEND_SQLITE = """INSERT INTO telegram_update (bot_id, update_id, lane, body, run_after, received_at)
VALUES {rows}
ON CONFLICT (bot_id, update_id) DO NOTHING
RETURNING bot_id, update_id"""
# The statements below are the same on both databases but for how a list of ids is passed: an array on
# PostgreSQL, a JSON array on SQLite (one statement text whatever the list's length).
_HELD = "lease_owner = $1 AND state = 1 AND id IN ({ids})"
FINISH = f"UPDATE telegram_update SET state = 2, body = NULL, finished_at = $2, lease_owner = '' WHERE {_HELD}"
RENEW = f"UPDATE telegram_update SET lease_until = $2 WHERE {_HELD}"
RELEASE = f"""UPDATE telegram_update SET state = 0, attempts = attempts - 1, lease_owner = '', lease_until = $2
WHERE {_HELD}"""
RETRY = """UPDATE telegram_update SET state = 0, run_after = $3, last_error = $4, lease_owner = '', lease_until = 0
WHERE lease_owner = $1 AND state = 1 AND id = $2"""
GIVE_UP = """UPDATE telegram_update SET state = $3, finished_at = $4, last_error = $5, lease_owner = ''
WHERE lease_owner = $1 AND state = 1 AND id = $2"""
CLEAN = """DELETE FROM telegram_update WHERE id IN (SELECT id FROM telegram_update
WHERE (state = 2 AND finished_at < $1) OR (state > 2 AND finished_at < $2) LIMIT $3)"""
BACKLOG = """SELECT COUNT(*) AS depth, MIN(CASE WHEN state = 0 AND run_after <= $1 THEN run_after END) AS oldest_due
FROM telegram_update WHERE state < 2"""


def _sqlite(sql: str) -> str:
    """PostgreSQL's numbered parameters as SQLite's (`$2` is `?2`: the same value may be used twice)."""
    return re.sub(r"\$(\d+)", r"?\1", sql)


class UpdateStore:
    """The `telegram_update` table's statements, each one round trip; on Tortoise's connection by default
    (on SQLite the only one: a second writer in the same file would fail Tortoise's transactions)."""

    def __init__(self, client: BaseDBAsyncClient | None = None) -> None:
        self.client = client if client is not None else connections.get("default")
        self.postgres = self.client.capabilities.dialect == "postgres"
        self._ids = "SELECT unnest($3::bigint[])" if self.postgres else "SELECT value FROM json_each($3)"

    async def _run(self, sql: str, values: list[Any]) -> list[dict[str, Any]]:
        return await self.client.execute_query_dict(sql if self.postgres else _sqlite(sql), values)

    def _id_list(self, ids: Sequence[int]) -> Any:
        return list(ids) if self.postgres else json.dumps(list(ids))

    async def append(self, arrivals: Sequence[Arrival], now: int) -> set[tuple[int, int]]:
        """Store what is new among `arrivals` in one statement (one transaction) and say which were new: a
        re-delivered update, or one twice in the batch, is stored once."""
        if self.postgres:
            rows = await self.client.execute_query_dict(APPEND_POSTGRES, [
                [a.bot_id for a in arrivals], [a.update_id for a in arrivals], [a.lane for a in arrivals],
                [a.body for a in arrivals], now])
        else:
            if len(arrivals) > SQLITE_BATCH:
                raise ValueError(f"at most {SQLITE_BATCH} updates a statement on SQLite")
            values: list[Any] = []
            for a in arrivals:
                values += [a.bot_id, a.update_id, a.lane, a.body, now, now]
            sql = _APPEND_SQLITE.format(rows=", ".join(["(?, ?, ?, ?, ?, ?)"] * len(arrivals)))
            rows = await self.client.execute_query_dict(sql, values)
        return {(row["bot_id"], row["update_id"]) for row in rows}

    async def claim(self, owner: str, now: int, lease_ms: int, limit: int,
                    per_bot: int = UNLIMITED) -> list[ClaimedUpdate]:
        """Take up to `limit` updates that may run now, oldest first, bots in turn (the bot with the fewest
        running under `owner` first), each bot's running ones and those taken now at most `per_bot`; one
        statement."""
        rows = await self._run(CLAIM_POSTGRES if self.postgres else CLAIM_SQLITE,
                               [owner, now, lease_ms, limit, per_bot])
        return sorted((ClaimedUpdate(row["id"], row["bot_id"], row["update_id"], row["lane"], bytes(row["body"]),
                                     row["attempts"]) for row in rows), key=lambda update: update.id)

    async def finish(self, owner: str, ids: Sequence[int], now: int) -> None:
        """Handled: the body goes, the key stays to refuse a re-delivery; the lane's next update may run."""
        await self._run(FINISH.format(ids=self._ids), [owner, now, self._id_list(ids)])

    async def renew(self, owner: str, ids: Sequence[int], until: int) -> None:
        await self._run(RENEW.format(ids=self._ids), [owner, until, self._id_list(ids)])

    async def release(self, owner: str, ids: Sequence[int]) -> None:
        """Hand updates back unhandled (a stopping worker): the attempt is not counted."""
        await self._run(RELEASE.format(ids=self._ids), [owner, 0, self._id_list(ids)])

    async def retry(self, owner: str, update_id: int, run_after: int, error: str) -> None:
        """Failed this time: again at `run_after`; its lane waits for it, to keep the chat's order."""
        await self._run(RETRY, [owner, update_id, run_after, error[:2000]])

    async def give_up(self, owner: str, update_id: int, state: UpdateState, now: int, error: str = "") -> None:
        """Failed for good, or its bot is no longer served: the lane moves on; the body stays for a look."""
        await self._run(GIVE_UP, [owner, update_id, state.value, now, error[:2000]])

    async def clean(self, handled_before: int, failed_before: int, chunk: int = CLEAN_CHUNK) -> int:
        """Delete up to `chunk` old rows (a short statement: SQLite's one connection is not held long)."""
        rows = await self._run(CLEAN + " RETURNING id", [handled_before, failed_before, chunk])
        return len(rows)

    async def backlog(self, now: int) -> tuple[int, int | None]:
        """How many updates are not handled yet, and since when the longest waiting of them could have run (ms;
        None when none waits for a worker)."""
        [row] = await self._run(BACKLOG, [now])
        return int(row["depth"]), row["oldest_due"]



async def keep_clean(store: UpdateStore, handled_kept_hours: float, failed_kept_days: float, every: float) -> None:
    """Until cancelled: delete handled updates' keys once Telegram can no longer re-deliver them, and failed or
    dropped updates (kept with their body for a look) after `failed_kept_days`; a chunk at a time."""
    while True:
        now = now_ms()
        handled_before = now - int(handled_kept_hours * 3_600_000)
        failed_before = now - int(failed_kept_days * 86_400_000)
        try:
            cleaned = CLEAN_CHUNK
            while cleaned == CLEAN_CHUNK:  # a chunk a statement: others' statements come between them
                cleaned = await store.clean(handled_before, failed_before)
        except Exception:
            log.exception("intake: cleaning old updates failed; trying again later")
        await asyncio.sleep(every)


def _retrieved(future: asyncio.Future[bool]) -> None:
    if not future.cancelled():
        future.exception()


class GroupCommit:
    """Appends arriving updates in batches: whatever arrived while the previous batch was being written goes
    in the next statement, and each caller learns its own outcome once that statement has returned.

    At low load a lone update is written at once (no timer adds latency); under load batches grow to match.
    The writing is the writer task's, never the request's: a client that hangs up cannot cancel a statement
    half-way, and there is one writer, as SQLite has one connection anyway.
    """

    def __init__(self, store: UpdateStore, *, max_batch: int = SQLITE_BATCH,
                 after_commit: Callable[[], None] = lambda: None, clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.max_batch = max_batch
        self.after_commit = after_commit
        self.clock = clock
        self._waiting: list[tuple[Arrival, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def append(self, arrival: Arrival) -> bool:
        """True once `arrival` is stored, False if it was stored before; raises if it could not be stored
        (nothing of it is: the caller answers 5xx and Telegram sends it again)."""
        if self._closed:
            raise RuntimeError("the intake is closed")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # a caller that hung up leaves its outcome unread: not an error
        self._waiting.append((arrival, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="intake-commit")
        return await asyncio.shield(future)

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            try:
                stored = await self.store.append([arrival for arrival, _ in batch], self.clock())
            except Exception as error:  # whatever it was, every caller of the batch answers it (a 5xx)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            answered: set[tuple[int, int]] = set()  # the same update twice in one batch: the first is the new one
            for arrival, future in batch:
                if not future.done():
                    future.set_result(arrival.key in stored and arrival.key not in answered)
                answered.add(arrival.key)
            self.after_commit()

    async def close(self) -> None:
        """Refuse new appends and wait until every one taken is written (before the database closes)."""
        self._closed = True
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
