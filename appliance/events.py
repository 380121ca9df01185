"""The monitoring log's values and its SQLite file: who asked, what was answered, and the writing of
batches of events (appliance/event_log.py moves them from the answering process to a writer process).

What is kept follows the verdict's privacy setting (`LogDetail`): `event` rows carry the pseudonymous
subject, `count` only adds one to a daily total, `none` (help services) leaves no trace at all. The
schema is in appliance/store/schema.py and documented in docs/store.md.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path

from appliance.store.schema import StoreError, connect, rollback
from profiles.identity import Identity
from profiles.verdict import Action, LogDetail, Verdict

log = logging.getLogger(__name__)

KEY_RANGE = 1 << 40  # keys one writer may use: a trillion askers and answers before it restarts
_COUNT = (
    "INSERT INTO daily_counts (day, channel, profile, action, category, count) VALUES (?,?,?,?,?,?)"
    " ON CONFLICT (day, channel, profile, action, category) DO UPDATE SET count = count + excluded.count"
)


# A web event: when, who's key, what's key, seconds taken, method, URL, status, bytes, search terms.
RequestRow = tuple[float, int, int, float, str, str, int, int, str]


_KEYS = itertools.count(1)


def _next_key() -> int:
    return next(_KEYS)


@dataclass(frozen=True)
class Who:
    """The asking side of an event, made once per client: address, pseudonymous subject, how found.
    `key` names it between the answering process and the writer (see appliance/event_log.py)."""

    client: str
    subject: str
    via: str
    key: int = field(default_factory=_next_key, compare=False)

    @classmethod
    def of(cls, client: str, identity: Identity) -> Who:
        return cls(client, identity.subject, str(identity.via))


@dataclass(frozen=True)
class What:
    """The answered side of an event, made once per verdict and reused for every repeat of it.
    `under`: for a block by a rule naming a parent domain of `host` (`pornhub.com` for `a1.pornhub.com`),
    that domain, by which the event log puts together one device's names under it (appliance/event_log.py);
    '' for anything else, a flagged block included (staff must see each of those)."""

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
    under: str = ""
    key: int = field(default_factory=_next_key, compare=False)

    @property
    def kept(self) -> bool:
        """Kept as an event (else, unless `keep` is none, only counted in the day's totals)."""
        return self.keep is LogDetail.EVENT or self.flagged

    @classmethod
    def of(cls, channel: str, host: str, detail: str, verdict: Verdict) -> What:
        category = next((r.category for r in verdict.reasons if r.category), "")
        reasons = json.dumps([r.as_json(grid=False) for r in verdict.reasons])
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
            under=blocked_under(host, verdict),
        )


_DOMAIN_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")


def blocked_under(host: str, verdict: Verdict) -> str:
    """The parent domain of `host` whose rule blocks it: the first blocking rule that is a domain (as a
    domain list, or an adblock `||domain^` rule, writes it) and a parent of `host`. '' when a rule
    names `host` itself, for a flagged block, and when nothing blocks."""
    if verdict.action is not Action.BLOCK or verdict.flagged:
        return ""
    host = host.lower().rstrip(".")
    under = ""
    for reason in verdict.reasons:
        if reason.effect is not Action.BLOCK:
            continue
        rule = reason.rule.lower()
        if rule.startswith("||"):
            rule = rule[2:].removesuffix("^")
        domain = rule.strip(".")
        if domain == host:
            return ""  # listed by name: each is its own event
        if not under and domain and _DOMAIN_CHARACTERS.issuperset(domain) and host.endswith("." + domain):
            under = domain
    return under


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
    Synchronous: the writer process of appliance/event_log.py owns one.
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
        # An int from SQLite, so safe to write into the statements.
        self._asker_sql = f"INSERT INTO askers (id, client, subject, via) VALUES (? + {base}, ?, ?, ?)"
        self._answer_sql = (
            "INSERT INTO answers (id, channel, profile, host, detail, action, severity, category,"
            f" flagged, reasons, notable) VALUES (? + {base}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
        self._count: dict[int, tuple[str, str, str, str]] = {}  # key of a counted What -> its total
        # Blocks of names under a blocked domain (`What.under`): the event log may only count them (one
        # device asking random names under it), so their answer rows wait until an event names them.
        self._waiting: dict[int, What] = {}

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

    def define(self, defs: Iterable[tuple[int, Who | What]]) -> None:
        """Learn keys; writes the asker and answer rows (inside `write`'s transaction)."""
        for key, thing in defs:
            if isinstance(thing, Who):
                self._db.execute(self._asker_sql, (key, thing.client, thing.subject, thing.via))
            elif thing.kept and thing.under:
                self._waiting[key] = thing
                self._count[key] = (thing.channel, thing.profile, thing.action, thing.category)
            elif thing.kept:
                self._write_answer(key, thing)
            elif thing.keep is LogDetail.COUNT:
                self._count[key] = (thing.channel, thing.profile, thing.action, thing.category)

    def _write_answer(self, key: int, thing: What) -> None:
        notable = int(thing.flagged or thing.action == "block")
        if notable:
            self._notable.add(key)
        row = (key, thing.channel, thing.profile, thing.host, thing.detail, thing.action, thing.severity)
        self._db.execute(self._answer_sql, (*row, thing.category, int(thing.flagged), thing.reasons, notable))

    def forget(self, keys: Iterable[int]) -> None:
        for key in keys:
            self._count.pop(key, None)
            self._notable.discard(key)
            self._waiting.pop(key, None)

    def write(
        self,
        defs: Iterable[tuple[int, Who | What]],
        events: tuple[Sequence[float], Sequence[int], Sequence[int], Sequence[float]],
        counted: Sequence[int],
        when: float,
        requests: Sequence[RequestRow] = (),
        seen: Collection[tuple[str, str]] = (),
    ) -> None:
        """Define `defs`, write `events` (parallel sequences: when, who's key, what's key, seconds taken)
        and `requests` (web rows), add `counted` (what's keys, one per answer) to the totals of the day of
        `when`, and mark the sessions of `seen` (child id, address) in use at `when`. Raises sqlite3.Error,
        and nothing of the batch is written: the caller keeps it and writes it again, definitions
        included (the answering side sends each once, and later events name it: appliance/event_log.py
        holds the batches the store refused, in order)."""
        db = self._db
        db.execute("BEGIN")
        named: set[int] = set()
        try:
            self.define(defs)
            if self._waiting:
                named = self._waiting.keys() & events[2]  # (a C loop over the batch's answer keys)
                if requests:
                    named |= self._waiting.keys() & [row[2] for row in requests]
                for key in named:
                    self._write_answer(key, self._waiting[key])
            flags = map(self._notable.__contains__, events[2])
            db.executemany(self._event_sql, zip(*events, flags, strict=True))
            if requests:
                notable = self._notable
                db.executemany(self._request_sql, [(*row, row[2] in notable) for row in requests])
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
            db.execute("COMMIT")
        except sqlite3.Error:
            rollback(db)
            raise
        for key in named:
            del self._waiting[key]
        self.written += len(events[0]) + len(requests)
        self.counted += sum(totals.values())

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
