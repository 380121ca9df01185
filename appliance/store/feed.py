"""The staff's feed of flagged and blocked events, newest first, with the filters the dashboard offers.
Each notable row is a visit (docs/store.md#visits): its time is the first attempt's, `attempts` and
`last_ts` say how many and until when.

DNS events and web requests live in two tables, each with partial indexes of its `notable` rows only
(blocked or flagged: a minority of the events, so the indexes cost the writers little): by time
(`*_notable`, covering who and what), by asker (`*_notable_by_asker`) and by answer (`*_notable_by_answer`).
Who asked and what was answered are rows of their own, so a filter on a child or a device is a set of
askers, one on a category, severity or action a set of answers. A page is found per table in two steps:

1. The newest notable rows are walked by time (at most WALK rows), checking the sets: a filter that
   matches much (blocked only, an area, no filter at all) is answered here from the first few hundred.
2. Otherwise the filter is selective, and its set's index is read instead, in windows of time going back
   from where the walk stopped, each four times longer than the last: a child with a handful of events,
   or a rare category, costs a few index look-ups per window, however large the store.

The two tables' pages are merged, and only the rows shown are read whole. Paging is by time (`until`:
the oldest time of the page before), so page 50 costs what page 1 does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from appliance.events.values import ANSWER_COLUMNS, ASKER_COLUMNS, AnswerRow, AskerRow

SEVERITIES = ("none", "low", "medium", "high", "critical")
WALK = 3_000  # notable rows walked by time before a filter counts as selective
GROWTH = 4  # each window of step 2 this many times longer than the one before


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
class FeedEvent(AskerRow, AnswerRow):
    """One event of the feed: its asker's and answer's columns (the event log's rows), with its id and
    time, the reasons read, and for a web request its method, URL, status and search terms."""

    id: str  # dns:N or web:N
    ts: float
    reasons: list[dict[str, Any]] = field(hash=False)
    method: str = ""
    url: str = ""
    status: int = 0
    terms: str = ""
    attempts: int = 1  # the visit's attempts (docs/store.md#visits); `ts` is the first's time
    last_ts: float = 0.0  # the last attempt's time (`ts` when one)

    @property
    def last(self) -> float:
        """The time of the visit's last attempt."""
        return max(self.last_ts, self.ts)

    @property
    def child(self) -> str:
        """The child's id, when a signed-in child made the request."""
        return self.subject[6:] if self.subject.startswith("child:") else ""

    def record(self) -> dict[str, Any]:
        """The event as a plain mapping (kept with an incident, exported as CSV)."""
        return {k: getattr(self, k) for k in _RECORD}


# Its asker's and answer's columns as the event log's values name them (appliance/events/values.py).
_COLUMNS = (
    "{t}.rowid, {t}.ts, "
    + ", ".join([*(f"a.{c}" for c in ASKER_COLUMNS), *(f"w.{c}" for c in ANSWER_COLUMNS)])
    + ", {extra}"
)
_EXTRA = {
    "events": "'', '', 0, '', e.attempts, coalesce(e.last_ts, e.ts)",
    "requests": "r.method, r.url, r.status, r.terms, r.attempts, coalesce(r.last_ts, r.ts)",
}
_ALIAS = {"events": "e", "requests": "r"}
_PREFIX = {"events": "dns", "requests": "web"}
_ANSWER_AT = 2 + len(ASKER_COLUMNS)
_EXTRA_AT = _ANSWER_AT + len(ANSWER_COLUMNS)
_WEB = ("method", "url", "status", "terms")
_VISIT = ("attempts", "last_ts")
# A record's fields in the order incidents have always kept them, then the visit's.
_RECORD = ("id", "ts", ANSWER_COLUMNS[0], *ASKER_COLUMNS, *ANSWER_COLUMNS[1:], *_WEB, *_VISIT)


def _event(table: str, row: tuple[Any, ...]) -> FeedEvent:
    asker = dict(zip(ASKER_COLUMNS, row[2:_ANSWER_AT], strict=True))
    answer = dict(zip(ANSWER_COLUMNS, row[_ANSWER_AT:_EXTRA_AT], strict=True))
    answer["flagged"] = bool(answer["flagged"])
    answer["reasons"] = json.loads(answer["reasons"])
    web = dict(zip((*_WEB, *_VISIT), row[_EXTRA_AT:], strict=True))
    return FeedEvent(id=f"{_PREFIX[table]}:{row[0]}", ts=row[1], **asker, **answer, **web)


@dataclass(frozen=True)
class _Sets:
    """A filter as SQL: the askers and the answers it keeps (None: all), as subqueries with their args."""

    askers: tuple[str, list[Any]] | None
    answers: tuple[str, list[Any]] | None


def _sets(f: FeedFilter) -> _Sets:
    askers: tuple[str, list[Any]] | None = None
    if f.child and f.device:
        askers = (
            "SELECT id FROM askers WHERE subject = ? AND id IN"
            " (SELECT id FROM askers WHERE subject = ? OR client = ?)",
            [f"child:{f.child}", f"device:{f.device}", f.device],
        )
    elif f.child:
        askers = ("SELECT id FROM askers WHERE subject = ?", [f"child:{f.child}"])
    elif f.device:
        askers = ("SELECT id FROM askers WHERE subject = ? OR client = ?", [f"device:{f.device}", f.device])
    where, args = [], []
    if f.categories:
        where.append(f"category IN ({','.join('?' * len(f.categories))})")
        args += list(f.categories)
    if f.min_severity in SEVERITIES:
        wanted = SEVERITIES[SEVERITIES.index(f.min_severity) :]
        where.append(f"severity IN ({','.join('?' * len(wanted))})")
        args += list(wanted)
    if f.action == "block":
        where.append("action = 'block'")
    elif f.action == "flag":
        where.append("flagged")
    answers = None
    if where:
        # `notable` first: the partial index answers_notable holds every column asked about.
        answers = (f"SELECT id FROM answers WHERE notable AND {' AND '.join(where)}", args)
    return _Sets(askers, answers)


def _page(
    db: sqlite3.Connection,
    table: str,
    sets: _Sets,
    since: float | None,
    until: float | None,
    limit: int,
) -> list[tuple[float, int]]:
    """Up to `limit` (ts, rowid) of `table`'s notable rows in the sets, in [since, until), newest first."""
    if limit <= 0:
        return []
    t = _ALIAS[table]
    time_sql, time_args = [], []
    if until is not None:
        time_sql.append(f"{t}.ts < ?")
        time_args.append(until)
    if since is not None:
        time_sql.append(f"{t}.ts >= ?")
        time_args.append(since)
    # `+column` keeps the planner on the index this step means to walk (a set check is then a look-up
    # in the subquery's table, made once per statement).
    checks, check_args = [], []
    if sets.askers is not None:
        checks.append(f"+{t}.asker IN ({sets.askers[0]})")
        check_args += sets.askers[1]
    if sets.answers is not None:
        checks.append(f"+{t}.answer IN ({sets.answers[0]})")
        check_args += sets.answers[1]
    by_time = " ".join(f"AND {c}" for c in time_sql)
    if not checks:
        sql = f"SELECT {t}.ts, {t}.rowid FROM {table} {t} WHERE {t}.notable {by_time}"
        sql += f" ORDER BY {t}.ts DESC LIMIT ?"
        return list(db.execute(sql, (*time_args, limit)))

    # Step 1: how far back do the newest WALK notable rows go? (index only: times, no rows read)
    count, oldest, newest = db.execute(
        f"SELECT count(*), min(ts), max(ts) FROM (SELECT {t}.ts FROM {table} {t} WHERE {t}.notable {by_time}"
        f" ORDER BY {t}.ts DESC LIMIT ?)",
        (*time_args, WALK),
    ).fetchone()
    if not count:
        return []
    # Everything from `oldest` on (rows at `oldest` beyond the WALK too: step 2 goes on below it).
    found: list[tuple[float, int]] = list(
        db.execute(
            f"SELECT {t}.ts, {t}.rowid FROM {table} {t} WHERE {t}.notable {by_time} AND {t}.ts >= ?"
            f" {' '.join(f'AND {c}' for c in checks)} ORDER BY {t}.ts DESC LIMIT ?",
            (*time_args, oldest, *check_args, limit),
        )
    )
    if len(found) >= limit or count < WALK:
        return found

    # Step 2: the filter is selective; its set's own index, window by window going back.
    if sets.askers is not None:
        lead, lead_args = f"{t}.asker IN ({sets.askers[0]})", sets.askers[1]
        rest, rest_args = checks[1:], check_args[len(sets.askers[1]) :]
    else:
        assert sets.answers is not None
        lead, lead_args = f"{t}.answer IN ({sets.answers[0]})", sets.answers[1]
        rest, rest_args = [], []
    (first,) = db.execute(f"SELECT min(ts) FROM {table} WHERE notable").fetchone()
    floor = max(first, since) if since is not None else first
    high = oldest
    # The first window: GROWTH times the time the walk covered (about as many rows again, times GROWTH).
    width = max(newest - oldest, 1.0) * GROWTH
    sql = (
        f"SELECT {t}.ts, {t}.rowid FROM {table} {t} WHERE {t}.notable AND {lead} AND {t}.ts >= ?"
        f" AND {t}.ts < ? {' '.join(f'AND {c}' for c in rest)} ORDER BY {t}.ts DESC LIMIT ?"
    )
    while len(found) < limit and high > floor:
        low = max(high - width, floor)
        found += db.execute(sql, (*lead_args, low, high, *rest_args, limit - len(found)))
        high, width = low, width * GROWTH
    return found


def feed(db: sqlite3.Connection, f: FeedFilter, limit: int = 50) -> list[FeedEvent]:
    """Up to `limit` notable (blocked or flagged) events matching `f`, newest first; with `f.until` the
    oldest time of a page, the next page. Reads only: any connection to the store will do."""
    sets = _sets(f)
    pages: dict[str, list[tuple[float, int]]] = {}
    since = f.since
    for table in ("events", "requests"):
        pages[table] = _page(db, table, sets, since, f.until, limit)
        if len(pages[table]) >= limit:
            # The other table's rows older than this page's last are not shown: no need to look.
            oldest = pages[table][limit - 1][0]
            since = oldest if since is None else max(since, oldest)
    # Newest first; at the same time, web before DNS, later rows first (a stable order for equal times).
    merged = sorted(
        ((ts, table == "requests", rowid) for table, rows in pages.items() for ts, rowid in rows),
        reverse=True,
    )[:limit]
    found: list[FeedEvent] = []
    for table in ("events", "requests"):
        ids = [rowid for _, web, rowid in merged if web == (table == "requests")]
        if ids:
            found += _read(db, table, ids)
    found.sort(key=lambda e: (e.ts, e.id.startswith("web"), int(e.id.partition(":")[2])), reverse=True)
    return found


def _events_where(db: sqlite3.Connection, table: str, where: str, args: Sequence[object]) -> list[FeedEvent]:
    """The rows of `table` (events or requests) with their asker and answer, as feed events, where
    `where` (SQL naming the table by its alias, `{t}`) holds."""
    t = _ALIAS[table]
    return [
        _event(table, row)
        for row in db.execute(
            f"SELECT {_COLUMNS.format(t=t, extra=_EXTRA[table])} FROM {table} {t}"
            f" JOIN askers a ON a.id = {t}.asker JOIN answers w ON w.id = {t}.answer"
            f" WHERE {where.format(t=t)}",
            args,
        )
    ]


def _read(db: sqlite3.Connection, table: str, ids: list[int]) -> list[FeedEvent]:
    return _events_where(db, table, f"{{t}}.rowid IN ({','.join('?' * len(ids))})", ids)


def get_events(db: sqlite3.Connection, ids: Iterable[str]) -> list[FeedEvent]:
    """The events named `dns:N` / `web:N` that still exist (retention may have purged some)."""
    out = []
    for event_id in ids:
        prefix, _, number = event_id.partition(":")
        table = {"dns": "events", "web": "requests"}.get(prefix)
        if table is None or not number.isdigit():
            continue
        out += _read(db, table, [int(number)])
    return out


def notable_after(db: sqlite3.Connection, table: str, after: int, up_to: int, limit: int) -> list[FeedEvent]:
    """Up to `limit` notable rows of `table` (events or requests) with rowids in (`after`, `up_to`], in
    rowid order (the order the writers committed them): the alerter's read past its cursor."""
    where = "{t}.rowid > ? AND {t}.rowid <= ? AND {t}.notable ORDER BY {t}.rowid LIMIT ?"
    return _events_where(db, table, where, (after, up_to, limit))


def notable_of(
    db: sqlite3.Connection, subject: str, since: float, until: float, *, client: str = ""
) -> list[FeedEvent]:
    """The notable events of `subject` (child:<id>, device:<name>, guest) in [since, until], both tables,
    oldest first; with `client`, only those asked from that address (one guest among the guests)."""
    found: list[FeedEvent] = []
    askers = "SELECT id FROM askers WHERE subject = ?" + (" AND client = ?" if client else "")
    args = [subject, client] if client else [subject]
    where = f"{{t}}.notable AND {{t}}.asker IN ({askers}) AND {{t}}.ts >= ? AND {{t}}.ts <= ?"
    for table in ("events", "requests"):
        found += _events_where(db, table, where, (*args, since, until))
    return sorted(found, key=lambda e: (e.ts, e.id))
