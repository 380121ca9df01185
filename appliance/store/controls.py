"""Staff's controls in the store (schema version 9): pauses, grants ("allow for a while"), the children's
asks to use a site, per-child time budgets, extra time, and the active minutes budgets are counted from.

Every change is audited (appliance.store.audit) and bumps the `controls` counter in the same transaction,
so the DNS filter, the proxy and the router notice it (appliance.in_force follows the counter, as it
follows `bindings`). Times are seconds since 1970; days are the centre's local dates (`YYYY-MM-DD`). What
the records mean, and in which order `decide` applies them, is in profiles/controls.py.

Bad input is refused with a ValueError in words staff can be shown (the dashboard's forms pass them on).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from appliance.store import audit
from appliance.store.schema import transaction
from profiles.controls import Budget, Controls, Grant, Left, Pause, Scope, Usage

ASK_SAME_S = 600.0  # a child asking again for the same site within this long is the same ask
ASK_EXPIRES_S = 7200.0  # an ask nobody answered within this long is `expired`
NOTE_CHARACTERS = 200  # the most of the child's own words an ask keeps


@dataclass(frozen=True)
class PauseRecord:
    """A pause as stored: `scope`'s `target` (device key, child id, profile name, "" for the centre)
    paused by `by` from `since` until `until` (None: until resumed); `label` is what staff see."""

    id: int
    scope: Scope
    target: str
    label: str
    since: float
    until: float | None
    by: str
    reason: str


@dataclass(frozen=True)
class GrantRecord:
    """A grant as stored: one child (`child`) or device (`device`) may use `host` or `category` from
    `since` until `until`, given by `by` for `reason`; `ended` when ended early (by `ended_by`)."""

    id: int
    child: str | None
    device: str | None
    label: str
    host: str | None
    category: str | None
    since: float
    until: float
    by: str
    reason: str
    ended: float | None = None
    ended_by: str | None = None


@dataclass(frozen=True)
class AskRecord:
    """A child's (or device's) "ask to use this site", from the block page."""

    id: int
    ts: float
    subject: str  # child:<id>, device:<name> or guest
    child: str | None  # the child's id when signed in
    device: str  # the device key
    client: str  # the address
    label: str  # who, for staff
    host: str
    category: str
    profile: str
    note: str
    state: str = "pending"  # pending, granted, refused, expired
    answered: float | None = None
    answered_by: str | None = None
    grant_id: int | None = None


# --- the counter the services follow -------------------------------------------------------------------


def controls_version(db: sqlite3.Connection) -> int:
    """The `controls` counter: it changes whenever something the answering services follow does."""
    row = db.execute("SELECT value FROM settings WHERE key = 'controls'").fetchone()
    return int(row[0]) if row else 0


def bump_controls(db: sqlite3.Connection) -> None:
    """Tell the DNS filter, the proxy and the router that controls changed (inside the change's
    transaction)."""
    db.execute("UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE key = 'controls'")


@contextmanager
def _change(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """The caller's transaction if one is open (the writer's batch), else one of its own."""
    if db.in_transaction:
        yield db
    else:
        with transaction(db):
            yield db


def _audit(db: sqlite3.Connection, now: float, by: str, action: str, subject: str, detail: str) -> None:
    row = db.execute("SELECT id FROM staff WHERE username = ?", (by,)).fetchone()
    audit.record(db, now, row[0] if row else None, by, action, subject, detail)


def _for_words(until: float | None, now: float) -> str:
    """How long, for the audit log (which gives the entry's own time): no clock zone needed."""
    if until is None:
        return "until resumed"
    minutes = round((until - now) / 60)
    return f"for {minutes} minute{'' if minutes == 1 else 's'}"


# --- pauses ---------------------------------------------------------------------------------------------


def pause(
    db: sqlite3.Connection,
    *,
    scope: Scope,
    target: str,
    label: str,
    minutes: int | None,
    by: str,
    reason: str,
    now: float,
) -> int:
    """Pause the internet for `scope`'s `target` from `now`, for `minutes` (None: until resumed); its id.
    Raises ValueError for minutes <= 0, a centre pause with a target or another without one."""
    scope = Scope(scope)
    if minutes is not None and minutes <= 0:
        raise ValueError(f"a pause must last at least a minute (not {minutes})")
    if scope is Scope.CENTRE and target:
        raise ValueError(f"a pause of the whole centre has no target (not {target!r})")
    if scope is not Scope.CENTRE and not target:
        raise ValueError(f"a pause of a {scope} must name the {scope}")
    until = None if minutes is None else now + minutes * 60.0
    with _change(db):
        cursor = db.execute(
            "INSERT INTO pauses (scope, target, label, since, until, by, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (str(scope), target, label, now, until, by, reason),
        )
        pause_id = int(cursor.lastrowid or 0)
        detail = f"pause {pause_id} of {label or scope} {_for_words(until, now)}"
        detail += f": {reason}" if reason else ""
        _audit(db, now, by, "pause", _pause_subject(scope, target), detail)
        bump_controls(db)
    return pause_id


def _pause_subject(scope: Scope, target: str) -> str:
    return "centre" if scope is Scope.CENTRE else f"{scope}:{target}"


def resume(db: sqlite3.Connection, pause_id: int, *, by: str, now: float) -> bool:
    """End pause `pause_id` at `now`; False (and nothing changed) when it is already over or unknown."""
    with _change(db):
        row = db.execute(
            "SELECT scope, target, label FROM pauses"
            " WHERE id = ? AND ended IS NULL AND (until IS NULL OR until > ?)",
            (pause_id, now),
        ).fetchone()
        if row is None:
            return False
        db.execute("UPDATE pauses SET ended = ?, ended_by = ? WHERE id = ?", (now, by, pause_id))
        _audit(db, now, by, "resume", _pause_subject(Scope(row[0]), row[1]), f"pause {pause_id} of {row[2]}")
        bump_controls(db)
    return True


_PAUSE_COLUMNS = "id, scope, target, label, since, until, by, reason"


def active_pauses(db: sqlite3.Connection, now: float) -> list[PauseRecord]:
    """The pauses in force at `now`, oldest first."""
    rows = db.execute(
        f"SELECT {_PAUSE_COLUMNS} FROM pauses"
        " WHERE ended IS NULL AND since <= ?1 AND (until IS NULL OR until > ?1) ORDER BY since, id",
        (now,),
    )
    return [PauseRecord(i, Scope(scope), *rest) for i, scope, *rest in rows]


# --- grants ---------------------------------------------------------------------------------------------


def grant(
    db: sqlite3.Connection,
    *,
    child: str | None,
    device: str | None,
    label: str,
    host: str | None,
    category: str | None,
    until: float,
    by: str,
    reason: str,
    now: float,
) -> int:
    """Let one child (their id) or one device (its key) use `host` (with its subdomains) or `category`
    from `now` until `until`; its id. Raises ValueError unless exactly one of child/device and one of
    host/category is given, for an empty reason, or an `until` not after `now`."""
    if (child is None) == (device is None) or child == "" or device == "":
        raise ValueError("a grant is for one child or one device: give exactly one of them")
    if host is not None:
        host = host.strip().lower().rstrip(".")
    if (host is None) == (category is None) or host == "" or category == "":
        raise ValueError("a grant is for one site or one category: give exactly one of them")
    if not reason.strip():
        raise ValueError("a grant needs a reason (it is kept for the yearly review)")
    if until <= now:
        raise ValueError("a grant must end in the future")
    with _change(db):
        cursor = db.execute(
            "INSERT INTO grants (child, device, label, host, category, since, until, by, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (child, device, label, host, category, now, until, by, reason.strip()),
        )
        grant_id = int(cursor.lastrowid or 0)
        what = host if host is not None else f"category {category}"
        detail = f"grant {grant_id}: {what} for {label} {_for_words(until, now)}: {reason.strip()}"
        _audit(db, now, by, "grant", _grant_subject(child, device), detail)
        bump_controls(db)
    return grant_id


def _grant_subject(child: str | None, device: str | None) -> str:
    return f"child:{child}" if child is not None else f"device:{device}"


def end_grant(db: sqlite3.Connection, grant_id: int, *, by: str, now: float) -> bool:
    """End grant `grant_id` at `now`; False (and nothing changed) when it is already over or unknown."""
    with _change(db):
        row = db.execute(
            "SELECT child, device, label FROM grants WHERE id = ? AND ended IS NULL AND until > ?",
            (grant_id, now),
        ).fetchone()
        if row is None:
            return False
        db.execute("UPDATE grants SET ended = ?, ended_by = ? WHERE id = ?", (now, by, grant_id))
        _audit(db, now, by, "end-grant", _grant_subject(row[0], row[1]), f"grant {grant_id} for {row[2]}")
        bump_controls(db)
    return True


_GRANT_COLUMNS = "id, child, device, label, host, category, since, until, by, reason, ended, ended_by"


def active_grants(db: sqlite3.Connection, now: float) -> list[GrantRecord]:
    """The grants in force at `now`, oldest first."""
    rows = db.execute(
        f"SELECT {_GRANT_COLUMNS} FROM grants WHERE ended IS NULL AND since <= ?1 AND until > ?1"
        " ORDER BY since, id",
        (now,),
    )
    return [GrantRecord(*row) for row in rows]


def grants_between(db: sqlite3.Connection, start: float, end: float) -> list[GrantRecord]:
    """Every grant given from `start` (included) to `end` (excluded), ended or not, oldest first: who
    allowed what, for whom, why and until when (the yearly review)."""
    rows = db.execute(
        f"SELECT {_GRANT_COLUMNS} FROM grants WHERE since >= ? AND since < ? ORDER BY since, id", (start, end)
    )
    return [GrantRecord(*row) for row in rows]


# --- asks to use a site ---------------------------------------------------------------------------------

_ASK_COLUMNS = (
    "id, ts, subject, child, device, client, label, host, category, profile, note, state, answered,"
    " answered_by, grant_id"
)


def ask(
    db: sqlite3.Connection,
    *,
    subject: str,
    child: str | None,
    device: str,
    client: str,
    label: str,
    host: str,
    category: str,
    profile: str,
    note: str,
    now: float,
) -> int:
    """A child's (or device's) ask to use `host`, from the block page; its id. A pending ask of the same
    subject and host made within ASK_SAME_S is the same one (its id, nothing written). Raises ValueError
    for an empty host or a note of more than NOTE_CHARACTERS."""
    host = host.strip().lower().rstrip(".")
    if not host:
        raise ValueError("an ask names the site asked for")
    note = note.strip()
    if len(note) > NOTE_CHARACTERS:
        raise ValueError(f"the note is {len(note)} characters long; at most {NOTE_CHARACTERS} are kept")
    with _change(db):
        same = db.execute(
            "SELECT id FROM access_requests WHERE state = 'pending' AND subject = ? AND host = ? AND ts > ?"
            " ORDER BY ts DESC LIMIT 1",
            (subject, host, now - ASK_SAME_S),
        ).fetchone()
        if same is not None:
            return int(same[0])
        cursor = db.execute(
            "INSERT INTO access_requests (ts, subject, child, device, client, label, host, category, profile,"
            " note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now, subject, child, device, client, label, host, category, profile, note),
        )
        ask_id = int(cursor.lastrowid or 0)
        detail = f"ask {ask_id}: {host}" + (f": {note}" if note else "")
        _audit(db, now, subject, "ask-to-use", subject, detail)
        bump_controls(db)
    return ask_id


def _expire_asks(db: sqlite3.Connection, now: float) -> None:
    db.execute(
        "UPDATE access_requests SET state = 'expired' WHERE state = 'pending' AND ts <= ?",
        (now - ASK_EXPIRES_S,),
    )


def pending_asks(db: sqlite3.Connection, now: float) -> list[AskRecord]:
    """The asks waiting for staff, oldest first; those older than ASK_EXPIRES_S become `expired`."""
    asks = [
        AskRecord(*row)
        for row in db.execute(
            f"SELECT {_ASK_COLUMNS} FROM access_requests WHERE state = 'pending' ORDER BY ts, id"
        )
    ]
    # Written only when one is due: the dashboard asks every few seconds, and a write would take the lock.
    if any(a.ts <= now - ASK_EXPIRES_S for a in asks):
        with _change(db):
            _expire_asks(db, now)
        asks = [a for a in asks if a.ts > now - ASK_EXPIRES_S]
    return asks


def get_ask(db: sqlite3.Connection, ask_id: int) -> AskRecord | None:
    """Ask `ask_id` in whatever state it is, None when there is none."""
    row = db.execute(f"SELECT {_ASK_COLUMNS} FROM access_requests WHERE id = ?", (ask_id,)).fetchone()
    return AskRecord(*row) if row else None


def _pending_ask(db: sqlite3.Connection, ask_id: int, now: float) -> AskRecord | None:
    _expire_asks(db, now)
    found = get_ask(db, ask_id)
    if found is None:
        raise ValueError(f"there is no ask {ask_id}")
    return found if found.state == "pending" else None


def answer_ask(
    db: sqlite3.Connection,
    ask_id: int,
    *,
    grant_minutes: int | None,
    until: float | None,
    by: str,
    reason: str,
    now: float,
) -> int | None:
    """Grant ask `ask_id`: the ask's site for its child (else its device) for `grant_minutes` or until
    `until` (exactly one); the grant's id, or None when the ask was already answered or has expired.
    Raises ValueError for an unknown ask, both or neither of grant_minutes/until, or what `grant`
    refuses."""
    if (grant_minutes is None) == (until is None):
        raise ValueError("grant an ask for some minutes or until a time: give exactly one of them")
    if grant_minutes is not None:
        if grant_minutes <= 0:
            raise ValueError(f"a grant must last at least a minute (not {grant_minutes})")
        until = now + grant_minutes * 60.0
    assert until is not None
    with _change(db):
        found = _pending_ask(db, ask_id, now)
        if found is None:
            return None
        grant_id = grant(
            db,
            child=found.child,
            device=None if found.child is not None else found.device,
            label=found.label,
            host=found.host,
            category=None,
            until=until,
            by=by,
            reason=reason,
            now=now,
        )
        db.execute(
            "UPDATE access_requests SET state = 'granted', answered = ?, answered_by = ?, grant_id = ?"
            " WHERE id = ?",
            (now, by, grant_id, ask_id),
        )
    return grant_id


def refuse_ask(db: sqlite3.Connection, ask_id: int, *, by: str, reason: str, now: float) -> bool:
    """Refuse ask `ask_id`; False when it was already answered or has expired. Raises ValueError for an
    unknown ask."""
    with _change(db):
        found = _pending_ask(db, ask_id, now)
        if found is None:
            return False
        db.execute(
            "UPDATE access_requests SET state = 'refused', answered = ?, answered_by = ? WHERE id = ?",
            (now, by, ask_id),
        )
        detail = f"ask {ask_id}: {found.host} for {found.label}" + (f": {reason}" if reason else "")
        _audit(db, now, by, "refuse-ask", found.subject, detail)
        bump_controls(db)
    return True


# --- budgets, extra time, activity ------------------------------------------------------------------------


def set_child_budget(
    db: sqlite3.Connection, child: str, budget: Budget | None, *, by: str, now: float
) -> None:
    """Give `child` a budget of their own, replacing their profile's whole (an empty Budget: no limits for
    them); None: back to the profile's. Raises ValueError for negative minutes or an unknown child."""
    if budget is not None:
        for name, minutes in ((None, budget.minutes), *budget.categories.items()):
            if minutes is not None and (not isinstance(minutes, int) or minutes < 0):
                what = name or "internet"
                raise ValueError(f"{what} minutes must be a whole number, 0 or more (not {minutes!r})")
    with _change(db):
        if db.execute("SELECT 1 FROM children WHERE id = ?", (child,)).fetchone() is None:
            raise ValueError(f"there is no child {child!r}")
        if budget is None:
            db.execute("DELETE FROM child_budgets WHERE child = ?", (child,))
            detail = "the profile's budget"
        else:
            categories = json.dumps(dict(sorted(budget.categories.items())))
            db.execute(
                "INSERT INTO child_budgets (child, minutes, categories, set_by, ts) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (child) DO UPDATE SET minutes = excluded.minutes,"
                " categories = excluded.categories, set_by = excluded.set_by, ts = excluded.ts",
                (child, budget.minutes, categories, by, now),
            )
            detail = f"internet {budget.minutes if budget.minutes is not None else 'no limit'}, {categories}"
        _audit(db, now, by, "set-budget", f"child:{child}", detail)
        bump_controls(db)


def child_budgets(db: sqlite3.Connection) -> dict[str, Budget]:
    """The children's own budgets, by child id."""
    return {
        child: Budget(minutes=minutes, categories=json.loads(categories))
        for child, minutes, categories in db.execute("SELECT child, minutes, categories FROM child_budgets")
    }


def add_time(
    db: sqlite3.Connection,
    *,
    child: str,
    category: str,
    minutes: int,
    by: str,
    reason: str,
    now: float,
    day: str,
) -> None:
    """Add `minutes` of `category` ("" for the internet) to `child`'s budget on `day` (the centre's date,
    YYYY-MM-DD). Raises ValueError for minutes <= 0 or a day not of that form."""
    if minutes <= 0:
        raise ValueError(f"add at least a minute (not {minutes})")
    try:
        date.fromisoformat(day)
    except ValueError as e:
        raise ValueError(f"the day must be a date, YYYY-MM-DD (not {day!r})") from e
    with _change(db):
        db.execute(
            "INSERT INTO extra_time (day, child, category, minutes, by, reason, ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (day, child, category, minutes, by, reason, now),
        )
        detail = f"{minutes} minutes of {category or 'internet'} on {day}" + (f": {reason}" if reason else "")
        _audit(db, now, by, "add-time", f"child:{child}", detail)
        bump_controls(db)


def usage(db: sqlite3.Connection, day: str) -> dict[str, Usage]:
    """Active minutes on `day`, by child id: of the internet and per category."""
    internet: dict[str, int] = {}
    categories: dict[str, dict[str, int]] = defaultdict(dict)
    for child, category, n in db.execute(
        "SELECT child, category, count(*) FROM activity WHERE day = ? GROUP BY child, category", (day,)
    ):
        if category:
            categories[child][category] = n
        else:
            internet[child] = n
    return {
        child: Usage(internet=internet.get(child, 0), categories=categories.get(child, {}))
        for child in internet.keys() | categories.keys()
    }


def extra(db: sqlite3.Connection, day: str) -> dict[str, dict[str, int]]:
    """Staff's extra minutes on `day`, by child id, then category ("" for the internet)."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for child, category, minutes in db.execute(
        "SELECT child, category, sum(minutes) FROM extra_time WHERE day = ? GROUP BY child, category", (day,)
    ):
        out[child][category] = int(minutes)
    return dict(out)


def record_activity(db: sqlite3.Connection, rows: Iterable[tuple[str, str, str, int]]) -> int:
    """Record active minutes (day, child id, category or "", minute = int(ts // 60)), in the caller's
    transaction if one is open; a minute already recorded (by this or another writer) is left as it is.
    Bumps `controls` when any row is new; the number of new rows."""
    with _change(db):
        new = db.executemany(
            "INSERT OR IGNORE INTO activity (day, child, category, minute) VALUES (?, ?, ?, ?)", rows
        ).rowcount
        if new > 0:
            bump_controls(db)
    return max(new, 0)


# --- as values ----------------------------------------------------------------------------------------------


def as_controls(
    pauses: Iterable[PauseRecord],
    grants: Iterable[GrantRecord],
    lefts: Mapping[str, Left],
    counted: Mapping[str, frozenset[str]],
    zone: tzinfo,
) -> Controls:
    """The records as profiles.controls values, their times aware datetimes in the centre's `zone`;
    `lefts` and `counted` by subject (`child:<id>`)."""

    def at(ts: float) -> datetime:
        return datetime.fromtimestamp(ts, zone)

    return Controls(
        pauses=tuple(
            Pause(
                id=p.id,
                scope=p.scope,
                target=p.target,
                since=at(p.since),
                until=None if p.until is None else at(p.until),
                by=p.by,
                reason=p.reason,
            )
            for p in pauses
        ),
        grants=tuple(
            Grant(
                id=g.id,
                child=g.child,
                device=g.device,
                host=g.host,
                category=g.category,
                since=at(g.since),
                until=at(g.until if g.ended is None else min(g.until, g.ended)),
                by=g.by,
                reason=g.reason,
            )
            for g in grants
        ),
        left=dict(lefts),
        counted=dict(counted),
    )
