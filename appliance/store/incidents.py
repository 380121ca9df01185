"""E-safety incidents: opened from events, worked through statuses, escalated, closed with an outcome.

An incident keeps a copy of the events it was opened from (and those added later), so the record
outlives the event log's retention; every change is a note in its history (who, when, what). An incident
is about one child (or one device, or guests): its events are all of that subject, so a record handed to
the police or a helpline never carries another child's browsing. Files from before this rule may hold
mixed incidents: the store's version 6 flagged them for the lead (`flags`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from appliance.store.feed import SEVERITIES, FeedEvent
from appliance.store.schema import StoreError, transaction


class Status(StrEnum):
    NEW = "new"
    REVIEWING = "reviewing"
    ESCALATED = "escalated"
    CLOSED = "closed"


@dataclass(frozen=True)
class Incident:
    id: int
    title: str
    status: Status
    severity: str
    area: str
    category: str
    profile: str
    subject: str
    opened: float
    opened_by: str
    assignee: str
    assignee_id: int | None
    escalated_to: str
    outcome: str
    updated: float
    closed: float | None


class MixedSubjects(StoreError):
    """Events of more than one child (or device) for one incident: `subjects` names them."""

    def __init__(self, message: str, subjects: Sequence[str]) -> None:
        super().__init__(message)
        self.subjects = tuple(subjects)


@dataclass(frozen=True)
class Flag:
    """Something the store's migration found for the e-safety lead to look at (see schema.py, v6)."""

    id: int
    kind: str  # mixed-incident or duplicate-child
    target: str  # incident:<number> or child:<id>
    detail: str
    ts: float


@dataclass(frozen=True)
class Note:
    ts: float
    author: str
    kind: str
    text: str


APPLIANCE = "the appliance"  # who opened an incident or wrote a note when no member of staff did (an alert)

_SELECT = (
    "SELECT i.id, i.title, i.status, i.severity, i.area, i.category, i.profile, i.subject, i.opened,"
    f" coalesce(o.display_name, '{APPLIANCE}'), coalesce(s.display_name, ''), i.assignee, i.escalated_to,"
    " i.outcome, i.updated, i.closed"
    " FROM incidents i LEFT JOIN staff o ON o.id = i.opened_by LEFT JOIN staff s ON s.id = i.assignee"
)


def _incident(row: Sequence[object]) -> Incident:
    values = list(row)
    values[2] = Status(str(values[2]))
    return Incident(*values)  # type: ignore[arg-type]


def open_incident(
    db: sqlite3.Connection,
    title: str,
    events: Sequence[FeedEvent],
    opened_by: int | None,
    now: float,
    area_of: Mapping[str, str],
) -> int:
    """A new incident from `events` (at least one), its severity the highest of theirs. `opened_by`
    None: the appliance opened it (a critical alert)."""
    with transaction(db):
        return open_within(db, title, events, opened_by, now, area_of)


def open_within(
    db: sqlite3.Connection,
    title: str,
    events: Sequence[FeedEvent],
    opened_by: int | None,
    now: float,
    area_of: Mapping[str, str],
    *,
    severity: str = "",
    note: tuple[str, str] | None = None,
) -> int:
    """`open_incident` in the caller's open transaction (the alerter's, with its cursor). `severity`:
    at least this (an alert's), whatever the events'; `note`: (kind, text) of the history's first line
    instead of "opened from N event(s)"."""
    if not events:
        raise StoreError("an incident is opened from at least one event")
    _one_subject(events)
    title = " ".join(title.split()) or f"{events[0].category or 'event'} on {events[0].host}"
    worst = max(events, key=lambda e: _rank(e.severity))
    category = worst.category
    level = max(worst.severity, severity, key=_rank) if severity else worst.severity
    cur = db.execute(
        "INSERT INTO incidents (title, status, severity, area, category, profile, subject, opened,"
        " opened_by, updated) VALUES (?, 'new', ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            title[:200],
            level,
            area_of.get(category, ""),
            category,
            worst.profile,
            worst.subject,
            now,
            opened_by,
            now,
        ),
    )
    incident = cur.lastrowid
    assert incident is not None
    attach_within(db, incident, events)
    kind, text = note or ("status", f"opened from {len(events)} event(s)")
    _note(db, incident, now, opened_by, kind, text)
    return incident


def attach_within(db: sqlite3.Connection, incident: int, events: Sequence[FeedEvent]) -> int:
    """Copy `events` into the incident's record (those it has already are left), in the caller's open
    transaction, without a note: the alerter adds an alert's repeats so. Returns how many were new."""
    return db.executemany(
        "INSERT OR IGNORE INTO incident_events (incident, event, ts, record) VALUES (?, ?, ?, ?)",
        [(incident, e.id, e.ts, json.dumps(e.record())) for e in events],
    ).rowcount


def _one_subject(events: Sequence[FeedEvent], subject: str = "") -> None:
    """Refuse events of more than one subject (and, given `subject`, of any other)."""
    subjects = sorted({e.subject for e in events} | ({subject} if subject else set()))
    if len(subjects) > 1:
        raise MixedSubjects(
            "an incident is about one child: these events are of " + ", ".join(subjects), subjects
        )


def add_events(
    db: sqlite3.Connection, incident: int, events: Sequence[FeedEvent], author: int, now: float
) -> int:
    """Add `events` (all of the incident's subject) to `incident`; the incident's severity rises to the
    worst of them. Returns how many were new to it."""
    found = get(db, incident)
    if found is None:
        raise StoreError(f"there is no incident {incident}")
    if not events:
        raise StoreError("choose at least one event to add")
    _one_subject(events, found.subject)
    worst = max(_rank(e.severity) for e in events)
    with transaction(db):
        added = db.executemany(
            "INSERT OR IGNORE INTO incident_events (incident, event, ts, record) VALUES (?, ?, ?, ?)",
            [(incident, e.id, e.ts, json.dumps(e.record())) for e in events],
        ).rowcount
        if worst > _rank(found.severity):
            db.execute("UPDATE incidents SET severity = ? WHERE id = ?", (SEVERITIES[worst], incident))
        if added:
            _note(db, incident, now, author, "events", f"added {added} event(s)")
    return added


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def incidents_with(db: sqlite3.Connection, event: str, ts: float) -> list[Incident]:
    """The incidents that hold the event `event` (dns:N or web:N) of time `ts`: rowids may be used again
    after retention, the time tells them apart."""
    rows = db.execute(
        f"{_SELECT} WHERE i.id IN (SELECT incident FROM incident_events WHERE event = ? AND ts = ?)"
        " ORDER BY i.opened",
        (event, ts),
    )
    return [_incident(r) for r in rows]


def flags(db: sqlite3.Connection, target: str = "") -> list[Flag]:
    """Unresolved flags, of `target` (incident:<number>, child:<id>) or all."""
    rows = db.execute(
        "SELECT id, kind, target, detail, ts FROM record_flags WHERE resolved IS NULL"
        " AND (?1 = '' OR target = ?1) ORDER BY id",
        (target,),
    )
    return [Flag(*r) for r in rows]


def resolve_flag(db: sqlite3.Connection, flag: int, author: int, now: float) -> Flag:
    """Mark the flag resolved by the lead `author`; a flag on an incident gets a note in its history."""
    found = [f for f in flags(db) if f.id == flag]
    if not found:
        raise StoreError("that flag is already resolved")
    with transaction(db):
        db.execute("UPDATE record_flags SET resolved = ?, resolved_by = ? WHERE id = ?", (now, author, flag))
        if found[0].target.startswith("incident:"):
            number = int(found[0].target.split(":", 1)[1])
            _note(db, number, now, author, "flag", f"flag resolved: {found[0].detail}")
    return found[0]


def _note(
    db: sqlite3.Connection, incident: int, now: float, author: int | None, kind: str, text: str
) -> None:
    db.execute(
        "INSERT INTO incident_notes (incident, ts, author, kind, text) VALUES (?, ?, ?, ?, ?)",
        (incident, now, author, kind, text),
    )
    db.execute("UPDATE incidents SET updated = ? WHERE id = ?", (now, incident))


def add_note(db: sqlite3.Connection, incident: int, author: int, text: str, now: float) -> None:
    text = text.strip()
    if not text:
        raise StoreError("the note is empty")
    with transaction(db):
        _note(db, incident, now, author, "note", text[:5000])


def set_status(db: sqlite3.Connection, incident: int, status: Status, author: int, now: float) -> None:
    with transaction(db):
        db.execute(
            "UPDATE incidents SET status = ?, closed = CASE WHEN ? = 'closed' THEN ? ELSE NULL END"
            " WHERE id = ?",
            (str(status), str(status), now, incident),
        )
        _note(db, incident, now, author, "status", f"status: {status}")


def assign(
    db: sqlite3.Connection, incident: int, assignee: int | None, author: int, name: str, now: float
) -> None:
    with transaction(db):
        db.execute("UPDATE incidents SET assignee = ? WHERE id = ?", (assignee, incident))
        _note(db, incident, now, author, "assign", f"assigned to {name}" if assignee else "unassigned")


def escalate(db: sqlite3.Connection, incident: int, contact: str, note: str, author: int, now: float) -> None:
    """Record that the incident went to `contact` (a name from the configuration's escalation list)."""
    if not contact.strip():
        raise StoreError("choose who the incident is escalated to")
    with transaction(db):
        db.execute(
            "UPDATE incidents SET status = 'escalated', closed = NULL,"
            " escalated_to = CASE WHEN escalated_to = '' THEN ?1 ELSE escalated_to || '; ' || ?1 END"
            " WHERE id = ?2",
            (contact.strip(), incident),
        )
        _note(
            db,
            incident,
            now,
            author,
            "escalate",
            f"escalated to {contact.strip()}" + (f": {note.strip()}" if note.strip() else ""),
        )


def set_outcome(db: sqlite3.Connection, incident: int, outcome: str, author: int, now: float) -> None:
    with transaction(db):
        db.execute("UPDATE incidents SET outcome = ? WHERE id = ?", (outcome.strip()[:5000], incident))
        _note(db, incident, now, author, "outcome", "outcome recorded")


def get(db: sqlite3.Connection, incident: int) -> Incident | None:
    row = db.execute(f"{_SELECT} WHERE i.id = ?", (incident,)).fetchone()
    return _incident(row) if row else None


def listing(db: sqlite3.Connection, *, status: str = "", limit: int = 200) -> list[Incident]:
    """Open incidents first (newest first), then closed ones; or only those of `status`."""
    if status:
        rows = db.execute(f"{_SELECT} WHERE i.status = ? ORDER BY i.opened DESC LIMIT ?", (status, limit))
    else:
        rows = db.execute(f"{_SELECT} ORDER BY i.status = 'closed', i.opened DESC LIMIT ?", (limit,))
    return [_incident(r) for r in rows]


def events_of(db: sqlite3.Connection, incident: int) -> list[dict[str, object]]:
    """The incident's events, as they were when opened or added, each with its `subject`."""
    rows = db.execute("SELECT record FROM incident_events WHERE incident = ? ORDER BY ts", (incident,))
    return [json.loads(r[0]) for r in rows]


def history(db: sqlite3.Connection, incident: int) -> list[Note]:
    rows = db.execute(
        f"SELECT n.ts, coalesce(s.display_name, '{APPLIANCE}'), n.kind, n.text FROM incident_notes n"
        " LEFT JOIN staff s ON s.id = n.author WHERE n.incident = ? ORDER BY n.ts, n.id",
        (incident,),
    )
    return [Note(*r) for r in rows]
