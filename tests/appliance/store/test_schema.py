"""The store's schema: a version 2 file migrates with its events kept and marked notable; a newer file is
refused; processes opening a fresh file at once all get a whole one."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.store.feed import FeedFilter, feed
from appliance.store.schema import MIGRATIONS, SCHEMA_VERSION, StoreError, connect

V2 = dict(MIGRATIONS)[2]


def make_v2(path: Path) -> None:
    """A file as the version 2 appliance left it: its schema, and events of each kind."""
    db = sqlite3.connect(path)
    db.executescript(V2)
    db.execute("PRAGMA user_version = 2")
    db.executemany(
        "INSERT INTO askers VALUES (?, ?, ?, ?)",
        [(1, "10.0.0.2", "child:amira", "session"), (2, "10.0.0.3", "device:pc-1", "device-mac")],
    )
    reasons = json.dumps([{"step": "category", "effect": "block", "category": "adult"}])
    db.executemany(
        "INSERT INTO answers VALUES (?, ?, '10-12', ?, 'A', ?, ?, ?, ?, ?)",
        [
            (1, "dns", "bad.example", "block", "high", "adult", 0, reasons),
            (2, "dns", "chat.example", "allow", "medium", "chat", 1, "[]"),  # allowed, flagged
            (3, "dns", "fine.example", "allow", "none", "", 0, "[]"),
            (4, "http", "bad.example", "block", "high", "adult", 0, reasons),
        ],
    )
    db.executemany(
        "INSERT INTO events VALUES (?, ?, ?, 1000)",
        [(1_800_000_000.0 + i, 1 + i % 2, 1 + i % 3) for i in range(30)],
    )
    db.execute(
        "INSERT INTO requests VALUES (1800000100.0, 1, 4, 2000, 'GET', 'http://bad.example/', 403, 0, '')"
    )
    db.execute("INSERT INTO key_ranges VALUES (0, 1700000000.0)")
    db.commit()
    db.close()


def test_a_version_2_file_migrates_with_its_events(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    make_v2(path)
    db = connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert db.execute("SELECT count(*) FROM events").fetchone() == (30,)
    notable = dict(
        db.execute("SELECT answer, min(notable) = max(notable) AND max(notable) FROM events GROUP BY 1")
    )
    assert notable == {1: 1, 2: 1, 3: 0}
    assert db.execute("SELECT notable FROM requests").fetchall() == [(1,)]
    assert db.execute("SELECT pid FROM key_ranges").fetchall() == [(0,)]  # pid unknown: never running
    page = feed(db, FeedFilter())
    assert (
        len(page) == 21
        and page[0].id == "web:1"
        and {e.host for e in page} == {"bad.example", "chat.example"}
    )
    assert len(feed(db, FeedFilter(child="amira", action="flag"))) == 5
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT count(*) FROM event_log").fetchone() == (31,)
    db.close()
    again = connect(path)  # opening a current file changes nothing
    assert again.execute("SELECT count(*) FROM events WHERE notable").fetchone() == (20,)
    again.close()


def test_a_file_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}.*install the newer") as e:
        connect(path)
    assert str(path) in str(e.value)


ROUNDS = 5
_OPEN = """
import random, sys, time
from pathlib import Path
from appliance.store.schema import connect
folder, start, rounds = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
for i in range(rounds):
    time.sleep(max(0.0, start + i * 0.2 + random.random() / 1000 - time.time()))  # file i together
    try:
        db = connect(folder / f"fresh-{i}.sqlite")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        print(version, db.execute("SELECT count(*) FROM settings").fetchone()[0], flush=True)
        db.close()
    except Exception as e:
        print("error:", e, flush=True)
"""


def test_processes_opening_a_fresh_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Two processes (the DNS filter's and the proxy's writers at boot) open a file that does not exist yet,
    at the same moment, ROUNDS times: each time both get the migrated store, migrated once."""
    start = time.time() + 1.5  # after both interpreters are up
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, str(tmp_path), str(start), str(ROUNDS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0].splitlines() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    for lines in outputs:
        assert lines == [f"{SCHEMA_VERSION} 2"] * ROUNDS  # settings bindings and controls: migrated once
    for i in range(ROUNDS):
        db = connect(tmp_path / f"fresh-{i}.sqlite")
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()


def test_a_fresh_file_opened_while_another_process_holds_its_write_lock(tmp_path: Path) -> None:
    """What the processes above meet for an instant: on a file not yet in WAL mode, another connection
    holds the write lock (inside its own switch to WAL, or a first write). SQLite refuses the switch at
    once there, without waiting; opening must wait (up to connect's timeout) and then succeed."""
    path = tmp_path / "fresh.sqlite"
    first = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    first.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: first.execute("COMMIT")).start()
    second = connect(path)
    assert second.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert second.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    second.close()
    first.close()


def _modes(path: Path) -> dict[str, str]:
    return {p.name: oct(p.stat().st_mode & 0o777) for p in sorted(path.parent.iterdir())}


def test_a_fresh_store_and_its_wal_and_shm_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "appliance.sqlite"
    mask = os.umask(0o022)  # a shell's usual umask, with which SQLite would make them 0644
    try:
        db = connect(path)
        db.execute("INSERT INTO settings (key, value) VALUES ('written', '1')")  # the WAL in use
        assert _modes(path) == {
            "appliance.sqlite": "0o600",
            "appliance.sqlite-shm": "0o600",
            "appliance.sqlite-wal": "0o600",
        }
        db.close()
    finally:
        os.umask(mask)


def test_a_store_an_older_appliance_left_readable_by_all_is_narrowed_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "appliance.sqlite"
    running = connect(path)  # a service holding it open: the -wal and -shm stay
    running.execute("INSERT INTO settings (key, value) VALUES ('written', '1')")
    for file in tmp_path.iterdir():
        file.chmod(0o644)
    assert len(_modes(path)) == 3
    connect(path).close()
    assert set(_modes(path).values()) == {"0o600"}
    running.close()


def make_v5_with_mixed_records(path: Path) -> None:
    """A version 5 file as staff could leave it: incident 1 holds events of two children (Amira's and
    Ben's), incident 2 only Amira's; two active children named Sam (one "sam "), and an archived Ben."""
    db = sqlite3.connect(path)
    for target, script in MIGRATIONS:
        if target <= 5:
            db.executescript(script)
    db.execute("PRAGMA user_version = 5")
    db.execute("INSERT INTO staff VALUES (1, 'former', 'Fran Former', 'lead', 'x', 1.0, 0)")
    db.executemany(
        "INSERT INTO children (id, display_name, profile, pin, created, archived)"
        " VALUES (?, ?, '10-12', 'x', 1.0, ?)",
        [
            ("amira", "Amira", 0),
            ("ben", "Ben", 0),
            ("sam1", "Sam", 0),
            ("sam2", "sam ", 0),
            ("ben2", "Ben", 1),
        ],
    )
    db.executemany(
        "INSERT INTO incidents (id, title, status, severity, area, category, profile, subject, opened,"
        " opened_by, updated) VALUES (?, ?, 'new', 'high', 'contact', 'dating', '10-12', 'child:amira',"
        " 1800000000.0, 1, 1800000000.0)",
        [(1, "Dating sites"), (2, "Amira alone")],
    )

    def record(event: str, subject: str, host: str) -> str:
        return json.dumps(
            {
                "id": event,
                "ts": 1800000000.0,
                "channel": "dns",
                "client": "10.0.0.2",
                "subject": subject,
                "via": "session",
                "profile": "10-12",
                "host": host,
                "detail": "A",
                "action": "block",
                "severity": "high",
                "category": "dating",
                "flagged": False,
                "reasons": [],
                "method": "",
                "url": "",
                "status": 0,
                "terms": "",
            }
        )

    db.executemany(
        "INSERT INTO incident_events VALUES (?, ?, 1800000000.0, ?)",
        [
            (1, "dns:1", record("dns:1", "child:amira", "tinder.com")),
            (1, "dns:2", record("dns:2", "child:ben", "badoo.com")),
            (2, "dns:3", record("dns:3", "child:amira", "bumble.com")),
        ],
    )
    db.commit()
    db.close()


def make_v5(path: Path) -> None:
    """A file as the version 5 appliance left it: version 2's events, migrated step by step to 5."""
    make_v2(path)
    db = sqlite3.connect(path)
    for version, script in MIGRATIONS:
        if 2 < version <= 5:
            db.executescript(script)
            db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()


def test_version_6_flags_mixed_incidents_and_duplicate_children_and_changes_neither(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    make_v5_with_mixed_records(path)
    before = sqlite3.connect(path)
    kept = [
        before.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
        for t in ("children", "incidents", "incident_events")
    ]
    before.close()
    db = connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    flags = db.execute("SELECT kind, target, detail, resolved FROM record_flags ORDER BY id").fetchall()
    assert flags == [
        ("mixed-incident", "incident:1", "holds events of 2 people: child:amira,child:ben", None),
        ("duplicate-child", "child:sam1", "has the same name as another active child: child:sam2", None),
        ("duplicate-child", "child:sam2", "has the same name as another active child: child:sam1", None),
    ]
    audit = db.execute("SELECT staff, username, action, subject FROM audit ORDER BY id").fetchall()
    assert audit == [(None, "appliance", "flag-record", target) for _, target, _, _ in flags]
    after = [
        db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
        for t in ("children", "incidents", "incident_events")
    ]
    assert after == kept


def test_a_version_5_file_migrates_to_visits_of_one_attempt_each(tmp_path: Path) -> None:
    """Rows from before visits are visits of one attempt each; a later attempt of the same device, child,
    host and verdict within the gap is added to the newest (found in the store: docs/store.md#visits)."""
    from zoneinfo import ZoneInfo

    from appliance.events.values import Answer, Asker
    from appliance.events.writer import StoreWriter
    from profiles.identity import Child, Identity, Via
    from profiles.verdict import LogDetail

    path = tmp_path / "events.sqlite"
    make_v5(path)
    db = connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert db.execute("SELECT count(*), sum(attempts), count(last_ts) FROM events").fetchone() == (30, 30, 0)
    page = feed(db, FeedFilter(child="amira"))
    assert page and all(e.attempts == 1 and e.last == e.ts for e in page)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # bad.example, blocked for amira (10.0.0.2): her newest attempt at it was the page at 1_800_000_100
    # (the DNS answers before it are visits of their own, from before).
    writer = StoreWriter(path, ZoneInfo("UTC"))
    who = Asker.of("10.0.0.2", Identity("10-12", Via.SESSION, child=Child("amira", "x", "10-12")))
    # (the same reasons as the version 2 appliance wrote them: the same verdict)
    reasons = json.dumps([{"step": "category", "effect": "block", "category": "adult"}])
    what = Answer(
        "dns", "10-12", "bad.example", "A", "block", "high", "adult", False, reasons, LogDetail.EVENT
    )
    writer.write([(who.key, who), (what.key, what)], ([1_800_000_160.0], [who.key], [what.key], [0.0]), [], 0)
    writer.close()
    assert db.execute("SELECT ts, attempts, last_ts FROM requests").fetchall() == [
        (1_800_000_100.0, 2, 1_800_000_160.0)
    ]
    assert db.execute("SELECT count(*) FROM events").fetchone() == (30,)
    db.close()


def test_version_8_keeps_incidents_and_their_notes_and_lets_the_appliance_open_one(tmp_path: Path) -> None:
    """Version 8 remakes `incidents` and `incident_notes` so that the appliance itself (a critical alert)
    may open and write them; every row, and every table naming them, is kept."""
    path = tmp_path / "events.sqlite"
    make_v5_with_mixed_records(path)
    before = sqlite3.connect(path)
    kept = [
        before.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("incidents", "incident_events")
    ]
    before.close()
    db = connect(path)
    assert [
        db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("incidents", "incident_events")
    ] == kept
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.execute(
        "INSERT INTO incidents (title, status, severity, area, category, profile, subject, opened, opened_by,"
        " updated) VALUES ('Self-harm search', 'new', 'critical', 'content', 'self-harm', '13-17',"
        " 'child:amira', 1.0, NULL, 1.0)"
    )
    db.execute(
        "INSERT INTO incident_notes (incident, ts, author, kind, text) VALUES (3, 1.0, NULL, 'alert', 'x')"
    )
    with pytest.raises(sqlite3.IntegrityError):  # still an incident's: the references hold
        db.execute("INSERT INTO incident_events VALUES (99, 'dns:9', 1.0, '{}')")
    assert db.execute("SELECT last FROM alert_cursor WHERE tbl = 'events'").fetchone() == (0,)


def make_v8(path: Path) -> None:
    """A file as the version 8 appliance left it: version 2's events, migrated step by step to 8, with a
    child, a session and the bindings counter moved on."""
    make_v5(path)
    db = sqlite3.connect(path)
    for version, script in MIGRATIONS:
        if 5 < version <= 8:
            db.executescript(script)
            db.execute(f"PRAGMA user_version = {version}")
    db.execute(
        "INSERT INTO children (id, display_name, profile, pin, created)"
        " VALUES ('amira', 'Amira', '10-12', 'x', 1.0)"
    )
    db.execute(
        "INSERT INTO sessions (child, device, client, started, expires, idle_s, last_seen)"
        " VALUES ('amira', 'dc:a6:32:01:02:03', '10.0.0.2', 1800000000.0, 1800003600.0, 1200, 1800000000.0)"
    )
    db.execute("UPDATE settings SET value = '41' WHERE key = 'bindings'")
    db.commit()
    db.close()


def test_version_9_adds_the_staff_controls_and_keeps_everything_of_version_8(tmp_path: Path) -> None:
    """Pauses, grants, asks, budgets, extra time and activity start empty, the `controls` counter at 0;
    every table of version 8 is kept row for row."""
    path = tmp_path / "events.sqlite"
    make_v8(path)
    before = sqlite3.connect(path)
    assert before.execute("PRAGMA user_version").fetchone() == (8,)
    tables = [name for (name,) in before.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    kept = {t: before.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    before.close()
    db = connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (9,)
    after = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    assert after["settings"] == sorted([*kept["settings"], ("controls", "0")])
    assert {t: rows for t, rows in after.items() if t != "settings"} == {
        t: rows for t, rows in kept.items() if t != "settings"
    }
    assert kept["events"] and kept["children"] and kept["sessions"]
    for table in ("pauses", "grants", "access_requests", "child_budgets", "extra_time", "activity"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    # The new tables' own rules hold: a grant is for one child or one device, a budget for a child.
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO grants (child, device, label, host, since, until, by, reason)"
            " VALUES ('amira', 'dc:a6:32:01:02:03', 'Amira', 'scratch.mit.edu', 1, 2, 'sam', 'club')"
        )
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO child_budgets (child, minutes, set_by, ts) VALUES ('nobody', 60, 'sam', 1)")
    db.execute("INSERT INTO child_budgets (child, minutes, set_by, ts) VALUES ('amira', 60, 'sam', 1)")
    db.close()
