"""Weekly opening windows in the centre's own time zone.

Windows are wall-clock times ("Monday to Friday, 15:00 to 19:00"): the clock on the centre's wall, so
a daylight-saving change moves them with it. A window whose end is not after its start crosses midnight
("Friday 22:00 to 02:00" runs into Saturday morning).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60


class Outside(StrEnum):
    """What a profile may do outside its windows.

    `allowlist`: only the portal, help services and the profile's allowlist work (the design's rule);
    `block`: only the portal and help services; `flag`: everything as usual, but every request is flagged
    (a supervised late session staff want to review).
    """

    ALLOWLIST = "allowlist"
    BLOCK = "block"
    FLAG = "flag"


def parse_clock(text: str) -> int:
    """`HH:MM` (00:00 to 24:00) as minutes after midnight; ValueError otherwise."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"{text!r} is not a time of day like 08:30")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > MINUTES_PER_DAY:
        raise ValueError(f"{text!r} is not a time of day between 00:00 and 24:00")
    return value


def day_runs(days: frozenset[int]) -> list[list[int]]:
    """`days` (0 = Monday) in runs of consecutive days, in week order: {0, 1, 2, 5} -> [[0, 1, 2], [5]]."""
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def parse_days(text: str) -> frozenset[int]:
    """`mon-fri`, `sat,sun`, `daily`, `mon,wed-fri` as weekday numbers (Monday 0); ValueError otherwise."""
    text = text.strip().lower()
    if text in ("daily", "every day", "all"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.replace(" ", "").split(","):
        first, dash, last = part.partition("-")
        if first not in DAYS or (dash and last not in DAYS):
            raise ValueError(f"{part!r}: days are mon, tue, wed, thu, fri, sat, sun, or ranges like mon-fri")
        a, b = DAYS.index(first), DAYS.index(last if dash else first)
        days.update(DAYS.index(d) % 7 for d in (DAYS * 2)[a : (b if b >= a else b + 7) + 1])
    return frozenset(days)


@dataclass(frozen=True)
class Window:
    """Open on `days` from `start` to `end` (minutes after midnight); crosses midnight if end <= start."""

    days: frozenset[int]
    start: int
    end: int

    def covers(self, weekday: int, minute: int) -> bool:
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        # Crossing midnight: the evening part belongs to the named day, the morning part to the next.
        if weekday in self.days and minute >= self.start:
            return True
        return (weekday - 1) % 7 in self.days and minute < self.end


@dataclass(frozen=True)
class Schedule:
    """A named set of weekly windows ("opening-hours", "homework-club")."""

    name: str
    windows: tuple[Window, ...]

    def is_open(self, local: datetime) -> bool:
        """Whether `local` (wall-clock time in the centre's zone) falls in one of the windows."""
        weekday, minute = local.weekday(), local.hour * 60 + local.minute
        return any(w.covers(weekday, minute) for w in self.windows)


@dataclass(frozen=True)
class ScheduleRule:
    """A profile's time controls: open while any of `schedules` is open; `outside` says what happens else."""

    schedules: tuple[Schedule, ...]
    outside: Outside = Outside.ALLOWLIST

    def is_open(self, now: datetime, zone: tzinfo) -> bool:
        """Whether the profile is inside its windows at `now` (an aware time) in the centre's `zone`."""
        if now.tzinfo is None:
            raise ValueError("the time must carry its time zone (an aware datetime)")
        local = now.astimezone(zone)
        return any(s.is_open(local) for s in self.schedules)

    def next_opening(self, now: datetime, zone: tzinfo) -> datetime | None:
        """When the profile's windows next open after `now` (an aware time), in the centre's `zone`:
        None if one is open at `now`, or none ever opens. Wall-clock times, so a daylight-saving change
        moves the answer with the centre's clock."""
        if self.is_open(now, zone):
            return None
        local = now.astimezone(zone)
        today = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        starts = [
            day + timedelta(minutes=window.start)
            for offset in range(8)  # a week on, and the rest of today's weekday a week later
            for day in (today + timedelta(days=offset),)
            for schedule in self.schedules
            for window in schedule.windows
            if day.weekday() in window.days
        ]
        later = [start.replace(tzinfo=zone) for start in starts if start > local.replace(tzinfo=None)]
        return min(later, default=None)
