"""The monitoring log: events handed over by the DNS filter (and later the proxy), written to SQLite in
batches by a thread of their own, so answering never waits for the disk.

What is kept follows the verdict's privacy setting (`LogDetail`): `event` rows carry the pseudonymous
subject, `count` only adds one to a daily total, `none` (help services) leaves no trace at all. The
schema is documented in docs/dns.md ("The query log"); the event store (issue 6) takes it over.
"""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from filters.errors import ApplianceError
from profiles.identity import Identity
from profiles.verdict import LogDetail, Verdict

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    ts          REAL    NOT NULL,  -- when, in seconds since 1970 (UTC)
    channel     TEXT    NOT NULL,  -- dns, tls or http
    client      TEXT    NOT NULL,  -- the device's address
    subject     TEXT    NOT NULL,  -- child:<id>, device:<name> or guest; never a child's name
    via         TEXT    NOT NULL,  -- how the profile was found: session, device-mac, device-ip, guest
    profile     TEXT    NOT NULL,
    host        TEXT    NOT NULL,
    detail      TEXT    NOT NULL,  -- dns: the query type (A, AAAA, HTTPS, ...)
    action      TEXT    NOT NULL,  -- allow, block, rewrite, flag
    severity    TEXT    NOT NULL,  -- '' when none
    category    TEXT    NOT NULL,  -- the first reason's category, '' when none
    flagged     INTEGER NOT NULL,  -- 1 when staff should look at it
    reasons     TEXT    NOT NULL,  -- JSON: [{step, effect, detail, category, severity, source, line, rule}]
    duration_us INTEGER NOT NULL   -- time taken to answer
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (ts);
CREATE INDEX IF NOT EXISTS events_flagged ON events (flagged, ts) WHERE flagged = 1;
CREATE TABLE IF NOT EXISTS daily_counts (
    day      TEXT    NOT NULL,  -- the centre's local date, YYYY-MM-DD
    channel  TEXT    NOT NULL,
    profile  TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    category TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (day, channel, profile, action, category)
) WITHOUT ROWID;
"""
_INSERT = (
    "INSERT INTO events (ts, channel, client, subject, via, profile, host, detail, action, severity,"
    " category, flagged, reasons, duration_us) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_COUNT = (
    "INSERT INTO daily_counts (day, channel, profile, action, category, count) VALUES (?,?,?,?,?,?)"
    " ON CONFLICT (day, channel, profile, action, category) DO UPDATE SET count = count + excluded.count"
)


class StoreError(ApplianceError):
    """The event log's SQLite file cannot be opened or is of a newer schema."""


@dataclass(frozen=True)
class Who:
    """The asking side of an event, made once per client: address, pseudonymous subject, how found."""

    client: str
    subject: str
    via: str

    @classmethod
    def of(cls, client: str, identity: Identity) -> Who:
        return cls(client, identity.subject, str(identity.via))


@dataclass(frozen=True)
class What:
    """The answered side of an event, made once per verdict and reused for every repeat of it."""

    channel: str
    profile: str
    host: str
    detail: str
    action: str
    severity: str
    category: str
    flagged: bool
    reasons: str
    keep: LogDetail

    @classmethod
    def of(cls, channel: str, host: str, detail: str, verdict: Verdict) -> What:
        category = next((r.category for r in verdict.reasons if r.category), "")
        reasons = json.dumps(
            [
                {
                    "step": str(r.step),
                    "effect": str(r.effect),
                    "detail": r.detail,
                    "category": r.category,
                    "severity": str(r.severity),
                    "source": r.source,
                    "line": r.line,
                    "rule": r.rule,
                }
                for r in verdict.reasons
            ]
        )
        return cls(
            channel,
            verdict.profile,
            host,
            detail,
            str(verdict.action),
            str(verdict.severity),
            category,
            verdict.flagged,
            reasons,
            verdict.log,
        )


Event = tuple[float, Who, What, int]  # when (time.time()), who, what, microseconds taken
Columns = tuple[list[float], list[Who], list[What], list[float]]  # the same, as lists; seconds taken


def open_store(path: Path) -> sqlite3.Connection:
    """The event log at `path`, created with its schema if new. WAL mode: readers never block the writer,
    and a power cut loses at most the last unsynced batch, never the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: the event log has schema version {version}; this appliance knows up to 1"
            )
        db.executescript(SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.Error as e:
        raise StoreError(f"{path}: cannot open the event log: {e}") from e
    return db


class EventWriter:
    """Takes events without ever blocking the answering side, and writes them in batches.

    Two ways in: `submit(event)` (a deque append, from any thread), and `submit_columns(...)`, a whole
    batch as four parallel lists (when, who, what, seconds taken) that the DNS filter's event loop fills
    with plain appends: no object per question survives, so the garbage collector has nothing new to
    walk. The writer thread writes whatever came in every `interval` seconds. If the disk falls behind
    by more than `backlog` events, the oldest waiting ones are dropped (answering goes on; the log says
    so). `failed` counts events a write error lost.
    """

    def __init__(self, path: Path, zone: tzinfo, *, interval: float = 0.5, backlog: int = 500_000) -> None:
        self.path = path
        self.zone = zone
        self.interval = interval
        self.written = 0
        self.counted = 0
        self.failed = 0
        self._queue: deque[Event] = deque(maxlen=backlog)
        self._batches: deque[Columns] = deque(maxlen=max(1, backlog // 10_000))
        self.submit = self._queue.append
        self._db = open_store(path)
        self._stop = threading.Event()
        self._day: tuple[float, float, str] = (0.0, 0.0, "")
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def submit_columns(self, columns: Columns) -> None:
        """A batch of events as (when, who, what, seconds taken) lists of equal length."""
        if len(self._batches) == self._batches.maxlen:
            log.warning("event log %s: the disk fell behind; a batch of events was dropped", self.path)
        self._batches.append(columns)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Write whatever is waiting (called by the writer thread; safe to call from another)."""
        queue, batches = self._queue, self._batches
        if not queue and not batches:
            return
        if len(queue) == queue.maxlen:
            log.warning(
                "event log %s: the disk fell behind; the oldest waiting events were dropped", self.path
            )
        single: list[Event] = [queue.popleft() for _ in range(len(queue))]
        columns = [batches.popleft() for _ in range(len(batches))]
        size = len(single) + sum(len(c[0]) for c in columns)
        batch = itertools.chain(
            single,
            *(
                zip(ts, who, what, (int(t * 1e6) for t in took), strict=True)
                for ts, who, what, took in columns
            ),
        )
        try:
            self._write(batch)
        except sqlite3.Error as e:
            log.error("event log %s: could not write %d events: %s", self.path, size, e)
            self.failed += size

    def _write(self, batch: Iterable[Event]) -> None:
        counts: dict[tuple[str, str, str, str, str], int] = {}
        kept = [0]

        def rows() -> Iterator[tuple[object, ...]]:
            # Made one at a time as SQLite takes them: a batch never exists twice in memory.
            for ts, who, what, duration in batch:
                keep = what.keep
                if keep is LogDetail.EVENT or what.flagged:
                    kept[0] += 1
                    yield (
                        ts,
                        what.channel,
                        who.client,
                        who.subject,
                        who.via,
                        what.profile,
                        what.host,
                        what.detail,
                        what.action,
                        what.severity,
                        what.category,
                        what.flagged,
                        what.reasons,
                        duration,
                    )
                elif keep is LogDetail.COUNT:
                    key = (self._day_of(ts), what.channel, what.profile, what.action, what.category)
                    counts[key] = counts.get(key, 0) + 1

        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(_INSERT, rows())
            db.executemany(_COUNT, [(*key, n) for key, n in counts.items()])
            db.execute("COMMIT")
        except sqlite3.Error:
            db.execute("ROLLBACK")
            raise
        self.written += kept[0]
        self.counted += sum(counts.values())

    def _day_of(self, ts: float) -> str:
        start, end, day = self._day
        if start <= ts < end:
            return day
        local = datetime.fromtimestamp(ts, self.zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        day = midnight.date().isoformat()
        # Recomputed at most a few times a day (and at the changes of hour, harmlessly).
        self._day = (midnight.timestamp(), midnight.timestamp() + 3600, day)
        return day

    def close(self) -> None:
        """Write what is waiting and stop the thread."""
        self._stop.set()
        self._thread.join(timeout=10)
        self._db.close()
