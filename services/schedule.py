"""Working hours: whether the team is in now, and when it is in next.

Written as `mon-fri 09:00-18:00, sat 10:00-14:00` in the business's time zone. No hours at all
means the team is always in (someone still has to be online for "a person will answer shortly").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PART = re.compile(r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$")


class InvalidHours(ValueError):
    pass


@dataclass(frozen=True)
class Opening:
    weekday: int  # Monday is 0
    start: time
    end: time


@dataclass(frozen=True)
class WorkingHours:
    openings: tuple[Opening, ...]
    zone: ZoneInfo
    text: str = ""  # as written, for showing back

    @classmethod
    def parse(cls, text: str, timezone: str = "UTC") -> WorkingHours:
        try:
            zone = ZoneInfo(timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise InvalidHours(f"unknown time zone {timezone!r}") from error
        openings: list[Opening] = []
        for part in filter(None, (p.strip().lower() for p in re.split(r"[,;]", text or ""))):
            match = _PART.match(part)
            if match is None:
                raise InvalidHours(f"cannot read {part!r}: write it like 'mon-fri 09:00-18:00'")
            first, _, last = match["days"].partition("-")
            if first not in DAYS or (last and last not in DAYS):
                raise InvalidHours(f"unknown day in {part!r}: use {', '.join(DAYS)}")
            start, end = _time(match["start"]), _time(match["end"])
            if end <= start:
                raise InvalidHours(f"{part!r} ends before it starts")
            begin, stop = DAYS.index(first), DAYS.index(last or first)
            days = range(begin, stop + 1) if stop >= begin else [*range(begin, 7), *range(0, stop + 1)]
            openings.extend(Opening(day, start, end) for day in days)
        return cls(tuple(openings), zone, ", ".join(p.strip() for p in re.split(r"[,;]", text or "") if p.strip()))

    @property
    def always_open(self) -> bool:
        return not self.openings

    def is_open(self, moment: datetime) -> bool:
        if self.always_open:
            return True
        local = moment.astimezone(self.zone)
        return any(o.weekday == local.weekday() and o.start <= local.time() < o.end for o in self.openings)

    def next_opening(self, moment: datetime) -> datetime | None:
        """When the team is next in (local time), or None when it is in now or always."""
        if self.is_open(moment):
            return None
        local = moment.astimezone(self.zone)
        for days_ahead in range(8):
            day = local.date() + timedelta(days=days_ahead)
            for opening in sorted((o for o in self.openings if o.weekday == day.weekday()), key=lambda o: o.start):
                start = datetime.combine(day, opening.start, tzinfo=self.zone)
                if start > local:
                    return start
        return None


def _time(text: str) -> time:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours > 24 or minutes > 59:
        raise InvalidHours(f"{text!r} is not a time of day")
    return time(23, 59, 59) if hours == 24 else time(hours, minutes)
