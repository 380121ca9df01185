"""Retention: what goes at a fixed `now`, by age; incidents kept while open; orphan askers and answers of a
writer that is gone purged, a live writer's kept; the writer process purging at its start."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.config.store import StoreSettings
from appliance.events.recording import EventLog
from appliance.events.values import Answer, Asker
from appliance.events.writer import StoreWriter
from appliance.store import retention
from appliance.store.retention import PurgeReport, Schedule, purge, settings_from_json, writer_running
from appliance.store.schema import connect
from profiles.categories import Severity
from profiles.identity import Child, Identity, Via
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict

NOW = 1_800_000_000.0
DAY = 86_400.0
SETTINGS = StoreSettings()  # 30 days of events, 7 years of incidents and audit, 2 years of daily counts


def who(child_id: str = "amira") -> Asker:
    return Asker.of("10.0.0.9", Identity("10-12", Via.SESSION, child=Child(child_id, "x", "10-12")))


def what(host: str = "bad.example") -> Answer:
    reason = Reason(Step.CATEGORY, Action.BLOCK, "category adult", "adult", "", Severity.HIGH)
    return Answer.of(
        "dns", host, "A", Verdict(Action.BLOCK, "10-12", (reason,), Severity.HIGH, log=LogDetail.EVENT)
    )


_DEFINED: set[int] = set()  # keys already written (each test's things are new: keys never repeat)


def write(writer: StoreWriter, times: list[float], *things: Asker | Answer, web: bool = False) -> None:
    """Events at `times`, by the first Who and What of `things` (each defined with its first events)."""
    asker = next(t for t in things if isinstance(t, Asker))
    answer = next(t for t in things if isinstance(t, Answer))
    defs = [(t.key, t) for t in things if t.key not in _DEFINED]
    _DEFINED.update(t.key for t in things)
    if web:
        rows = [(ts, asker.key, answer.key, 0.01, "GET", "http://x/", 403, 0, "") for ts in times]
        writer.write(defs, ([], [], [], []), [], NOW, rows)
    else:
        n = len(times)
        writer.write(defs, (times, [asker.key] * n, [answer.key] * n, [0.001] * n), [], NOW)


def count(db: sqlite3.Connection, table: str) -> int:
    (n,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(n)


def dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    pid = int(done.stdout)
    assert not writer_running(pid)
    return pid


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.sqlite"


def test_purge_by_age(path: Path) -> None:
    writer = StoreWriter(path, ZoneInfo("UTC"))
    asker, answer = who(), what()
    write(writer, [NOW - 40 * DAY, NOW - 31 * DAY, NOW - 29 * DAY, NOW - DAY], asker, answer)
    write(writer, [NOW - 45 * DAY, NOW - 2 * DAY], asker, answer, web=True)
    writer.close()
    db = connect(path)
    db.executescript(
        f"""
        INSERT INTO children (id, display_name, profile, pin, created) VALUES ('amira', 'A', '10-12', 'x', 0);
        INSERT INTO sessions (child, device, client, started, expires, idle_s, last_seen, ended) VALUES
            ('amira', 'd', 'c', 0, 0, 60, 0, {NOW - 31 * DAY}),
            ('amira', 'd', 'c', 0, 0, 60, 0, {NOW - 29 * DAY}),
            ('amira', 'd', 'c', 0, 0, 60, 0, NULL);
        INSERT INTO audit (ts, staff, username, action, subject, detail) VALUES
            ({NOW - 8 * 365 * DAY}, NULL, 'x', 'view-events', '', ''),
            ({NOW - 6 * 365 * DAY}, NULL, 'x', 'view-events', '', '');
        INSERT INTO daily_counts VALUES ('2024-01-01', 'dns', 'p', 'allow', '', 5),
                                        ('2026-12-01', 'dns', 'p', 'allow', '', 5);
        INSERT INTO sign_in_failures VALUES ('user:x', {NOW - 2 * DAY}), ('user:x', {NOW - 3600});
        INSERT INTO setup_links VALUES ('old', {NOW - 1}, NULL), ('new', {NOW + 3600}, NULL);
        """
    )
    report = purge(db, SETTINGS, NOW)
    assert report == PurgeReport(
        events=2, requests=1, sessions=1, audit=1, daily_counts=1, sign_in_failures=1, setup_links=1
    )
    assert report.complete and report.total == 8
    assert [ts for (ts,) in db.execute("SELECT ts FROM events ORDER BY ts")] == [NOW - 29 * DAY, NOW - DAY]
    assert count(db, "requests") == 1 and count(db, "sessions") == 2 and count(db, "audit") == 1
    assert db.execute("SELECT day FROM daily_counts").fetchall() == [("2026-12-01",)]
    assert db.execute("SELECT token_hash FROM setup_links").fetchall() == [("new",)]
    # The writer that wrote them is this process, alive: its askers and answers stay, named or not.
    assert count(db, "askers") == 1 and count(db, "answers") == 1
    assert purge(db, SETTINGS, NOW).total == 0
    db.close()


def test_active_minutes_and_extra_time_go_after_60_centre_days_and_staff_decisions_stay(path: Path) -> None:
    """Time budgets need only today; two months are kept. Pauses, grants and asks are staff's decisions,
    kept with the audit log for the yearly review. The day is the centre's date: at NOW it is still
    2027-01-14 in Honolulu, so 60 days back is 2026-11-15 there (already 2026-11-16 in UTC)."""
    from appliance.store import controls
    from profiles.controls import Scope

    db = connect(path)
    minute = int(NOW // 60)
    controls.record_activity(
        db, [(day, "amira", "", minute) for day in ("2026-11-14", "2026-11-15", "2027-01-14")]
    )
    for day in ("2026-11-14", "2026-11-15"):
        controls.add_time(db, child="amira", category="", minutes=5, by="sam", reason="", now=NOW, day=day)
    old = NOW - 400 * DAY
    controls.pause(db, scope=Scope.CENTRE, target="", label="", minutes=5, by="sam", reason="", now=old)
    controls.grant(
        db,
        child="amira",
        device=None,
        label="Amira",
        host="scratch.mit.edu",
        category=None,
        until=old + 60,
        by="sam",
        reason="club",
        now=old,
    )
    controls.ask(
        db,
        subject="guest",
        child=None,
        device="d",
        client="c",
        label="c",
        host="x.example",
        category="",
        profile="guest",
        note="",
        now=old,
    )
    report = purge(db, SETTINGS, NOW, zone=ZoneInfo("Pacific/Honolulu"))
    assert (report.activity, report.extra_time) == (1, 1)
    assert [d for (d,) in db.execute("SELECT day FROM activity ORDER BY day")] == ["2026-11-15", "2027-01-14"]
    assert db.execute("SELECT day FROM extra_time").fetchall() == [("2026-11-15",)]
    assert (count(db, "pauses"), count(db, "grants"), count(db, "access_requests")) == (1, 1, 1)
    db.close()


def test_events_go_in_chunks_oldest_first(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "CHUNK", 3)
    writer = StoreWriter(path, ZoneInfo("UTC"))
    write(writer, [NOW - (49 - i) * DAY for i in range(10)], who(), what())  # in time order, as written
    writer.close()
    db = connect(path)
    # A deadline already passed: one chunk, the three oldest, then the purge stops and says so.
    report = purge(db, SETTINGS, NOW, deadline=time.monotonic())
    assert not report.complete and report.events == 3
    assert db.execute("SELECT min(ts) FROM events").fetchone() == (NOW - 46 * DAY,)
    report = purge(db, SETTINGS, NOW)
    assert report.complete and report.events == 7 and count(db, "events") == 0
    db.close()


def test_incidents_are_kept_while_open_and_go_with_their_events_notes_and_flags(path: Path) -> None:
    db = connect(path)
    old, recent = NOW - 8 * 365 * DAY, NOW - 365 * DAY
    db.execute(
        "INSERT INTO staff (id, username, display_name, role, password, created)"
        " VALUES (1, 'l', 'L', 'lead', 'x', 0)"
    )
    for incident, status, closed in (
        (1, "new", None),
        (2, "closed", old),
        (3, "closed", recent),
        (4, "reviewing", None),
    ):
        db.execute(
            "INSERT INTO incidents (id, title, status, severity, area, category, profile, subject, opened,"
            " opened_by, updated, closed)"
            " VALUES (?, 't', ?, 'high', 'content', 'adult', 'p', 'child:a', ?, 1, ?, ?)",
            (incident, status, old - DAY, old, closed),
        )
        db.execute("INSERT INTO incident_events VALUES (?, 'dns:1', ?, '{}')", (incident, old))
        db.execute(
            "INSERT INTO incident_notes (incident, ts, author, kind, text) VALUES (?, ?, 1, 'note', 'n')",
            (incident, old),
        )
        db.execute(
            "INSERT INTO record_flags (kind, target, detail, ts) VALUES ('mixed-incident', ?, 'd', ?)",
            (f"incident:{incident}", old),
        )
    report = purge(db, SETTINGS, NOW)
    assert (report.incidents, report.incident_events, report.incident_notes) == (1, 1, 1)
    assert [i for (i,) in db.execute("SELECT id FROM incidents ORDER BY id")] == [1, 3, 4]
    assert [i for (i,) in db.execute("SELECT DISTINCT incident FROM incident_events ORDER BY 1")] == [1, 3, 4]
    assert [i for (i,) in db.execute("SELECT DISTINCT incident FROM incident_notes ORDER BY 1")] == [1, 3, 4]
    flagged = [t for (t,) in db.execute("SELECT target FROM record_flags ORDER BY id")]
    assert flagged == ["incident:1", "incident:3", "incident:4"]  # a reused number inherits no flag
    db.close()


def test_orphans_of_a_gone_writer_are_purged_a_live_writers_kept(path: Path) -> None:
    gone = StoreWriter(path, ZoneInfo("UTC"))
    # Named by old events only, by a recent event, and by none at all.
    old_who, old_what, kept_who, kept_what, never_who, never_what = (
        who("a"),
        what("a"),
        who("b"),
        what("b"),
        who("c"),
        what("c"),
    )
    live = StoreWriter(path, ZoneInfo("UTC"))  # this process: running
    # In time order, as writers add their batches.
    write(gone, [NOW - 40 * DAY], old_who, old_what)
    write(live, [NOW - 40 * DAY], who("d"), what("d"), who("e"), what("e"))
    write(gone, [NOW - DAY], kept_who, kept_what, never_who, never_what)
    gone.close()
    live.close()
    db = connect(path)
    ranges = [base for (base,) in db.execute("SELECT base FROM key_ranges ORDER BY base")]
    db.execute("UPDATE key_ranges SET pid = ? WHERE base = ?", (dead_pid(), ranges[0]))
    report = purge(db, SETTINGS, NOW)
    assert report.events == 2
    # The gone writer's: the askers and answers no event names any more (a, c) are deleted.
    assert (report.askers, report.answers, report.key_ranges) == (2, 2, 0)
    subjects = {s for (s,) in db.execute("SELECT subject FROM askers")}
    hosts = {h for (h,) in db.execute("SELECT host FROM answers")}
    assert subjects == {"child:b", "child:d", "child:e"} and hosts == {"b", "d", "e"}
    # Once its last event is gone, so are its last rows and its key range; the live writer's stay.
    report = purge(db, SETTINGS, NOW + 30 * DAY)
    assert (report.events, report.askers, report.answers, report.key_ranges) == (1, 1, 1, 1)
    assert [base for (base,) in db.execute("SELECT base FROM key_ranges")] == ranges[1:]
    assert {s for (s,) in db.execute("SELECT subject FROM askers")} == {"child:d", "child:e"}
    assert count(db, "answers") == 2
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)
    db.close()


def test_ranges_of_schema_2_writers_and_zombies_are_gone(path: Path) -> None:
    assert not writer_running(0)
    assert writer_running(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped: a zombie
    try:
        assert not writer_running(child.pid)
    finally:
        child.wait()


def test_settings_reach_the_writer_as_json() -> None:
    assert settings_from_json("") == StoreSettings()
    assert settings_from_json('{"retention_days": 7}') == StoreSettings(retention_days=7)
    assert settings_from_json("{not json") is None
    assert settings_from_json('{"retention": 7}') is None


def test_schedule_purges_at_once_then_not_for_an_hour(path: Path) -> None:
    writer = StoreWriter(path, ZoneInfo("UTC"))
    now = time.time()
    write(writer, [now - 40 * DAY, now - 39 * DAY], who(), what())
    schedule = Schedule(path, StoreSettings())
    schedule.run()
    db = connect(path)
    assert count(db, "events") == 0
    write(writer, [now - 40 * DAY], who(), what())
    schedule.run()  # within the hour: nothing
    assert count(db, "events") == 1
    schedule.close()
    unset = Schedule(path, None)
    unset.run()
    assert count(db, "events") == 1
    unset.close()
    writer.close()
    db.close()


def test_the_writer_process_purges_at_its_start(path: Path) -> None:
    writer = StoreWriter(path, ZoneInfo("UTC"))
    now = time.time()
    write(writer, [now - 31 * DAY, now - 29 * DAY], who(), what())
    writer.close()
    log = EventLog(path, ZoneInfo("UTC"))
    try:
        assert log.flush() == (0, 0)  # answered after the purge at its start
    finally:
        log.close()
    db = connect(path)
    assert [ts for (ts,) in db.execute("SELECT ts FROM events")] == [now - 29 * DAY]
    db.close()


def test_rows_a_few_seconds_out_of_order_at_the_boundary_are_kept_not_lost(path: Path) -> None:
    """Two writers interleave their batches within seconds: the retention bound (found by bisection of
    the rowids) never deletes a row younger than the retention time, whatever its place."""
    writer = StoreWriter(path, ZoneInfo("UTC"))
    cutoff = NOW - SETTINGS.retention_days * DAY
    times = [cutoff - 20, cutoff - 10, cutoff + 5, cutoff - 3, cutoff + 1, cutoff + 30]
    for ts in times:  # a site each: one row each (not one visit)
        write(writer, [ts], who(), what(f"bad-{ts}.example"))
    writer.close()
    db = connect(path)
    purge(db, SETTINGS, NOW)
    left = sorted(ts for (ts,) in db.execute("SELECT ts FROM events"))
    assert {cutoff + 5, cutoff + 1, cutoff + 30} <= set(left)  # nothing young is lost
    assert cutoff - 20 not in left and cutoff - 10 not in left  # the old ones before them go
    # The one old row written after a young one may wait for the next purge.
    assert set(left) <= {cutoff + 5, cutoff - 3, cutoff + 1, cutoff + 30}
    db.close()
