"""Alerts as staff read and acknowledge them: the banner's open alerts, the alerts page's listing, one
alert with its events and deliveries, acknowledging (from the dashboard or a single-use link), and the
channels whose last delivery failed.

The alerter (appliance/alerts) raises alerts and queues their deliveries; this module only reads them,
and acknowledges: the alert is marked once (who, when, how), its pending ladder messages are cancelled,
the audit log and the alert's incident say so, all in one transaction. See schema.py, version 8.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace

from appliance.store import audit
from appliance.store.schema import transaction
from appliance.store.secrets import token_digest
from profiles.escalation import FAILING_AFTER

LADDER_KINDS = ("alert", "escalation")  # the deliveries acknowledging stops
FORGET_FAILED_S = 7 * 24 * 3600.0  # a channel whose messages were given up longer ago is not failing now
DASHBOARD = "dashboard"  # ack_via for an acknowledgement on the dashboard (a link's is link:<contact>)


@dataclass(frozen=True)
class Delivery:
    """One message of the outbox to one contact on one channel (the channel by name, never its URL)."""

    id: int
    alert: int | None
    kind: str  # alert, escalation, digest, channel-failure, test
    step: int
    contact: str
    channel: str
    state: str  # pending, sent, failed, cancelled
    attempts: int
    error: str
    due: float
    sent: float | None
    created: float


@dataclass(frozen=True)
class AlertRow:
    """An alert as staff see it. `child_name` is the child's display name when the subject is a child
    still listed ('' otherwise); `acknowledged_by` the member of staff's display name ('' when none:
    open, or acknowledged from a link); `deliveries` is filled by `listing` and `alert` only."""

    id: int
    rule: str
    severity: str
    kind: str
    category: str
    subject: str
    profile: str
    raised: float
    last_ts: float
    count: int
    incident: int | None
    acknowledged: float | None
    acknowledged_by: str
    ack_via: str
    child_name: str
    deliveries: tuple[Delivery, ...] = ()

    @property
    def open(self) -> bool:
        return self.acknowledged is None


@dataclass(frozen=True)
class AlertEvent:
    """An event an alert stands for, by the feed's id (dns:N or web:N) and its time."""

    event: str
    ts: float


@dataclass(frozen=True)
class FailingChannel:
    """A contact's channel failing: its messages failed `attempts` times in a row since `since` (being
    retried with backoff, or given up)."""

    contact: str
    channel: str
    error: str
    attempts: int
    since: float  # when the first failing message was queued
    retrying: bool  # still pending (retried with backoff) rather than given up


@dataclass(frozen=True)
class LinkState:
    """What an acknowledge link is: `state` is valid, used, expired or unknown; `alert` and `contact`
    are set for a link the store knows."""

    state: str
    alert: int | None = None
    contact: str = ""
    used: float | None = None


_SELECT = (
    "SELECT a.id, a.rule, a.severity, a.kind, a.category, a.subject, a.profile, a.raised, a.last_ts,"
    " a.count, a.incident, a.acknowledged, coalesce(s.display_name, ''), a.ack_via,"
    " coalesce(c.display_name, '')"
    " FROM alerts a LEFT JOIN staff s ON s.id = a.acknowledged_by"
    " LEFT JOIN children c ON a.subject LIKE 'child:%' AND c.id = substr(a.subject, 7)"
)
_DELIVERY = (
    "SELECT id, alert, kind, step, contact, channel, state, attempts, error, due, sent, created"
    " FROM alert_deliveries"
)


def open_alerts(db: sqlite3.Connection, *, limit: int = 20) -> list[AlertRow]:
    """The open (unacknowledged) alerts, newest first: one query on the partial index of open alerts,
    cheap enough for the banner every open staff page asks for every second."""
    rows = db.execute(
        f"{_SELECT} WHERE a.acknowledged IS NULL ORDER BY a.raised DESC, a.id DESC LIMIT ?", (limit,)
    )
    return [AlertRow(*r) for r in rows]


def count_open(db: sqlite3.Connection) -> int:
    (n,) = db.execute("SELECT count(*) FROM alerts WHERE acknowledged IS NULL").fetchone()
    return int(n)


def listing(db: sqlite3.Connection, *, limit: int = 100) -> list[AlertRow]:
    """The alerts page: every open alert (newest first), then the most recently raised acknowledged
    ones, up to `limit` in all (open alerts are never cut off); each with its deliveries."""
    open_ = open_alerts(db, limit=max(limit, count_open(db)))
    recent = db.execute(
        f"{_SELECT} WHERE a.acknowledged IS NOT NULL ORDER BY a.raised DESC, a.id DESC LIMIT ?",
        (max(0, limit - len(open_)),),
    )
    found = open_ + [AlertRow(*r) for r in recent]
    return _with_deliveries(db, found)


def alert(db: sqlite3.Connection, id: int) -> AlertRow | None:
    """One alert with its deliveries; None if there is no such alert."""
    row = db.execute(f"{_SELECT} WHERE a.id = ?", (id,)).fetchone()
    return _with_deliveries(db, [AlertRow(*row)])[0] if row else None


def _with_deliveries(db: sqlite3.Connection, found: Sequence[AlertRow]) -> list[AlertRow]:
    if not found:
        return []
    ids = [a.id for a in found]
    marks = ",".join("?" * len(ids))
    by_alert: dict[int, list[Delivery]] = {}
    for r in db.execute(f"{_DELIVERY} WHERE alert IN ({marks}) ORDER BY step, created, id", ids):
        d = Delivery(*r)
        by_alert.setdefault(int(d.alert or 0), []).append(d)
    return [replace(a, deliveries=tuple(by_alert.get(a.id, ()))) for a in found]


def events_of(db: sqlite3.Connection, id: int) -> list[AlertEvent]:
    """The events alert `id` stands for, oldest first."""
    rows = db.execute("SELECT event, ts FROM alert_events WHERE alert = ? ORDER BY ts, event", (id,))
    return [AlertEvent(*r) for r in rows]


def acknowledge(db: sqlite3.Connection, alert: int, *, staff: int | None, via: str, now: float) -> bool:
    """Acknowledge `alert` (by the member of staff `staff`, or None from a link; `via` is `dashboard`
    or `link:<contact>`): once only. Its pending ladder messages (alert, escalation) are cancelled, so
    nobody further is told; the audit log records it, and so does the alert's incident (a note, its
    author the member of staff, or the appliance for a link). False when it was already acknowledged
    (or does not exist): nothing is changed then."""
    with transaction(db):
        marked = db.execute(
            "UPDATE alerts SET acknowledged = ?, acknowledged_by = ?, ack_via = ?"
            " WHERE id = ? AND acknowledged IS NULL",
            (now, staff, via, alert),
        ).rowcount
        if not marked:
            return False
        cancelled = db.execute(
            "UPDATE alert_deliveries SET state = 'cancelled'"
            f" WHERE alert = ? AND state = 'pending' AND kind IN ({','.join('?' * len(LADDER_KINDS))})",
            (alert, *LADDER_KINDS),
        ).rowcount
        subject, incident, rule, severity = db.execute(
            "SELECT subject, incident, rule, severity FROM alerts WHERE id = ?", (alert,)
        ).fetchone()
        found = db.execute("SELECT username, display_name FROM staff WHERE id = ?", (staff,)).fetchone()
        username, name = found if found else (via, via.replace("link:", "the link sent to "))
        detail = f"alert:{alert} {severity} {rule} via {via}" + (
            f", {cancelled} pending message(s) cancelled" if cancelled else ""
        )
        audit.record(db, now, staff, username, "acknowledge-alert", subject, detail)
        if incident is not None:
            db.execute(
                "INSERT INTO incident_notes (incident, ts, author, kind, text) VALUES (?, ?, ?, 'alert', ?)",
                (incident, now, staff, f"alert {alert} ({severity}, {rule}) acknowledged by {name} ({via})"),
            )
            db.execute("UPDATE incidents SET updated = ? WHERE id = ?", (now, incident))
    return True


def link(db: sqlite3.Connection, token: str, now: float) -> LinkState:
    """What the acknowledge link `token` is, without using it (a mail scanner opening the link must
    not acknowledge)."""
    row = db.execute(
        "SELECT alert, contact, expires, used FROM alert_links WHERE token_hash = ?", (token_digest(token),)
    ).fetchone()
    if row is None:
        return LinkState("unknown")
    alert_id, contact, expires, used = row
    state = "used" if used is not None else ("expired" if expires <= now else "valid")
    return LinkState(state, int(alert_id), str(contact), used)


def use_link(db: sqlite3.Connection, token: str, now: float) -> int | None:
    """Spend the acknowledge link `token`: its alert's id, once; None when the link is unknown, used or
    expired. Two uses at the same moment: one wins (a single conditional update)."""
    with transaction(db):
        digest = token_digest(token)
        spent = db.execute(
            "UPDATE alert_links SET used = ? WHERE token_hash = ? AND used IS NULL AND expires > ?",
            (now, digest, now),
        ).rowcount
        if not spent:
            return None
        (alert_id,) = db.execute("SELECT alert FROM alert_links WHERE token_hash = ?", (digest,)).fetchone()
    return int(alert_id)


def failing_channels(db: sqlite3.Connection, now: float) -> list[FailingChannel]:
    """The channels (of each contact) failing at `now`: a message on them failed FAILING_AFTER times or
    more and none has gone through them since it was queued (messages given up more than a week ago are
    forgotten). The one reading of "failing": the deliverer reports a channel through the others when it
    starts failing, and the dashboard shows the same channels."""
    rows = db.execute(
        "SELECT d.contact, d.channel, max(d.attempts), min(d.created), max(d.state = 'pending'),"
        " (SELECT e.error FROM alert_deliveries e WHERE e.contact = d.contact AND e.channel = d.channel"
        "  AND e.attempts > 0 AND e.state != 'sent' ORDER BY e.due DESC LIMIT 1)"
        " FROM alert_deliveries d"
        " WHERE d.attempts >= ? AND (d.state = 'pending' OR (d.state = 'failed' AND d.created > ?))"
        " AND NOT EXISTS (SELECT 1 FROM alert_deliveries s WHERE s.contact = d.contact"
        "  AND s.channel = d.channel AND s.state = 'sent' AND s.sent >= d.created)"
        " GROUP BY d.contact, d.channel ORDER BY d.contact, d.channel",
        (FAILING_AFTER, now - FORGET_FAILED_S),
    ).fetchall()
    return [
        FailingChannel(c, ch, err or "", int(n), float(since), bool(pending))
        for c, ch, n, since, pending, err in rows
    ]
