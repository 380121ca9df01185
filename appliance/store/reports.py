"""The monthly and yearly summaries for the centre's audit: notable events and incidents by three-Cs
area, category, profile, severity and day (or month), the browsing only counted per day, and how many
children were involved.

Periods are whole months or years of the centre's own calendar: their bounds are local midnights in the
centre's time zone, given by the caller (nothing here reads the clock). A notable event is a DNS event or
a web request marked `notable` (flagged for staff, or blocked; one event may be both).
"""

from __future__ import annotations

import re
import sqlite3
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from appliance.store.controls import grants_between
from appliance.store.feed import SEVERITIES

AREAS = ("content", "contact", "conduct")  # the three Cs, in the guidance's order
INCIDENT_STATUSES = ("new", "reviewing", "escalated", "closed")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_PERIOD = re.compile(r"(\d{4})(?:-(\d{2}))?")
FIRST_YEAR, LAST_YEAR = 2000, 9998


@dataclass(frozen=True)
class Bucket:
    """One day of a monthly report (`2026-11-03`) or one month of a yearly one (`2026-11`)."""

    key: str
    start: float
    end: float


@dataclass(frozen=True)
class Period:
    """A calendar month (`2026-11`) or year (`2026`) of the centre: [start, end) in seconds since 1970,
    the local dates [first_day, end_day) for the daily totals, and its days or months."""

    key: str
    yearly: bool
    start: float
    end: float
    first_day: str
    end_day: str
    buckets: tuple[Bucket, ...]

    @property
    def title(self) -> str:
        """`November 2026`, or `2026`."""
        if self.yearly:
            return self.key
        year, month = self.key.split("-")
        return f"{MONTH_NAMES[int(month) - 1]} {year}"

    @property
    def previous(self) -> str:
        """The key of the period before, of the same length."""
        year, month = _year_month(self.key)
        if self.yearly:
            return f"{year - 1:04d}"
        return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"

    @property
    def next(self) -> str:
        """The key of the period after, of the same length."""
        year, month = _year_month(self.key)
        if self.yearly:
            return f"{year + 1:04d}"
        return f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}"


def _year_month(key: str) -> tuple[int, int]:
    year, _, month = key.partition("-")
    return int(year), int(month or 0)


def _midnight(day: date, zone: tzinfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


def _next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def _check_year(year: int) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"the year {year} is out of range ({FIRST_YEAR} to {LAST_YEAR})")


def month_period(year: int, month: int, zone: tzinfo) -> Period:
    """The calendar month in the centre's time zone, by day. ValueError for a month that does not exist."""
    _check_year(year)
    if not 1 <= month <= 12:
        raise ValueError(f"there is no month {month}: use 01 to 12")
    first = date(year, month, 1)
    after = _next_month(first)
    days = [date(year, month, d) for d in range(1, (after - first).days + 1)]
    edges = [_midnight(d, zone) for d in (*days, after)]
    buckets = tuple(Bucket(d.isoformat(), edges[i], edges[i + 1]) for i, d in enumerate(days))
    return Period(
        f"{year:04d}-{month:02d}", False, edges[0], edges[-1], first.isoformat(), after.isoformat(), buckets
    )


def year_period(year: int, zone: tzinfo) -> Period:
    """The calendar year in the centre's time zone, by month."""
    _check_year(year)
    firsts = [date(year, m, 1) for m in range(1, 13)]
    after = date(year + 1, 1, 1)
    edges = [_midnight(d, zone) for d in (*firsts, after)]
    buckets = tuple(Bucket(f"{year:04d}-{d.month:02d}", edges[i], edges[i + 1]) for i, d in enumerate(firsts))
    return Period(f"{year:04d}", True, edges[0], edges[-1], firsts[0].isoformat(), after.isoformat(), buckets)


def parse_period(text: str, zone: tzinfo) -> Period:
    """`2026-11` (a month) or `2026` (a year). ValueError, with a message for staff, otherwise."""
    found = _PERIOD.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a period: give a month like 2026-11 or a year like 2026")
    year = int(found.group(1))
    if found.group(2) is None:
        return year_period(year, zone)
    return month_period(year, int(found.group(2)), zone)


def period_at(ts: float, zone: tzinfo, *, yearly: bool = False) -> Period:
    """The month (or year) holding the instant `ts`, in the centre's time zone."""
    local = datetime.fromtimestamp(ts, zone)
    return year_period(local.year, zone) if yearly else month_period(local.year, local.month, zone)


@dataclass(frozen=True)
class Tally:
    """One row of a report: notable events (`flagged` and `blocked` may overlap: a flagged event can
    also be blocked) and incidents opened."""

    key: str
    events: int = 0
    flagged: int = 0
    blocked: int = 0
    incidents: int = 0


@dataclass(frozen=True)
class Count:
    key: str
    count: int


@dataclass(frozen=True)
class Summary:
    """What a period's report shows. Area keys are content, contact, conduct ('' for categories with
    no three-Cs place, or none); rows with nothing in them are left out, except the three areas and the
    days or months, which are always all there."""

    period: Period
    total: Tally
    by_area: tuple[Tally, ...]
    by_category: tuple[Tally, ...]  # most events first
    by_profile: tuple[Tally, ...]  # most events first
    by_severity: tuple[Tally, ...]  # critical first
    by_time: tuple[Tally, ...]  # one per bucket of the period, in order
    incident_status: tuple[Count, ...]  # the incidents opened in the period, by their status now
    incidents_closed: int  # incidents closed in the period, whenever opened
    browsing_by_action: tuple[Count, ...]  # the daily totals (browsing only counted, not kept)
    browsing_by_category: tuple[Count, ...]
    children: int  # distinct children in the period's notable events and incidents
    # Staff's decisions in the moment (issue 21), for the yearly review: each grant with who gave it,
    # why and for how long (never the child's name: the report may go to a board), and the pauses.
    grants: tuple[Decision, ...] = ()
    pauses: tuple[Count, ...] = ()  # pauses started in the period, by what they covered

    @property
    def browsing_total(self) -> int:
        return sum(c.count for c in self.browsing_by_action)

    @property
    def incidents_opened(self) -> int:
        return self.total.incidents


@dataclass(frozen=True)
class Decision:
    """One "allow for a while" as the report shows it: when, what (a site or a category), for whom in
    kind (a child or a device), by whom, why, for how many minutes, and whether it was ended early."""

    since: float
    what: str
    whom: str
    by: str
    reason: str
    minutes: int
    ended_early: bool


class _Tallies:
    """Sums of events, flagged, blocked and incidents per key."""

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}

    def add(self, key: str, events: int = 0, flagged: int = 0, blocked: int = 0, incidents: int = 0) -> None:
        row = self.rows.setdefault(key, [0, 0, 0, 0])
        row[0] += events
        row[1] += flagged
        row[2] += blocked
        row[3] += incidents

    def tally(self, key: str) -> Tally:
        return Tally(key, *self.rows.get(key, [0, 0, 0, 0]))

    def ordered(self, keys: Iterable[str]) -> tuple[Tally, ...]:
        return tuple(self.tally(k) for k in keys)

    def busiest(self) -> tuple[Tally, ...]:
        return tuple(
            sorted((self.tally(k) for k in self.rows), key=lambda t: (-t.events, -t.incidents, t.key))
        )


def _notable(db: sqlite3.Connection, period: Period) -> list[tuple[str, str, str, str, int, int, int]]:
    """(bucket, category, profile, severity, flagged, blocked, count) of the period's notable events."""
    values = ", ".join("(?, ?, ?)" for _ in period.buckets)
    args = [x for b in period.buckets for x in (b.key, b.start, b.end)]
    rows = []
    for table in ("events", "requests"):
        # Each bucket walks the table's partial index of notable rows over its own time range.
        rows += db.execute(
            f"WITH b (k, s, e) AS (VALUES {values})"
            " SELECT b.k, w.category, w.profile, w.severity, w.flagged != 0, w.action = 'block', count(*)"
            f" FROM b JOIN {table} t ON t.notable AND t.ts >= b.s AND t.ts < b.e"
            " JOIN answers w ON w.id = t.answer GROUP BY 1, 2, 3, 4, 5, 6",
            args,
        ).fetchall()
    # Events past retention, counted per day when they were deleted (appliance/store/retention.py).
    for day, category, profile, severity, flagged, blocked, n in db.execute(
        "SELECT day, category, profile, severity, flagged, blocked, sum(count) FROM notable_days"
        " WHERE day >= ? AND day < ? GROUP BY 1, 2, 3, 4, 5, 6",
        (period.first_day, period.end_day),
    ):
        rows.append((day[:7] if period.yearly else day, category, profile, severity, flagged, blocked, n))
    return rows


def _children(db: sqlite3.Connection, period: Period) -> int:
    parts = [
        f"SELECT a.subject FROM {table} t JOIN askers a ON a.id = t.asker"
        " WHERE t.notable AND t.ts >= ?1 AND t.ts < ?2 AND a.subject LIKE 'child:%'"
        for table in ("events", "requests")
    ]
    parts.append(
        "SELECT subject FROM incidents WHERE opened >= ?1 AND opened < ?2 AND subject LIKE 'child:%'"
    )
    parts.append("SELECT subject FROM notable_days WHERE day >= ?3 AND day < ?4 AND subject LIKE 'child:%'")
    (n,) = db.execute(
        f"SELECT count(DISTINCT subject) FROM ({' UNION '.join(parts)})",
        (period.start, period.end, period.first_day, period.end_day),
    ).fetchone()
    return int(n)


def _counts(counter: Counter[str]) -> tuple[Count, ...]:
    return tuple(Count(k, n) for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])) if n)


def summary(db: sqlite3.Connection, period: Period, area_of: Mapping[str, str]) -> Summary:
    """The report of `period`; `area_of` maps each category of the policy to its three-Cs area (categories
    it does not know, and events with no category, count under '')."""
    total, areas, categories, profiles, severities, times = (_Tallies() for _ in range(6))
    for bucket, category, profile, severity, flagged, blocked, n in _notable(db, period):
        counts = (n, n * flagged, n * blocked)
        for tallies, key in (
            (total, ""),
            (areas, area_of.get(category, "")),
            (categories, category),
            (profiles, profile),
            (severities, severity),
            (times, bucket),
        ):
            tallies.add(key, *counts)

    starts = [b.start for b in period.buckets]
    status: Counter[str] = Counter()
    for area, category, profile, severity, state, opened in db.execute(
        "SELECT area, category, profile, severity, status, opened FROM incidents"
        " WHERE opened >= ? AND opened < ?",
        (period.start, period.end),
    ):
        bucket = period.buckets[max(bisect_right(starts, opened) - 1, 0)].key
        for tallies, key in (
            (total, ""),
            (areas, area or area_of.get(category, "")),
            (categories, category),
            (profiles, profile),
            (severities, severity),
            (times, bucket),
        ):
            tallies.add(key, incidents=1)
        status[state] += 1
    (closed,) = db.execute(
        "SELECT count(*) FROM incidents WHERE closed >= ? AND closed < ?", (period.start, period.end)
    ).fetchone()

    by_action: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    for action, category, n in db.execute(
        "SELECT action, category, sum(count) FROM daily_counts WHERE day >= ? AND day < ?"
        " GROUP BY action, category",
        (period.first_day, period.end_day),
    ):
        by_action[action] += n
        by_category[category] += n

    area_keys = [*AREAS, *([""] if "" in areas.rows else [])]
    severity_keys = [s for s in (*reversed(SEVERITIES), "") if s in severities.rows]
    severity_keys += sorted(set(severities.rows) - set(severity_keys))
    return Summary(
        period=period,
        total=total.tally(""),
        by_area=areas.ordered(area_keys),
        by_category=categories.busiest(),
        by_profile=profiles.busiest(),
        by_severity=severities.ordered(severity_keys),
        by_time=times.ordered(b.key for b in period.buckets),
        incident_status=tuple(
            Count(s, status[s]) for s in (*INCIDENT_STATUSES, *sorted(set(status) - set(INCIDENT_STATUSES)))
        ),
        incidents_closed=int(closed),
        browsing_by_action=_counts(by_action),
        browsing_by_category=_counts(by_category),
        children=_children(db, period),
        grants=tuple(
            Decision(
                since=g.since,
                what=g.host or f"category {g.category}",
                whom="a child" if g.child else "a device",
                by=g.by,
                reason=g.reason,
                minutes=round(((g.ended if g.ended is not None else g.until) - g.since) / 60),
                ended_early=g.ended is not None and g.ended < g.until,
            )
            for g in grants_between(db, period.start, period.end)
        ),
        pauses=tuple(
            Count(scope, n)
            for scope, n in db.execute(
                "SELECT scope, count(*) FROM pauses WHERE since >= ? AND since < ?"
                " GROUP BY scope ORDER BY scope",
                (period.start, period.end),
            )
        ),
    )
