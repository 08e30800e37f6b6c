"""The daily AI quota: one use is reserved before the model is called, and settled after it answers.
The same for a customer's daily transcriptions and images (`allow`).

Checking the count before the call and adding to it after the answer let parallel requests all
pass the check (eight parallel studio runs with a quota of 2 all reached the model). A reservation
is one conditional UPDATE (`ai_messages < quota` in its WHERE) that the database applies to the
row atomically: PostgreSQL re-checks the condition on the row a concurrent update left, SQLite
runs one writer at a time. So neither parallel requests nor instances sharing the database can
take more than the quota between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from models import Usage, UsageSlot
from services.conversations import MICRODOLLAR, add_counters


@dataclass
class Reservation:
    """One AI use taken from a customer's quota for `day` (UTC): settled once the model was used,
    released when it was not (either only once; the other is then a no-op)."""

    bot_id: int
    user_id: int
    day: date
    resolved: bool = False

    async def settle(self, *, tokens_in: int = 0, tokens_out: int = 0, cost: float = 0.0) -> None:
        if not self.resolved:
            self.resolved = True
            await _settle(self, tokens_in, tokens_out, cost)

    async def release(self) -> None:
        if not self.resolved:
            self.resolved = True
            await Usage.filter(user_id=self.user_id, day=self.day, ai_messages__gt=0).update(
                ai_messages=F("ai_messages") - 1)


async def reserve(bot_id: int, user_id: int, quota: int) -> Reservation | None:
    """Take one AI use from today's quota, or None when it is used up."""
    if quota <= 0:
        return None
    day = datetime.now(UTC).date()
    if await _take(user_id, day, quota):
        return Reservation(bot_id, user_id, day)
    if not await Usage.exists(user_id=user_id, day=day):  # the day's first use
        try:
            await Usage.create(bot_id=bot_id, user_id=user_id, day=day, ai_messages=1)
            return Reservation(bot_id, user_id, day)
        except IntegrityError:
            pass  # created meanwhile by a parallel request
    # The row is there: full, or created by a parallel request since the first try.
    return Reservation(bot_id, user_id, day) if await _take(user_id, day, quota) else None


async def _take(user_id: int, day: date, quota: int) -> bool:
    taken = await Usage.filter(user_id=user_id, day=day, ai_messages__lt=quota).update(
        ai_messages=F("ai_messages") + 1)
    return bool(taken)


async def _settle(reservation: Reservation, tokens_in: int, tokens_out: int, cost: float) -> None:
    """The model was used: its tokens and cost go to the customer's day (whose use the reservation
    counted already) and the answer to the bot's current quarter of an hour, for the analytics."""
    dollars = Decimal(str(cost)).quantize(MICRODOLLAR, ROUND_HALF_UP)
    if tokens_in or tokens_out or dollars:
        await Usage.filter(user_id=reservation.user_id, day=reservation.day).update(
            tokens_in=F("tokens_in") + tokens_in, tokens_out=F("tokens_out") + tokens_out, cost=F("cost") + dollars)
    now = datetime.now(UTC)
    slot = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    await add_counters(UsageSlot, {"bot_id": reservation.bot_id, "slot": slot}, ai_messages=1,
                       tokens_in=tokens_in, tokens_out=tokens_out, cost=dollars)


# --- the customer's voice and images: a daily count of each, taken before the provider is asked ---------

Counted = Literal["transcriptions", "images"]


@dataclass
class Allowance:
    """`amount` units of a customer's daily `counter` (transcriptions, images) taken for `day` (UTC):
    settled with what was used (the rest is given back), or released when nothing was (once either)."""

    bot_id: int
    user_id: int
    day: date
    counter: Counted
    amount: int
    resolved: bool = False

    async def settle(self, used: int | None = None, *, audio_seconds: int = 0, tokens_in: int = 0,
                     tokens_out: int = 0, cost: float = 0.0) -> None:
        """`used` of the amount taken (all, by default) went to the provider; its seconds and cost are counted
        for the customer's day and the bot's quarter of an hour."""
        if self.resolved:
            return
        self.resolved = True
        used = self.amount if used is None else max(0, min(used, self.amount))
        if used < self.amount:
            await self._give_back(self.amount - used)
        dollars = Decimal(str(cost)).quantize(MICRODOLLAR, ROUND_HALF_UP)
        more: dict[str, Any] = {"audio_seconds": audio_seconds, "tokens_in": tokens_in, "tokens_out": tokens_out,
                                "cost": dollars}
        more = {name: value for name, value in more.items() if value}
        if more:
            await Usage.filter(user_id=self.user_id, day=self.day).update(
                **{name: F(name) + value for name, value in more.items()})
        if used or more:
            counted: dict[str, Any] = {self.counter: used, **more}
            await add_counters(UsageSlot, {"bot_id": self.bot_id, "slot": _slot()}, None, **counted)

    async def release(self) -> None:
        if not self.resolved:
            self.resolved = True
            await self._give_back(self.amount)

    async def _give_back(self, amount: int) -> None:
        await Usage.filter(user_id=self.user_id, day=self.day, **{f"{self.counter}__gte": amount}).update(
            **{self.counter: F(self.counter) - amount})


async def allow(bot_id: int, user_id: int, counter: Counted, amount: int, quota: int) -> Allowance | None:
    """Take `amount` from the customer's daily `quota` of `counter` in one conditional UPDATE (as `reserve`
    takes an AI use), or None when it would go past the quota."""
    if amount <= 0 or amount > quota:
        return None
    day = datetime.now(UTC).date()
    taken = Allowance(bot_id, user_id, day, counter, amount)
    if await _take_units(user_id, day, counter, amount, quota):
        return taken
    if not await Usage.exists(user_id=user_id, day=day):  # the day's first use
        try:
            first: dict[str, Any] = {"bot_id": bot_id, "user_id": user_id, "day": day, counter: amount}
            await Usage.create(**first)
            return taken
        except IntegrityError:
            pass  # created meanwhile by a parallel request
    return taken if await _take_units(user_id, day, counter, amount, quota) else None


async def _take_units(user_id: int, day: date, counter: Counted, amount: int, quota: int) -> bool:
    taken = await Usage.filter(user_id=user_id, day=day, **{f"{counter}__lte": quota - amount}).update(
        **{counter: F(counter) + amount})
    return bool(taken)


def _slot() -> datetime:
    """The start of the current quarter of an hour (UTC): `UsageSlot`'s key."""
    now = datetime.now(UTC)
    return now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
