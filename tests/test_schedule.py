"""Working hours, and what a customer is told about when a person will answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.schedule import InvalidHours, WorkingHours


def test_working_hours_read_like_a_shop_door() -> None:
    hours = WorkingHours.parse("mon-fri 09:00-18:00, sat 10:00-14:00", "Asia/Tashkent")  # UTC+5
    friday_noon = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)  # 12:00 in Tashkent
    assert hours.is_open(friday_noon)
    assert hours.next_opening(friday_noon) is None
    friday_night = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # 21:00
    opening = hours.next_opening(friday_night)
    assert opening is not None
    assert (opening.weekday(), opening.hour) == (5, 10)
    saturday_evening = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # 17:00 on Saturday
    opening = hours.next_opening(saturday_evening)
    assert opening is not None
    assert (opening.weekday(), opening.hour) == (0, 9)


def test_no_hours_means_always_in_and_nonsense_is_refused() -> None:
    assert WorkingHours.parse("").is_open(datetime(2026, 11, 22, 3, 0, tzinfo=UTC))
    for wrong in ("mon-fri 9-18", "someday 09:00-18:00", "mon 18:00-09:00"):
        with pytest.raises(InvalidHours):
            WorkingHours.parse(wrong)
    with pytest.raises(InvalidHours):
        WorkingHours.parse("mon 09:00-18:00", "Mars/Olympus")


def test_a_range_may_wrap_around_the_week() -> None:
    hours = WorkingHours.parse("fri-mon 10:00-16:00")
    assert {o.weekday for o in hours.openings} == {4, 5, 6, 0}
