"""What is left of a child's time budget today, as staff and the child read it: the child's own budget
(set by the lead or the administrator) or else their profile's, less the active minutes the store
counted today, plus the extra time staff added (docs/profiles.md, "Time budgets").

The day is the centre's local date, as the event writer counts it; `profiles.controls.left` does the sum.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from appliance.store import controls as store_controls
from appliance.store.people import ChildRecord
from dashboard.database import config, policy_files
from profiles.controls import INTERNET, Budget, Left, Usage, budget_for, left


@dataclass(frozen=True)
class ChildTime:
    """One child's budget today: whose it is (`own`: set for the child, else the profile's), what is
    left, and the extra minutes staff added today (by category, INTERNET for the internet)."""

    budget: Budget
    own: bool
    left: Left
    usage: Usage
    extra: Mapping[str, int]


def zone() -> ZoneInfo:
    try:
        return ZoneInfo(config().policy.timezone)
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


def day_of(ts: float) -> str:
    """The centre's date at `ts` (YYYY-MM-DD), the day budgets are counted by."""
    return datetime.fromtimestamp(ts, zone()).date().isoformat()


def profile_budget(profile: str) -> Budget:
    found = policy_files().profiles.get(profile)
    return found.budget if found is not None and found.budget is not None else Budget()


@dataclass(frozen=True)
class Today:
    """The store's budgets, usage and extra time of one day, read once for every child shown."""

    day: str
    own: Mapping[str, Budget]
    usage: Mapping[str, Usage]
    extra: Mapping[str, Mapping[str, int]]

    def of(self, child: ChildRecord) -> ChildTime | None:
        """The child's budget today; None where neither they nor their profile have one."""
        own = self.own.get(child.id)
        budget = budget_for(own, profile_budget(child.profile))
        if budget is None:
            return None
        usage = self.usage.get(child.id, Usage())
        extra = self.extra.get(child.id, {})
        return ChildTime(budget, own is not None, left(budget, usage, extra), usage, extra)


def today(db: sqlite3.Connection, ts: float) -> Today:
    day = day_of(ts)
    return Today(
        day, store_controls.child_budgets(db), store_controls.usage(db, day), store_controls.extra(db, day)
    )


def title(category: str) -> str:
    """A category's name as staff and children read it ("Games"); the internet as "the internet"."""
    if category == INTERNET:
        return "the internet"
    found = policy_files().categories.categories.get(category)
    return found.title if found is not None else category


def minutes(n: int) -> str:
    return f"{n} minute{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class LeftLine:
    """One budgeted thing in words: `What` (the internet, Games), the minutes left, and its state:
    `spent`, `warned` (WARN_MINUTES or fewer left) or `ok`."""

    category: str
    what: str
    minutes_left: int
    state: str

    @property
    def words(self) -> str:
        if self.state == "spent":
            return f"{self.what}: used up for today"
        return f"{self.what}: {minutes(self.minutes_left)} left"


def left_lines(found: Left) -> list[LeftLine]:
    """What is left, the internet first, then each budgeted category by its title."""
    out = []
    if found.internet is not None:
        out.append(_line(INTERNET, found.internet, found))
    for category, n in sorted(found.categories.items(), key=lambda kv: title(kv[0])):
        out.append(_line(category, n, found))
    return out


def _line(category: str, n: int, found: Left) -> LeftLine:
    state = "spent" if category in found.spent else "warned" if category in found.warned else "ok"
    what = title(category)
    return LeftLine(category, what[:1].upper() + what[1:], n, state)
