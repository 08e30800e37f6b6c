"""The daily AI quota is taken before the model is called: parallel requests cannot pass it together."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from models import Bot, Usage, UsageSlot, User
from services import quotas


async def _customer() -> tuple[int, int]:
    bot = await Bot.create(telegram_id=1, username="shop_bot")
    user = await User.create(bot=bot, telegram_id=100, first_name="Ann")
    return bot.id, user.id


async def test_parallel_reservations_take_exactly_the_quota(database: str) -> None:
    bot_id, user_id = await _customer()
    taken = await asyncio.gather(*(quotas.reserve(bot_id, user_id, 3) for _ in range(12)))
    assert sum(reservation is not None for reservation in taken) == 3
    assert (await Usage.get(user_id=user_id)).ai_messages == 3


async def test_parallel_first_uses_of_the_day_all_count_while_under_the_quota(database: str) -> None:
    bot_id, user_id = await _customer()

    async def staggered(turn: int) -> quotas.Reservation | None:
        for _ in range(turn % 4):  # start a few steps apart, so that some find the row half-made
            await asyncio.sleep(0)
        return await quotas.reserve(bot_id, user_id, 20)

    taken = await asyncio.gather(*(staggered(turn) for turn in range(12)))
    assert all(reservation is not None for reservation in taken)  # racing to create the day's row refuses none
    assert (await Usage.get(user_id=user_id)).ai_messages == 12


async def test_a_released_use_can_be_taken_again_and_a_settled_one_is_counted_once(database: str) -> None:
    bot_id, user_id = await _customer()
    first = await quotas.reserve(bot_id, user_id, 1)
    assert first is not None
    assert await quotas.reserve(bot_id, user_id, 1) is None
    await first.release()
    await first.release()  # twice is once
    again = await quotas.reserve(bot_id, user_id, 1)
    assert again is not None
    await again.settle(tokens_in=120, tokens_out=30, cost=0.0004)
    await again.release()  # after settling: nothing to give back
    usage = await Usage.get(user_id=user_id)
    assert (usage.ai_messages, usage.tokens_in, usage.tokens_out) == (1, 120, 30)
    assert [slot.ai_messages for slot in await UsageSlot.filter(bot_id=bot_id)] == [1]
    assert await quotas.reserve(bot_id, user_id, 0) is None


async def test_parallel_transcriptions_and_images_take_exactly_their_daily_quota(database: str) -> None:
    bot_id, user_id = await _customer()
    heard = await asyncio.gather(*(quotas.allow(bot_id, user_id, "transcriptions", 1, 3) for _ in range(12)))
    seen = await asyncio.gather(*(quotas.allow(bot_id, user_id, "images", 2, 5) for _ in range(6)))
    assert sum(taken is not None for taken in heard) == 3
    assert sum(taken is not None for taken in seen) == 2  # 2 + 2 of 5: a third pair would pass it
    usage = await Usage.get(user_id=user_id)
    assert (usage.transcriptions, usage.images) == (3, 4)


async def test_an_allowance_counts_what_was_used_and_gives_back_the_rest(database: str) -> None:
    bot_id, user_id = await _customer()
    album = await quotas.allow(bot_id, user_id, "images", 3, 3)
    assert album is not None
    await album.settle(2)  # one image could not be fetched: it was never given to the model
    voice = await quotas.allow(bot_id, user_id, "transcriptions", 1, 1)
    assert voice is not None
    await voice.release()  # the provider failed
    voice = await quotas.allow(bot_id, user_id, "transcriptions", 1, 1)
    assert voice is not None
    await voice.settle(audio_seconds=42, cost=0.0042)
    await voice.release()  # settled: nothing to give back
    usage = await Usage.get(user_id=user_id)
    assert (usage.images, usage.transcriptions, usage.audio_seconds, usage.ai_messages) == (2, 1, 42, 0)
    assert usage.cost == Decimal("0.0042")
    [slot] = await UsageSlot.filter(bot_id=bot_id)
    assert (slot.images, slot.transcriptions, slot.audio_seconds) == (2, 1, 42)
    assert await quotas.allow(bot_id, user_id, "images", 2, 3) is None  # 2 + 2 would pass 3
    assert await quotas.allow(bot_id, user_id, "images", 1, 3) is not None
    assert await quotas.allow(bot_id, user_id, "transcriptions", 1, 0) is None
