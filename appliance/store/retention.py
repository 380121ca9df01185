"""Retention: what the store forgets, and when (the `store:` settings, docs/store.md).

`purge` deletes events and web requests older than `retention_days`, sessions ended as long ago,
incidents closed longer ago than `incident_retention_days` (with the events copied into them and their
notes), audit rows older than `audit_retention_days`, daily totals older than `daily_counts_days`, active
minutes and extra time older than CONTROLS_DAYS, sign-in failures older than a day and expired set-up
links. Large deletions go in chunks of CHUNK rows, one
transaction each, so that the event writers wait at most one chunk for the write lock.

Who asked and what was answered (`askers`, `answers`) are written once by a writer process and named by
its later events under keys of its own range (`key_ranges`, appliance/events/values.py). A row no event names
any more is deleted only when the writer process that owns its range is gone: a live writer may name it
again at any moment without writing it anew. Liveness is asked of the kernel by pid, so purge must run
on the machine (and in the pid namespace) of the writers, as the writer processes themselves do.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from appliance.config.store import StoreSettings
from appliance.events.values import KEY_RANGE
from appliance.store.schema import connect, transaction

log = logging.getLogger(__name__)

CHUNK = 20_000  # rows per transaction: a few tenths of a second of the write lock on a slow SD card
DAY_S = 86_400.0
PURGE_EVERY_S = 3600.0
PURGE_SLICE_S = 1.0  # the longest one `Schedule.run` holds up the writer's batches (give or take a chunk)
# Active minutes and staff's extra time (time budgets, appliance/store/controls.py) are kept this long: a
# day's usage is all a budget needs, and two months lets staff look back at a child's habits. (Pauses,
# grants and asks are decisions, kept as long as the audit log for the yearly review.)
CONTROLS_DAYS = 60


@dataclass(frozen=True)
class PurgeReport:
    """Rows deleted, per table. `complete` is False when the deadline cut the purge short (call again)."""

    events: int = 0
    requests: int = 0
    sessions: int = 0
    incidents: int = 0
    incident_events: int = 0
    incident_notes: int = 0
    audit: int = 0
    daily_counts: int = 0
    sign_in_failures: int = 0
    setup_links: int = 0
    activity: int = 0
    extra_time: int = 0
    askers: int = 0
    answers: int = 0
    key_ranges: int = 0
    complete: bool = True

    @property
    def total(self) -> int:
        """Rows deleted in all."""
        return sum(getattr(self, f.name) for f in fields(self) if f.name != "complete")


def purge(
    db: sqlite3.Connection,
    settings: StoreSettings,
    now: float,
    *,
    deadline: float | None = None,
    zone: tzinfo = UTC,
) -> PurgeReport:
    """Delete what `settings` no longer keeps at `now` (seconds since 1970), in short transactions on
    `db` (autocommit, as appliance.store.schema.connect makes it). With `deadline` (a time.monotonic()
    value), stop between chunks once it has passed, with `complete` False; the oldest rows go first.
    Notable events are counted into `notable_days` (by the local date in `zone`) in the transaction that
    deletes them, so the reports keep them. Raises sqlite3.Error (what was committed stays deleted)."""
    counts: dict[str, Any] = {}

    def late() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    events_before = now - settings.retention_days * DAY_S
    for table in ("events", "requests"):
        counts[table] = _delete_older(db, table, "ts", events_before, late, zone)
    if late():
        return PurgeReport(**counts, complete=False)
    counts["audit"] = _delete_older(db, "audit", "ts", now - settings.audit_retention_days * DAY_S, late)
    if late():
        return PurgeReport(**counts, complete=False)
    with transaction(db):
        counts["sessions"] = _run(db, "DELETE FROM sessions WHERE ended < ?", events_before)
        counts["sign_in_failures"] = _run(db, "DELETE FROM sign_in_failures WHERE ts < ?", now - DAY_S)
        counts["setup_links"] = _run(db, "DELETE FROM setup_links WHERE expires < ?", now)
        # The day is the centre's local date; a UTC date is at most a day out, over years.
        day = datetime.fromtimestamp(now - settings.daily_counts_days * DAY_S, UTC).date().isoformat()
        counts["daily_counts"] = _run(db, "DELETE FROM daily_counts WHERE day < ?", day)
        _run(db, "DELETE FROM notable_days WHERE day < ?", day)
        # The centre's local date, as the writers and staff wrote it.
        controls_day = datetime.fromtimestamp(now - CONTROLS_DAYS * DAY_S, zone).date().isoformat()
        counts["activity"] = _run(db, "DELETE FROM activity WHERE day < ?", controls_day)
        counts["extra_time"] = _run(db, "DELETE FROM extra_time WHERE day < ?", controls_day)
        closed = "SELECT id FROM incidents WHERE status = 'closed' AND closed < ?"
        incident_before = now - settings.incident_retention_days * DAY_S
        counts["incident_events"] = _run(
            db, f"DELETE FROM incident_events WHERE incident IN ({closed})", incident_before
        )
        counts["incident_notes"] = _run(
            db, f"DELETE FROM incident_notes WHERE incident IN ({closed})", incident_before
        )
        # A flag goes with its incident: a later incident given the same number must not inherit it.
        _run(
            db,
            f"DELETE FROM record_flags WHERE target IN (SELECT 'incident:' || id FROM ({closed}))",
            incident_before,
        )
        counts["incidents"] = _run(
            db, "DELETE FROM incidents WHERE status = 'closed' AND closed < ?", incident_before
        )
    if late():
        return PurgeReport(**counts, complete=False)
    counts["askers"], counts["answers"], counts["key_ranges"] = _purge_orphans(db)
    return PurgeReport(**counts)


def _run(db: sqlite3.Connection, sql: str, *args: object) -> int:
    return db.execute(sql, args).rowcount


_NOTABLE_DAYS = (
    "INSERT INTO notable_days (day, channel, profile, category, severity, flagged, blocked, subject, count)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (day, channel, profile, category, severity, flagged,"
    " blocked, subject) DO UPDATE SET count = count + excluded.count"
)


def _roll_up(db: sqlite3.Connection, table: str, chunk: str, before: float, zone: tzinfo) -> None:
    """Count the notable rows of `chunk` (a subquery of rowids) into notable_days."""
    totals: Counter[tuple[object, ...]] = Counter()
    rows = db.execute(
        f"SELECT t.ts, w.channel, w.profile, w.category, w.severity, w.flagged != 0, w.action = 'block',"
        f" a.subject FROM {table} t JOIN answers w ON w.id = t.answer JOIN askers a ON a.id = t.asker"
        f" WHERE t.notable AND t.rowid IN ({chunk})",
        (before,),
    )
    for ts, *rest in rows:
        totals[(datetime.fromtimestamp(ts, zone).date().isoformat(), *rest)] += 1
    db.executemany(_NOTABLE_DAYS, [(*key, n) for key, n in totals.items()])


def _rowid_bound(db: sqlite3.Connection, table: str, column: str, before: float) -> int:
    """The highest rowid of `table` whose row is older than `before` (0 if none), for rows added in time
    order: each writer adds its batches in order, several writers interleave within seconds, so the
    rows near the bound may be a few seconds out of order (those are kept until the next purge)."""
    low, high = db.execute(f"SELECT min(rowid), max(rowid) FROM {table}").fetchone()
    if low is None:
        return 0
    (first,) = db.execute(f"SELECT {column} FROM {table} WHERE rowid = ?", (low,)).fetchone()
    if first >= before:
        return 0
    found = int(low)  # its row is older than `before`
    high = int(high)
    while found < high:
        middle = (found + high + 1) // 2
        row = db.execute(
            f"SELECT rowid, {column} FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT 1", (middle,)
        ).fetchone()
        if row is None or row[1] >= before:
            high = middle - 1
        else:
            found = int(row[0])
    return found


def _delete_older(
    db: sqlite3.Connection,
    table: str,
    column: str,
    before: float,
    late: Callable[[], bool],
    zone: tzinfo | None = None,
) -> int:
    """Delete `table`'s rows with `column` < `before`, oldest first, CHUNK rows per transaction (for the
    event tables, counting the notable ones into notable_days first, by the local date in `zone`)."""
    total = 0
    if zone is None:
        chunk = f"SELECT rowid FROM {table} WHERE {column} < ? ORDER BY {column} LIMIT {CHUNK}"
    else:
        # The event tables have no index by time (it would cost every event written): their rows are
        # added in time order, so the old ones are the first rowids, found by bisection.
        bound = _rowid_bound(db, table, column, before)
        chunk = (
            f"SELECT rowid FROM {table} WHERE rowid <= {bound} AND {column} < ? ORDER BY rowid LIMIT {CHUNK}"
        )
    while True:
        with transaction(db):
            if zone is not None:
                _roll_up(db, table, chunk, before, zone)
            n = _run(db, f"DELETE FROM {table} WHERE rowid IN ({chunk})", before)
        total += n
        if n < CHUNK or late():
            return total


def writer_running(pid: int) -> bool:
    """Whether process `pid` may still be writing: it exists and is not a zombie. Pid 0 (ranges claimed
    before pids were recorded, schema 2) is never running."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:  # a killed writer not yet reaped by its parent cannot write either
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _purge_orphans(db: sqlite3.Connection) -> tuple[int, int, int]:
    """Askers and answers no event or request names, in the key ranges of writers that are gone; then the
    ranges of gone writers with no rows left. (askers, answers, key ranges) deleted."""
    dead = [base for base, pid in db.execute("SELECT base, pid FROM key_ranges") if not writer_running(pid)]
    if not dead:
        return 0, 0, 0
    holding = []  # dead ranges that still have rows
    for base in dead:
        if any(
            db.execute(
                f"SELECT 1 FROM {table} WHERE id >= ? AND id < ? LIMIT 1", (base, base + KEY_RANGE)
            ).fetchone()
            for table in ("askers", "answers")
        ):
            holding.append(base)
    askers = answers = 0
    if holding:
        # A writer names only keys of its own range, so no one adds a reference to a dead range: what is
        # unnamed now stays unnamed, and this scan needs no write lock. (It reads every row: no index of
        # all events by asker or answer is kept, for the writers' sake; it runs only while dead ranges
        # hold rows.)
        ranges = " OR ".join(["({c} >= ? AND {c} < ?)"] * len(holding))
        bounds = [v for base in holding for v in (base, base + KEY_RANGE)]
        named: dict[str, set[int]] = {"asker": set(), "answer": set()}
        for table in ("events", "requests"):
            for column, keys in named.items():
                sql = f"SELECT DISTINCT {column} FROM {table} WHERE {ranges.format(c=column)}"
                keys.update(key for (key,) in db.execute(sql, bounds))
        # Checked above, so not by SQLite: with no index of events by asker or answer, its foreign key
        # check would read the whole table again for every row deleted.
        enforced = db.execute("PRAGMA foreign_keys").fetchone()[0]
        db.execute("PRAGMA foreign_keys = OFF")
        try:
            with transaction(db):
                for table, column in (("askers", "asker"), ("answers", "answer")):
                    rows = db.execute(f"SELECT id FROM {table} WHERE {ranges.format(c='id')}", bounds)
                    orphans = [(key,) for (key,) in rows if key not in named[column]]
                    db.executemany(f"DELETE FROM {table} WHERE id = ?", orphans)
                    if table == "askers":
                        askers = len(orphans)
                    else:
                        answers = len(orphans)
        finally:
            db.execute(f"PRAGMA foreign_keys = {int(enforced)}")
    with transaction(db):
        emptied = 0
        for base in dead:
            empty = not any(
                db.execute(
                    f"SELECT 1 FROM {t} WHERE id >= ? AND id < ? LIMIT 1", (base, base + KEY_RANGE)
                ).fetchone()
                for t in ("askers", "answers")
            )
            if empty:
                emptied += _run(db, "DELETE FROM key_ranges WHERE base = ?", base)
    return askers, answers, emptied


class Schedule:
    """`purge` as an event writer process runs it (appliance/events/writer.py): `run` between batches purges
    at the first call, then at most once every PURGE_EVERY_S, PURGE_SLICE_S at a time: after weeks
    switched off there may be millions of rows to delete, and the batches must not wait (and be dropped)
    meanwhile. No purge at all when `settings` is None. Failures are logged, never raised."""

    def __init__(self, path: Path, settings: StoreSettings | None, zone: tzinfo = UTC) -> None:
        self.path, self.settings, self.zone = path, settings, zone
        self._db = connect(path) if settings is not None else None
        self._next = 0.0

    def run(self) -> None:
        """Purge for at most PURGE_SLICE_S if it is time to."""
        now = time.monotonic()
        if self._db is None or self.settings is None or now < self._next:
            return
        try:
            report = purge(self._db, self.settings, time.time(), deadline=now + PURGE_SLICE_S, zone=self.zone)
        except Exception as e:  # the log goes on; the next try is in an hour
            log.error("store %s: retention failed: %s", self.path, e)
            self._next = now + PURGE_EVERY_S
            return
        if report.total:
            log.info("store %s: retention deleted %s", self.path, report)
        self._next = now + (PURGE_EVERY_S if report.complete else 0.0)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def settings_from_json(text: str) -> StoreSettings | None:
    """The `store:` settings as JSON (`{"retention_days": 30, ...}`); defaults when none are given, None
    (no purge at all, rather than one by the wrong settings) when they cannot be read."""
    if not text:
        return StoreSettings()
    try:
        return StoreSettings(**json.loads(text))
    except (ValueError, TypeError) as e:
        log.error("unreadable store settings %r (%s): no retention in this writer", text, e)
        return None
