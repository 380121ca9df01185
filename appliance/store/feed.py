"""The staff's feed of flagged and blocked events, newest first, with the filters the dashboard offers.

DNS events and web requests live in two tables; each is walked newest first through its partial index of
notable rows (`events_notable`, `requests_notable`), and the two pages are merged. Paging is by time
(`before`), so page 50 costs what page 1 does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("none", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class FeedFilter:
    """What the staff asked to see. Empty fields do not filter."""

    child: str = ""  # a child's id
    device: str = ""  # a device's name or an address
    categories: tuple[str, ...] = ()  # a category, or every category of a three-Cs area
    min_severity: str = ""  # low, medium, high, critical
    since: float | None = None
    until: float | None = None
    action: str = ""  # block or flag ('' both)


@dataclass(frozen=True)
class FeedEvent:
    id: str  # dns:N or web:N
    ts: float
    channel: str
    client: str
    subject: str
    via: str
    profile: str
    host: str
    detail: str
    action: str
    severity: str
    category: str
    flagged: bool
    reasons: list[dict[str, Any]] = field(hash=False)
    method: str = ""
    url: str = ""
    status: int = 0
    terms: str = ""

    @property
    def child(self) -> str:
        """The child's id, when a signed-in child made the request."""
        return self.subject[6:] if self.subject.startswith("child:") else ""

    def record(self) -> dict[str, Any]:
        """The event as a plain mapping (kept with an incident, exported as CSV)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_COLUMNS = (
    "{t}.rowid, {t}.ts, w.channel, a.client, a.subject, a.via, w.profile, w.host, w.detail, w.action,"
    " w.severity, w.category, w.flagged, w.reasons, {extra}"
)
_EXTRA = {"events": "'', '', 0, ''", "requests": "r.method, r.url, r.status, r.terms"}
_ALIAS = {"events": "e", "requests": "r"}
_PREFIX = {"events": "dns", "requests": "web"}


def _event(table: str, row: tuple[Any, ...]) -> FeedEvent:
    return FeedEvent(
        f"{_PREFIX[table]}:{row[0]}",
        *row[1:12],
        bool(row[12]),
        json.loads(row[13]),
        *row[14:],
    )


def _where(f: FeedFilter, t: str) -> tuple[list[str], list[Any]]:
    where, args = [f"{t}.notable"], []
    if f.until is not None:
        where.append(f"{t}.ts < ?")
        args.append(f.until)
    if f.since is not None:
        where.append(f"{t}.ts >= ?")
        args.append(f.since)
    if f.child:
        where.append(f"{t}.asker IN (SELECT id FROM askers WHERE subject = ?)")
        args.append(f"child:{f.child}")
    if f.device:
        where.append(f"{t}.asker IN (SELECT id FROM askers WHERE subject = ? OR client = ?)")
        args += [f"device:{f.device}", f.device]
    if f.categories:
        where.append(f"w.category IN ({','.join('?' * len(f.categories))})")
        args += list(f.categories)
    if f.min_severity in SEVERITIES:
        wanted = SEVERITIES[SEVERITIES.index(f.min_severity) :]
        where.append(f"w.severity IN ({','.join('?' * len(wanted))})")
        args += list(wanted)
    if f.action == "block":
        where.append("w.action = 'block'")
    elif f.action == "flag":
        where.append("w.flagged")
    return where, args


def feed(db: sqlite3.Connection, f: FeedFilter, limit: int = 50) -> list[FeedEvent]:
    """Up to `limit` notable events matching `f`, newest first (older than `f.until` for the next page)."""
    found: list[FeedEvent] = []
    for table in ("events", "requests"):
        t = _ALIAS[table]
        where, args = _where(f, t)
        sql = (
            f"SELECT {_COLUMNS.format(t=t, extra=_EXTRA[table])} FROM {table} {t}"
            f" JOIN askers a ON a.id = {t}.asker JOIN answers w ON w.id = {t}.answer"
            f" WHERE {' AND '.join(where)} ORDER BY {t}.ts DESC LIMIT ?"
        )
        found += [_event(table, row) for row in db.execute(sql, (*args, limit))]
    found.sort(key=lambda e: e.ts, reverse=True)
    return found[:limit]


def get_events(db: sqlite3.Connection, ids: Iterable[str]) -> list[FeedEvent]:
    """The events named `dns:N` / `web:N` that still exist (retention may have purged some)."""
    out = []
    for event_id in ids:
        prefix, _, number = event_id.partition(":")
        table = {"dns": "events", "web": "requests"}.get(prefix)
        if table is None or not number.isdigit():
            continue
        t = _ALIAS[table]
        row = db.execute(
            f"SELECT {_COLUMNS.format(t=t, extra=_EXTRA[table])} FROM {table} {t}"
            f" JOIN askers a ON a.id = {t}.asker JOIN answers w ON w.id = {t}.answer WHERE {t}.rowid = ?",
            (int(number),),
        ).fetchone()
        if row is not None:
            out.append(_event(table, row))
    return out
