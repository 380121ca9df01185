"""The report queries: periods in the centre's calendar, and the summary's counts over a real store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.store.reports import (
    Count,
    Tally,
    month_period,
    parse_period,
    period_at,
    summary,
    year_period,
)
from appliance.store.schema import connect

LONDON = ZoneInfo("Europe/London")
AREA_OF = {"adult": "content", "dating": "contact", "gambling": "conduct", "chat": "contact"}


def at(text: str, zone: ZoneInfo = LONDON) -> float:
    """The instant of a local time in the centre (`2026-11-03 14:00`)."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(tmp_path / "events.db")
    yield connection
    connection.close()


class Store:
    """Rows written as the writers and the incident pages would."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.ids = 0

    def _id(self) -> int:
        self.ids += 1
        return self.ids

    def event(
        self,
        ts: float,
        category: str,
        *,
        action: str = "block",
        flagged: bool = False,
        profile: str = "10-12",
        severity: str = "high",
        subject: str = "child:amira1",
        web: bool = False,
    ) -> None:
        asker, answer = self._id(), self._id()
        notable = int(flagged or action == "block")
        self.db.execute(
            "INSERT INTO askers (id, client, subject, via) VALUES (?, '10.0.0.5', ?, 'session')",
            (asker, subject),
        )
        self.db.execute(
            "INSERT INTO answers (id, channel, profile, host, detail, action, severity, category, flagged,"
            " reasons, notable) VALUES (?, ?, ?, 'example.org', 'A', ?, ?, ?, ?, '[]', ?)",
            (answer, "http" if web else "dns", profile, action, severity, category, int(flagged), notable),
        )
        if web:
            self.db.execute(
                "INSERT INTO requests (ts, asker, answer, duration_us, method, url, status, bytes, terms,"
                " notable) VALUES (?, ?, ?, 10, 'GET', 'http://example.org/', 403, 0, '', ?)",
                (ts, asker, answer, notable),
            )
        else:
            self.db.execute(
                "INSERT INTO events (ts, asker, answer, duration_us, notable) VALUES (?, ?, ?, 10, ?)",
                (ts, asker, answer, notable),
            )

    def incident(
        self,
        opened: float,
        category: str,
        area: str,
        *,
        status: str = "new",
        closed: float | None = None,
        subject: str = "child:amira1",
    ) -> None:
        if self.db.execute("SELECT count(*) FROM staff").fetchone()[0] == 0:
            self.db.execute(
                "INSERT INTO staff (id, username, display_name, role, password, created)"
                " VALUES (1, 'lead', 'Lead', 'lead', 'x', 0)"
            )
        self.db.execute(
            "INSERT INTO incidents (title, status, severity, area, category, profile, subject, opened,"
            " opened_by, updated, closed) VALUES ('t', ?, 'high', ?, ?, '10-12', ?, ?, 1, ?, ?)",
            (status, area, category, subject, opened, opened, closed),
        )

    def counted(self, day: str, action: str, category: str, n: int) -> None:
        self.db.execute(
            "INSERT INTO daily_counts (day, channel, profile, action, category, count)"
            " VALUES (?, 'dns', '10-12', ?, ?, ?)",
            (day, action, category, n),
        )


@pytest.fixture
def store(db: sqlite3.Connection) -> Store:
    return Store(db)


def test_a_month_runs_from_local_midnight_to_local_midnight_day_by_day() -> None:
    p = month_period(2026, 3, LONDON)
    assert (p.key, p.title, p.yearly) == ("2026-03", "March 2026", False)
    assert p.start == at("2026-03-01 00:00") and p.end == at("2026-04-01 00:00")
    assert (p.first_day, p.end_day) == ("2026-03-01", "2026-04-01")
    assert len(p.buckets) == 31 and p.buckets[0].key == "2026-03-01"
    # The clocks go forward on 29 March: that day has 23 hours.
    assert p.buckets[28].key == "2026-03-29" and p.buckets[28].end - p.buckets[28].start == 23 * 3600
    assert all(a.end == b.start for a, b in zip(p.buckets, p.buckets[1:], strict=False))
    assert (p.previous, p.next) == ("2026-02", "2026-04")
    assert (month_period(2026, 12, LONDON).next, month_period(2026, 1, LONDON).previous) == (
        "2027-01",
        "2025-12",
    )


def test_a_year_runs_by_month_and_periods_parse_from_their_keys() -> None:
    p = parse_period("2026", LONDON)
    assert p == year_period(2026, LONDON)
    assert p.yearly and p.title == "2026" and [b.key for b in p.buckets][::11] == ["2026-01", "2026-12"]
    assert p.end == at("2027-01-01 00:00") and (p.previous, p.next) == ("2025", "2027")
    assert parse_period(" 2026-11 ", LONDON) == month_period(2026, 11, LONDON)
    for bad in ("2026-13", "2026-00", "26-11", "2026-1", "november", "2026-11-01", "", "0001"):
        with pytest.raises(ValueError):
            parse_period(bad, LONDON)


def test_the_current_period_is_the_centres_own_month() -> None:
    # 23:30 on 31 October in New York is already November in UTC.
    new_york = ZoneInfo("America/New_York")
    ts = at("2026-10-31 23:30", new_york)
    assert period_at(ts, new_york).key == "2026-10"
    assert period_at(ts, ZoneInfo("UTC")).key == "2026-11"
    assert period_at(ts, new_york, yearly=True).key == "2026"


def test_notable_events_are_counted_by_area_category_profile_severity_and_day(store: Store) -> None:
    store.event(at("2026-11-03 10:00"), "dating", action="allow", flagged=True)
    store.event(at("2026-11-03 11:00"), "dating", action="allow", flagged=True, web=True)
    store.event(at("2026-11-03 12:00"), "dating", action="block", flagged=True, subject="child:bo2")
    store.event(at("2026-11-20 16:00"), "adult", profile="13-15", severity="critical")
    store.event(at("2026-11-21 16:00"), "mystery", subject="device:pc-3")
    # Not notable, or outside the month: not counted.
    store.event(at("2026-11-04 10:00"), "dating", action="allow")
    store.event(at("2026-10-31 23:59"), "adult")
    store.event(at("2026-12-01 00:00"), "adult")

    s = summary(store.db, month_period(2026, 11, LONDON), AREA_OF)
    assert s.total == Tally("", 5, 3, 3, 0)
    assert s.by_area == (
        Tally("content", 1, 0, 1),
        Tally("contact", 3, 3, 1),
        Tally("conduct"),
        Tally("", 1, 0, 1),
    )
    assert s.by_category == (Tally("dating", 3, 3, 1), Tally("adult", 1, 0, 1), Tally("mystery", 1, 0, 1))
    assert s.by_profile == (Tally("10-12", 4, 3, 2), Tally("13-15", 1, 0, 1))
    assert [t.key for t in s.by_severity] == ["critical", "high"]
    assert len(s.by_time) == 30
    assert s.by_time[2] == Tally("2026-11-03", 3, 3, 1)
    assert s.by_time[19] == Tally("2026-11-20", 1, 0, 1)
    assert sum(t.events for t in s.by_time) == 5
    assert s.children == 2  # amira1 and bo2; the device is no child


def test_a_yearly_summary_counts_by_month(store: Store) -> None:
    store.event(at("2026-01-01 00:00"), "adult")
    store.event(at("2026-06-15 12:00"), "gambling", web=True)
    store.event(at("2026-06-30 23:59"), "gambling")
    store.event(at("2026-12-31 23:59"), "chat", action="allow", flagged=True)
    store.event(at("2027-01-01 00:00"), "chat")

    s = summary(store.db, year_period(2026, LONDON), AREA_OF)
    assert [(t.key, t.events) for t in s.by_time if t.events] == [
        ("2026-01", 1),
        ("2026-06", 2),
        ("2026-12", 1),
    ]
    assert len(s.by_time) == 12
    assert [(t.key, t.events) for t in s.by_area] == [("content", 1), ("contact", 1), ("conduct", 2)]


def test_incidents_opened_and_closed_in_the_period(store: Store) -> None:
    store.incident(at("2026-11-05 09:00"), "grooming", "contact", status="escalated", subject="child:cy3")
    store.incident(at("2026-11-06 09:00"), "adult", "", status="closed", closed=at("2026-11-07 09:00"))
    store.incident(
        at("2026-10-06 09:00"), "dating", "contact", status="closed", closed=at("2026-11-02 09:00")
    )
    store.incident(at("2026-12-06 09:00"), "dating", "contact")

    s = summary(store.db, month_period(2026, 11, LONDON), AREA_OF)
    assert s.incidents_opened == 2 and s.total.events == 0
    assert s.incidents_closed == 2  # one opened in October
    assert s.incident_status == (
        Count("new", 0),
        Count("reviewing", 0),
        Count("escalated", 1),
        Count("closed", 1),
    )
    # An incident with no area takes its category's.
    assert [(t.key, t.incidents) for t in s.by_area] == [("content", 1), ("contact", 1), ("conduct", 0)]
    assert {t.key: t.incidents for t in s.by_category} == {"grooming": 1, "adult": 1}
    assert s.by_time[4].incidents == 1 and s.by_time[5].incidents == 1
    assert s.children == 2


def test_everyday_browsing_comes_from_the_daily_totals_of_the_local_days(store: Store) -> None:
    store.counted("2026-11-01", "allow", "", 100)
    store.counted("2026-11-30", "allow", "educational", 40)
    store.counted("2026-11-30", "rewrite", "", 5)
    store.counted("2026-10-31", "allow", "", 1000)
    store.counted("2026-12-01", "allow", "", 1000)

    s = summary(store.db, month_period(2026, 11, LONDON), AREA_OF)
    assert s.browsing_by_action == (Count("allow", 140), Count("rewrite", 5))
    assert s.browsing_by_category == (Count("", 105), Count("educational", 40))
    assert s.browsing_total == 145


def test_an_empty_store_gives_an_empty_report(db: sqlite3.Connection) -> None:
    s = summary(db, year_period(2026, LONDON), AREA_OF)
    assert s.total == Tally("") and s.by_category == () and s.children == 0
    assert [t.key for t in s.by_area] == ["content", "contact", "conduct"]
    assert s.incidents_closed == 0 and s.browsing_total == 0


def test_each_bucket_walks_the_partial_index_of_notable_events(db: sqlite3.Connection) -> None:
    plan = db.execute(
        "EXPLAIN QUERY PLAN WITH b (k, s, e) AS (VALUES ('a', 0, 1), ('b', 1, 2))"
        " SELECT b.k, w.category, count(*) FROM b JOIN events t ON t.notable AND t.ts >= b.s AND t.ts < b.e"
        " JOIN answers w ON w.id = t.answer GROUP BY 1, 2"
    ).fetchall()
    assert any("INDEX events_notable (ts>? AND ts<?)" in str(row) for row in plan), plan
