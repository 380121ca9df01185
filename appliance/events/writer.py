"""The writer process (`python -m appliance.events.writer PATH ZONE SETTINGS`): batches of events in on
stdin from an answering process's EventLog (appliance/events/recording.py), rows out to the SQLite file,
one transaction each; the batches the store refuses for now (a full disk) held and written again; and
the store's retention run between batches.

What is kept follows the verdict's privacy setting (`LogDetail`): `event` rows carry the pseudonymous
subject, `count` only adds one to a daily total, `none` (help services) leaves no trace at all. The
schema is in appliance/store/schema.py and documented in docs/store.md.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import operator
import os
import pickle
import shutil
import signal
import sqlite3
import sys
import time
from array import array
from collections import Counter, deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from multiprocessing.connection import Connection
from operator import attrgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from appliance.events.values import ANSWER_COLUMNS, ASKER_COLUMNS, KEY_RANGE, Answer, Asker, RequestRow
from appliance.store.controls import record_activity
from appliance.store.retention import Schedule, settings_from_json
from appliance.store.schema import StoreError, connect, disk_full, rollback
from profiles.verdict import LogDetail

log = logging.getLogger(__name__)

# The writer process's batches the store refuses for now (a full disk): tried again this often, and
# kept up to this much memory (some minutes of a busy centre's events), then the oldest events go.
RETRY_S = 2.0
MAX_HELD_BYTES = 8 << 20
# A visit (docs/store.md#visits): a notable attempt of the same device, child, host and verdict within
# VISIT_GAP_S of the visit's last one adds to it; a visit is closed VISIT_MAX_S after its first attempt,
# so a device retrying all afternoon still shows each hour (and each day of the reports) as a visit.
VISIT_GAP_S = 300.0
VISIT_MAX_S = 3600.0
MAX_OPEN_VISITS = 50_000  # remembered in memory; beyond, the closed ones are forgotten (the store has them)
MAX_RECORDED_MINUTES = 10_000  # active minutes remembered as written; beyond, all but the last two minutes'
_COUNT = (
    "INSERT INTO daily_counts (day, channel, profile, action, category, count) VALUES (?,?,?,?,?,?)"
    " ON CONFLICT (day, channel, profile, action, category) DO UPDATE SET count = count + excluded.count"
)


_asker_row = attrgetter(*ASKER_COLUMNS)
_answer_row = attrgetter(*ANSWER_COLUMNS)


def open_store(path: Path) -> sqlite3.Connection:
    """The event store at `path`, made or migrated to the current schema (appliance/store/schema.py)."""
    return connect(path)


class StoreWriter:
    """Writes batches of events to the SQLite file, one transaction each: an `events` row (four numbers)
    for what is kept as an event, one added to the day's totals for what is only counted. Who asked and
    what was answered are rows of their own (`askers`, `answers`), written once and named by every event:
    the reasons are not repeated per question, and the SD card sees a fraction of the writes. Their ids
    are the answering process's keys above the highest id in the file when this writer started, so an
    event row is made without a look-up: SQLite takes the four arrays as they come.
    Synchronous: the writer process below owns one.
    """

    def __init__(self, path: Path, zone: tzinfo) -> None:
        """Raises StoreError (a full disk included) when the store cannot be opened or ids reserved."""
        self.path = path
        self.zone = zone
        self.written = 0
        self.counted = 0
        self._db = open_store(path)
        # 16 MiB of page cache (SQLite's default is 2): the feed's indexes by asker and by answer take
        # inserts at many places at once; with their pages kept, each batch costs a third less.
        self._db.execute("PRAGMA cache_size = -16384")
        self._day: tuple[float, float, str] = (0.0, 0.0, "")
        try:
            base = self._claim_keys()
        except StoreError:
            self._db.close()
            raise
        # An int from SQLite, so safe to write into the statements; the columns are the values' fields.
        asker, answer = ", ".join(ASKER_COLUMNS), ", ".join(ANSWER_COLUMNS)
        self._asker_sql = f"INSERT INTO askers (id, {asker}) VALUES (? + {base}{', ?' * len(ASKER_COLUMNS)})"
        self._answer_sql = (
            f"INSERT INTO answers (id, {answer}, notable) VALUES (? + {base}{', ?' * len(ANSWER_COLUMNS)}, ?)"
        )
        self._event_sql = (
            "INSERT INTO events (ts, asker, answer, duration_us, notable)"
            f" VALUES (?, ? + {base}, ? + {base}, CAST(? * 1000000 AS INTEGER), ?)"
        )
        self._request_sql = (
            "INSERT INTO requests (ts, asker, answer, duration_us, method, url, status, bytes, terms,"
            f" notable) VALUES (?, ? + {base}, ? + {base}, CAST(? * 1000000 AS INTEGER), ?, ?, ?, ?, ?, ?)"
        )
        # Keys of the answers blocked or flagged: their events are `notable` (the staff's feed). A set
        # looked up from C per event costs far less than a sub-select per row in SQLite.
        self._notable: set[int] = set()
        self._seen_sql = (
            # By child alone: a child has one open session, and its device may ask from a new address
            # (a renewed lease, its IPv6 address) than the one it signed in from.
            "UPDATE sessions SET last_seen = max(last_seen, ?1) WHERE ended IS NULL AND child = ?2"
        )
        self._count: dict[int, tuple[str, str, str, str]] = {}  # key of a counted Answer -> its total
        # Blocks of names under a blocked domain (`Answer.under`): the event log may only count them (one
        # device asking random names under it), so their answer rows wait until an event names them.
        self._waiting: dict[int, Answer] = {}
        # Visits: who each asker key is, the visit key of each notable answer, and the visits open.
        self._askers: dict[int, str] = {}  # key -> address and subject, as in `open_visits.key`
        self._visit_of: dict[int, str] = {}  # key of a notable answer -> host, action, category, flagged
        self._visits: dict[str, Visit] = {}  # key (`open_visits.key`) -> the visit
        # Active minutes this writer has recorded (child, category, minute): each batch (four a second)
        # names the minute again; only a new one reaches SQLite. The oldest are forgotten.
        self._recorded: set[tuple[str, str, int]] = set()

    def _claim_keys(self) -> int:
        """Reserve KEY_RANGE ids above everything in the file and every other writer's range."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # one writer at a time claims
        try:
            (base,) = db.execute(
                "SELECT max(coalesce((SELECT max(id) FROM askers), 0),"
                " coalesce((SELECT max(id) FROM answers), 0),"
                f" coalesce((SELECT max(base) + {KEY_RANGE} FROM key_ranges), 0))"
            ).fetchone()
            db.execute(
                "INSERT INTO key_ranges (base, claimed, pid) VALUES (?, ?, ?)",
                (int(base), time.time(), os.getpid()),
            )
            db.execute("COMMIT")
        except sqlite3.Error as e:
            rollback(db)
            raise StoreError(f"{self.path}: cannot reserve ids in the event log: {e}") from e
        return int(base)

    def define(self, defs: Iterable[tuple[int, Asker | Answer]]) -> None:
        """Learn keys; writes the asker and answer rows (inside `write`'s transaction)."""
        for key, thing in defs:
            if isinstance(thing, Asker):
                self._db.execute(self._asker_sql, (key, *_asker_row(thing)))
                self._askers[key] = f"{thing.client}\x1f{thing.subject}"
            elif thing.kept and thing.under:
                self._waiting[key] = thing
                self._count[key] = (thing.channel, thing.profile, thing.action, thing.category)
            elif thing.kept:
                self._write_answer(key, thing)
            elif thing.keep is LogDetail.COUNT:
                self._count[key] = (thing.channel, thing.profile, thing.action, thing.category)

    def _write_answer(self, key: int, thing: Answer) -> None:
        notable = int(thing.flagged or thing.action == "block")
        if notable:
            self._notable.add(key)
            verdict = f"{thing.action}\x1f{thing.category}\x1f{int(thing.flagged)}\x1f{thing.reasons}"
            self._visit_of[key] = f"{thing.host}\x1f{verdict}"
        self._db.execute(self._answer_sql, (key, *_answer_row(thing), notable))

    def forget(self, keys: Iterable[int]) -> None:
        for key in keys:
            self._count.pop(key, None)
            self._notable.discard(key)
            self._waiting.pop(key, None)
            self._askers.pop(key, None)
            self._visit_of.pop(key, None)

    def write(
        self,
        defs: Iterable[tuple[int, Asker | Answer]],
        events: tuple[Sequence[float], Sequence[int], Sequence[int], Sequence[float]],
        counted: Sequence[int],
        when: float,
        requests: Sequence[RequestRow] = (),
        seen: Collection[tuple[str, str]] = (),
        activity: Collection[tuple[str, str, int]] = (),
    ) -> None:
        """Define `defs`, write `events` (parallel sequences: when, who's key, what's key, seconds taken)
        and `requests` (web rows), add `counted` (what's keys, one per answer) to the totals of the day of
        `when`, mark the sessions of `seen` (child id, address) in use at `when`, and record the active
        minutes of `activity` (child id, category or "", minute) in the centre's day of each minute
        (appliance.store.controls.record_activity). Raises sqlite3.Error,
        and nothing of the batch is written: the caller keeps it and writes it again, definitions
        included (the answering side sends each once, and later events name it: `Backlog`
        holds the batches the store refused, in order)."""
        db = self._db
        # IMMEDIATE: a visit is looked up before the batch's first write, and a read snapshot another
        # writer's commit made stale could not then be written from (SQLITE_BUSY_SNAPSHOT).
        db.execute("BEGIN IMMEDIATE")
        named: set[int] = set()
        opened: dict[str, Visit] = {}
        minutes = [row for row in activity if row not in self._recorded] if activity else []
        try:
            self.define(defs)
            if self._waiting:
                named = self._waiting.keys() & events[2]  # (a C loop over the batch's answer keys)
                if requests:
                    named |= self._waiting.keys() & [row[2] for row in requests]
                for key in named:
                    self._write_answer(key, self._waiting[key])
            notable = self._notable
            if notable.isdisjoint(events[2]):  # (a C loop: most batches' events are all allowed)
                db.executemany(self._event_sql, zip(*events, itertools.repeat(False)))
                attempts: list[tuple[str, tuple[Any, ...]]] = []
            else:
                # (C loops: the notable rows are picked out by their flags, without a Python step each)
                flags = list(map(notable.__contains__, events[2]))
                plain = itertools.compress(zip(*events, itertools.repeat(False)), map(operator.not_, flags))
                db.executemany(self._event_sql, plain)
                picked = itertools.compress(zip(*events, itertools.repeat(True)), flags)
                attempts = list(zip(itertools.repeat("events"), picked))
            if requests:
                db.executemany(
                    self._request_sql, [(*row, False) for row in requests if row[2] not in notable]
                )
                attempts += [("requests", (*row, True)) for row in requests if row[2] in notable]
            if attempts:
                opened = self._write_visits(attempts)
            totals: Counter[tuple[str, ...]] = Counter()
            if counted:
                day = self._day_of(when)
                for key, n in Counter(counted).items():
                    total = self._count.get(key)
                    if total is not None:
                        totals[(day, *total)] += n
            db.executemany(_COUNT, [(*key, n) for key, n in totals.items()])
            if seen:
                # A signed-in device in use keeps its session from the idle time-out.
                db.executemany(self._seen_sql, [(when, child) for child in {child for child, _ in seen}])
            if minutes:
                days = {minute: self._day_of(minute * 60.0) for minute in {row[2] for row in minutes}}
                record_activity(
                    db, [(days[minute], child, category, minute) for child, category, minute in minutes]
                )
            db.execute("COMMIT")
        except sqlite3.Error:
            rollback(db)
            raise
        for key in named:
            del self._waiting[key]
        self._remember(opened)
        if minutes:
            self._recorded.update(minutes)
            if len(self._recorded) > MAX_RECORDED_MINUTES:
                newest = max(minute for _, _, minute in minutes)
                self._recorded = {row for row in self._recorded if row[2] >= newest - 1}
        self.written += len(events[0]) + len(requests)
        self.counted += sum(totals.values())

    def _write_visits(self, attempts: list[tuple[str, tuple[Any, ...]]]) -> dict[str, Visit]:
        """Write the batch's notable attempts (`table`, row), in time order, as visits: the first attempt
        of a visit is a row as before, the next ones add to its `attempts` and `last_ts`. A visit is found
        among the batch's, this writer's open ones, or else in the store's `open_visits` (another
        writer's, or one from before a restart), all of the batch's in one look-up. The visits opened or
        moved on, to remember once the batch is committed."""
        db = self._db
        attempts.sort(key=lambda attempt: attempt[1][0])
        keyed = [(table, row, self._visit_key(row)) for table, row in attempts]
        mine = self._visits
        unknown = {
            key
            for _, row, key in keyed
            if key is not None and not ((visit := mine.get(key)) is not None and visit.takes(row[0]))
        }
        stored: dict[str, Visit] = {}
        if unknown:
            for key, table, rowid, first, last in db.execute(_FIND_VISITS, (json.dumps(list(unknown)),)):
                stored[key] = Visit(_TABLES[table], rowid, first, last)
        opened: dict[str, Visit] = {}
        bumps: dict[tuple[str, int], list[float]] = {}  # (table, rowid) -> [attempts, last]
        # New rows are inserted all at once, after the decisions: each table's next rowids are known, as
        # SQLite gives a new row the largest rowid plus one and this transaction holds the write lock.
        new: dict[str, list[tuple[Any, ...]]] = {"events": [], "requests": []}
        top = {t: db.execute(f"SELECT coalesce(max(rowid), 0) FROM {t}").fetchone()[0] for t in _TABLES}
        for table, row, key in keyed:
            ts = row[0]
            visit = None
            if key is not None:
                visit = opened.get(key) or mine.get(key)
                if visit is None or not visit.takes(ts):
                    visit = stored.get(key)
                if visit is not None and not visit.takes(ts):
                    visit = None
            if visit is None:
                new[table].append(row)
                if key is not None:
                    opened[key] = Visit(table, top[table] + len(new[table]), ts, ts)
                continue
            assert key is not None
            bump = bumps.setdefault((visit.table, visit.rowid), [0, ts])
            bump[0] += 1
            bump[1] = max(bump[1], ts)
            opened[key] = replace(visit, last=max(visit.last, ts))
        for table, rows in new.items():
            if rows:
                db.executemany(self._event_sql if table == "events" else self._request_sql, rows)
                (last_rowid,) = db.execute(f"SELECT max(rowid) FROM {table}").fetchone()
                if last_rowid != top[table] + len(rows):  # (never: SQLite's documented choice)
                    raise sqlite3.IntegrityError(f"{table}: rowids {top[table]}+ not given in order")
        for (table, rowid), (n, last) in bumps.items():
            db.execute(_attempts_sql(table), (n, last, rowid))
        if opened:
            db.executemany(
                _OPEN_VISIT,
                [(k, _TABLES.index(v.table), v.rowid, v.first, v.last) for k, v in opened.items()],
            )
            newest = max(visit.last for visit in opened.values())
            db.execute("DELETE FROM open_visits WHERE last < ?", (newest - VISIT_MAX_S - VISIT_GAP_S,))
        return opened

    def _visit_key(self, row: tuple[Any, ...]) -> str | None:
        """The visit key of an attempt's row (`open_visits.key`); None for one that is always its own
        event (a web request with search terms: staff must see each search)."""
        if len(row) > 9 and row[8]:
            return None
        asker = self._askers.get(row[1])
        answer = self._visit_of.get(row[2])
        if asker is None or answer is None:
            return None
        return f"{asker}\x1f{answer}"

    def _remember(self, opened: dict[str, Visit]) -> None:
        if not opened:
            return
        visits = self._visits
        visits.update(opened)
        if len(visits) > MAX_OPEN_VISITS:
            now = max(visit.last for visit in opened.values())
            self._visits = {k: v for k, v in visits.items() if v.takes(now)}
            if len(self._visits) > MAX_OPEN_VISITS:
                self._visits.clear()  # (the store finds them again)

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
        self._db.close()


@dataclass(frozen=True)
class Visit:
    """An open visit: its row (`events` or `requests`, rowid) and its first and last attempts' times."""

    table: str
    rowid: int
    first: float
    last: float

    def takes(self, ts: float) -> bool:
        """Whether an attempt at `ts` belongs to this visit."""
        return self.first - VISIT_GAP_S <= ts <= self.last + VISIT_GAP_S and ts - self.first <= VISIT_MAX_S


def _attempts_sql(table: str) -> str:
    return (
        f"UPDATE {table} SET attempts = attempts + ?, last_ts = max(coalesce(last_ts, ts), ?) WHERE rowid = ?"
    )


# The store's open visits (appliance/store/schema.py, version 7), by key: the asker's address and
# subject, the answer's host, action, category, flagged (0 or 1) and its reasons (the JSON, whole: an
# attempt found for other reasons, another phrase or another way round the filter, is a visit of its
# own), joined by U+001F. Not the channel, the query type or the URL: the DNS answer, the page and its
# favicon are one visit.
_TABLES = ("events", "requests")
_FIND_VISITS = (
    "SELECT key, tbl, row, first, last FROM open_visits WHERE key IN (SELECT value FROM json_each(?))"
)
_OPEN_VISIT = (
    "INSERT INTO open_visits (key, tbl, row, first, last) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE"
    " SET tbl = excluded.tbl, row = excluded.row, first = excluded.first,"
    " last = CASE WHEN tbl = excluded.tbl AND row = excluded.row THEN max(last, excluded.last)"
    " ELSE excluded.last END"
)


@dataclass(frozen=True)
class Batch:
    """One hand-over as the writer process takes it: definitions, DNS events (when, who's key, what's
    key, seconds taken), keys only counted, its wall-clock time, keys forgotten, web rows, sessions seen,
    children's active minutes (child id, category or "", minute)."""

    defs: list[tuple[int, Asker | Answer]]
    events: tuple[array[float], array[int], array[int], array[float]]
    counted: array[int]
    when: float
    dead: list[int]
    requests: list[RequestRow]
    seen: set[tuple[str, str]]
    activity: set[tuple[str, str, int]] = field(default_factory=set)

    @property
    def size(self) -> int:
        """Events and web rows in it."""
        return len(self.events[0]) + len(self.requests)

    @property
    def cost(self) -> int:
        """Roughly the bytes it holds in memory."""
        urls = sum(len(row[5]) for row in self.requests)
        return (
            28 * len(self.events[0])
            + 8 * len(self.counted)
            + 250 * len(self.requests)
            + urls
            + 500 * len(self.defs)
            + 100 * len(self.activity)
        )


class Backlog:
    """The writer process's batches not yet in the store, oldest first, and the store they go to.

    A batch the store refuses for a reason that passes (the disk is full, the file is locked or cannot
    be opened) is kept, with every batch after it, and written again in order every RETRY_S (and at each
    flush): its definitions are never lost, so no later event names an asker or answer that is not
    there. The trouble is logged once when it starts and once when it ends. Past MAX_HELD_BYTES the
    oldest batches' events go (counted and logged), their definitions going on with the next batch. A
    batch refused for any other reason (a bug) is dropped whole and logged, as one bad batch must not
    stop the log."""

    def __init__(self, path: Path, zone: tzinfo) -> None:
        self.path, self.zone = path, zone
        self.store: StoreWriter | None = None
        self.held: deque[Batch] = deque()
        self.held_bytes = 0
        self.dropped = 0  # events and web rows dropped in the current trouble (memory full)
        self.trouble = ""  # what is wrong now ("" when nothing): said once
        self._retry_at = 0.0
        self._written_in_trouble = 0

    @property
    def written(self) -> int:
        return self.store.written if self.store is not None else 0

    @property
    def counted(self) -> int:
        return self.store.counted if self.store is not None else 0

    def wait(self, now: float) -> float | None:
        """Seconds until the held batches are tried again; None when none are held."""
        return max(0.0, self._retry_at - now) if self.held else None

    def add(self, batch: Batch) -> None:
        self.held.append(batch)
        self.held_bytes += batch.cost
        while self.held_bytes > MAX_HELD_BYTES and len(self.held) > 1:
            oldest = self.held.popleft()
            self.held_bytes -= oldest.cost
            nxt = self.held.popleft()
            self.held_bytes -= nxt.cost
            # Its events go; what it defined and forgot, the sessions it saw and the children's active
            # minutes (their budgets) go on with the next.
            merged = replace(
                nxt,
                defs=oldest.defs + nxt.defs,
                dead=oldest.dead + nxt.dead,
                seen=oldest.seen | nxt.seen,
                activity=oldest.activity | nxt.activity,
            )
            self.held.appendleft(merged)
            self.held_bytes += merged.cost
            if not self.dropped:
                log.error(
                    "event log %s: %d MB of events waiting for the store: the oldest are dropped from now on",
                    self.path,
                    MAX_HELD_BYTES >> 20,
                )
            self.dropped += oldest.size

    def write(self, now: float, *, now_or_never: bool = False) -> None:
        """Write what is held, oldest first, until all is written or the store refuses a batch. Between
        refusals, only every RETRY_S (at once with `now_or_never`)."""
        if not self.held or (now < self._retry_at and not now_or_never):
            return
        store = self.open(now)
        if store is None:
            return
        while self.held:
            batch = self.held[0]
            try:
                store.write(
                    batch.defs,
                    batch.events,
                    batch.counted,
                    batch.when,
                    batch.requests,
                    batch.seen,
                    batch.activity,
                )
            except sqlite3.OperationalError as e:  # full, locked, an I/O error: it passes; keep the batch
                self._refused(e, now)
                return
            except Exception as e:  # one bad batch must not stop the log
                log.error("event log %s: a batch of events could not be written: %s", self.path, e)
            self.held.popleft()
            self.held_bytes -= batch.cost
            store.forget(batch.dead)
            if self.trouble:
                self._written_in_trouble += batch.size
        if self.trouble:
            lost = f", {self.dropped} dropped for want of memory" if self.dropped else ""
            log.warning(
                "event log %s: writing again: %d events kept while it could not were written%s",
                self.path,
                self._written_in_trouble,
                lost,
            )
            self.trouble, self.dropped, self._written_in_trouble = "", 0, 0
        self._retry_at = 0.0

    def open(self, now: float) -> StoreWriter | None:
        """The store, opened if it is not yet; None (and the trouble said) when it cannot be now."""
        if self.store is None:
            try:
                self.store = StoreWriter(self.path, self.zone)
            except StoreError as e:  # a full disk cannot even reserve ids: tried again later
                self._refused(e, now)
        return self.store

    def _refused(self, error: Exception, now: float) -> None:
        self._retry_at = now + RETRY_S
        trouble = "disk full" if disk_full(error, self.path.parent) else str(error)
        if trouble == self.trouble:
            return
        self.trouble = trouble
        if trouble == "disk full":
            log.error(
                "event log %s: the disk is full (%s free): events are kept in memory (up to %d MB) and"
                " written when there is room again; free some space (docs/raspberry-pi.md#troubleshooting)",
                self.path,
                _free(self.path),
                MAX_HELD_BYTES >> 20,
            )
        else:
            log.error(
                "event log %s: the store refuses writes (%s): events are kept in memory (up to %d MB) and"
                " tried again every %.0f s",
                self.path,
                error,
                MAX_HELD_BYTES >> 20,
                RETRY_S,
            )

    def close(self) -> None:
        if self.held:
            log.error(
                "event log %s: stopping with %d events the store would not take (%s): they are lost",
                self.path,
                sum(b.size for b in self.held),
                self.trouble or "refused",
            )
        if self.store is not None:
            self.store.close()


def _free(path: Path) -> str:
    """The free space on the disk of `path` (or of its nearest parent there is), in words."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        n = shutil.disk_usage(path).free
    except OSError:
        return "unknown space"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def _writer_main(path: str, zone_name: str, settings: str = "") -> None:
    """The writer process: batches in on stdin, rows out, until told to stop or the pipe closes; and the
    store's retention, by `settings` (the `store:` section as JSON, from
    EventLog; the defaults of StoreSettings when empty)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A Ctrl-C's SIGINT, or systemd's SIGTERM to the whole group, reaches this process too: the parent
    # says when to stop (or its end closes the pipe), so the last batches are written first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    receive, conn = Connection(0, writable=False), Connection(1, readable=False)
    zone = ZoneInfo(zone_name)
    backlog = Backlog(Path(path), zone)
    backlog.open(time.monotonic())
    retention: Schedule | None = None
    try:
        while True:
            if retention is None and backlog.store is not None:
                with contextlib.suppress(StoreError):  # (tried again with the next batch)
                    retention = Schedule(Path(path), settings_from_json(settings), zone)
                    retention.run()
            wait = backlog.wait(time.monotonic())
            if wait is not None and not receive.poll(wait):
                backlog.write(time.monotonic())  # held batches, tried again
                continue
            try:
                message = pickle.loads(receive.recv_bytes())
            except EOFError:
                backlog.write(time.monotonic(), now_or_never=True)
                return
            kind = message[0]
            if kind == "flush":
                backlog.write(time.monotonic(), now_or_never=True)
                conn.send_bytes(pickle.dumps(("flushed", backlog.written, backlog.counted)))
            elif kind == "stop":
                backlog.write(time.monotonic(), now_or_never=True)
                return
            else:
                _, defs, ts, who, what, took, counted, when, dead, requests, seen, activity = message
                events = (_array("d", ts), _array("Q", who), _array("Q", what), _array("f", took))
                backlog.add(Batch(defs, events, _array("Q", counted), when, dead, requests, seen, activity))
                backlog.write(time.monotonic())
                if retention is not None and not backlog.held:
                    retention.run()
    finally:
        if retention is not None:
            retention.close()
        backlog.close()


def _array(kind: str, data: bytes) -> array[Any]:
    values = array(kind)
    values.frombytes(data)
    return values


if __name__ == "__main__":
    _writer_main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
