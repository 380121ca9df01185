"""Alerts as staff read and acknowledge them, over a real store: the rows stand for what the alerter
raises and queues (schema version 8)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from appliance.store import alerts, audit, staff
from appliance.store.schema import connect
from appliance.store.secrets import new_token, token_digest

T = 1_800_000_000.0


@pytest.fixture
def db(tmp_path: Path):
    connection = connect(tmp_path / "store.sqlite")
    staff.add_user(connection, "sam", "Sam Staff", staff.Role.STAFF, "correct horse battery", T)
    yield connection
    connection.close()


def sam(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT id FROM staff WHERE username = 'sam'").fetchone()[0])


def raise_alert(
    db: sqlite3.Connection,
    *,
    severity: str = "critical",
    rule: str = "self-harm",
    kind: str = "watch-list",
    category: str = "self-harm",
    subject: str = "child:c1",
    ts: float = T,
    count: int = 1,
    incident: int | None = None,
) -> int:
    """An alert as the alerter writes it, with its first event."""
    cur = db.execute(
        "INSERT INTO alerts (rule, severity, kind, category, subject, profile, throttle, raised, last_ts,"
        " count, incident) VALUES (?, ?, ?, ?, ?, '10-12', ?, ?, ?, ?, ?)",
        (rule, severity, kind, category, subject, f"{rule}|{subject}", ts, ts, count, incident),
    )
    alert = int(cur.lastrowid or 0)
    db.execute("INSERT INTO alert_events (alert, event, ts) VALUES (?, ?, ?)", (alert, f"web:{alert}", ts))
    return alert


def queue(
    db: sqlite3.Connection,
    alert: int | None,
    *,
    kind: str = "alert",
    step: int = 0,
    contact: str = "duty",
    channel: str = "ntfy",
    state: str = "pending",
    attempts: int = 0,
    error: str = "",
    at: float = T,
) -> int:
    """A delivery as the deliverer queues and updates it (made, due and, when sent, sent `at`)."""
    cur = db.execute(
        "INSERT INTO alert_deliveries (alert, kind, step, contact, channel, due, state, attempts, error,"
        " sent, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            alert,
            kind,
            step,
            contact,
            channel,
            at,
            state,
            attempts,
            error,
            at if state == "sent" else None,
            at,
        ),
    )
    return int(cur.lastrowid or 0)


def incident(db: sqlite3.Connection) -> int:
    cur = db.execute(
        "INSERT INTO incidents (title, status, severity, area, category, profile, subject, opened,"
        " opened_by, updated) VALUES ('Self-harm search', 'new', 'critical', 'content', 'self-harm',"
        " '10-12', 'child:c1', ?, NULL, ?)",
        (T, T),
    )
    return int(cur.lastrowid or 0)


def states(db: sqlite3.Connection, alert: int) -> dict[str, str]:
    rows = db.execute(
        "SELECT kind || ':' || step || ':' || contact, state FROM alert_deliveries WHERE alert = ?", (alert,)
    )
    return dict(rows.fetchall())


def test_open_alerts_are_the_unacknowledged_ones_newest_first_with_the_childs_name(db):
    db.execute(
        "INSERT INTO children (id, display_name, profile, pin, created)"
        " VALUES ('c1', 'Amira', '10-12', 'x', ?)",
        (T,),
    )
    older = raise_alert(db, ts=T, severity="high", rule="strangers", kind="category", category="dating")
    newer = raise_alert(db, ts=T + 60, subject="device:hall-pc", count=4)
    done = raise_alert(db, ts=T + 120)
    db.execute("UPDATE alerts SET acknowledged = ? WHERE id = ?", (T + 130, done))
    found = alerts.open_alerts(db)
    assert [a.id for a in found] == [newer, older]
    assert (found[0].count, found[0].child_name, found[1].child_name) == (4, "", "Amira")
    assert all(a.open for a in found)
    assert [a.id for a in alerts.open_alerts(db, limit=1)] == [newer]


def test_the_banners_query_walks_the_index_of_open_alerts(db):
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT a.id FROM alerts a WHERE a.acknowledged IS NULL ORDER BY a.raised DESC"
    ).fetchall()
    assert any("alerts_open" in str(step) for step in plan), plan


def test_the_listing_shows_every_open_alert_then_recent_ones_with_their_deliveries(db):
    first = raise_alert(db, ts=T)
    queue(db, first, state="sent", attempts=1)
    queue(db, first, channel="email", state="failed", attempts=5, error="connection refused")
    acked = raise_alert(db, ts=T + 10)
    db.execute("UPDATE alerts SET acknowledged = ? WHERE id = ?", (T + 20, acked))
    late = raise_alert(db, ts=T + 30)
    listed = alerts.listing(db, limit=2)
    assert [a.id for a in listed] == [late, first]  # open ones are never cut off by the limit
    assert [(d.channel, d.state, d.error) for d in listed[1].deliveries] == [
        ("ntfy", "sent", ""),
        ("email", "failed", "connection refused"),
    ]
    assert [a.id for a in alerts.listing(db, limit=10)] == [late, first, acked]


def test_acknowledging_marks_the_alert_once_and_stops_the_ladder(db):
    alert = raise_alert(db)
    queue(db, alert, state="sent", attempts=1)  # already told: stays sent
    queue(db, alert, kind="escalation", step=1, contact="lead")
    queue(db, alert, kind="escalation", step=2, contact="out-of-hours")
    queue(db, None, kind="digest", contact="lead")  # not the alert's
    assert alerts.acknowledge(db, alert, staff=sam(db), via="dashboard", now=T + 5)
    assert states(db, alert) == {
        "alert:0:duty": "sent",
        "escalation:1:lead": "cancelled",
        "escalation:2:out-of-hours": "cancelled",
    }
    assert db.execute("SELECT state FROM alert_deliveries WHERE alert IS NULL").fetchone() == ("pending",)
    found = alerts.alert(db, alert)
    assert found is not None and not found.open
    assert (found.acknowledged, found.acknowledged_by, found.ack_via) == (T + 5, "Sam Staff", "dashboard")
    # A second acknowledgement (another member of staff, a link) changes nothing.
    assert not alerts.acknowledge(db, alert, staff=None, via="link:duty", now=T + 9)
    again = alerts.alert(db, alert)
    assert again is not None and (again.acknowledged, again.ack_via) == (T + 5, "dashboard")
    entries = [e for e in audit.entries(db) if e.action == "acknowledge-alert"]
    assert len(entries) == 1
    assert (entries[0].username, entries[0].subject) == ("sam", "child:c1")
    assert f"alert:{alert}" in entries[0].detail and "2 pending message(s) cancelled" in entries[0].detail


def test_acknowledging_an_unknown_alert_is_refused_quietly(db):
    assert not alerts.acknowledge(db, 99, staff=sam(db), via="dashboard", now=T)
    assert audit.entries(db) == []


def test_an_acknowledgement_is_a_note_on_the_alerts_incident(db):
    number = incident(db)
    alert = raise_alert(db, incident=number)
    assert alerts.acknowledge(db, alert, staff=sam(db), via="dashboard", now=T + 5)
    link_alert = raise_alert(db, incident=number, ts=T + 60)
    assert alerts.acknowledge(db, link_alert, staff=None, via="link:duty", now=T + 70)
    notes = db.execute(
        "SELECT author, kind, text FROM incident_notes WHERE incident = ? ORDER BY id", (number,)
    )
    (by_staff, by_link) = notes.fetchall()
    assert by_staff == (
        sam(db),
        "alert",
        f"alert {alert} (critical, self-harm) acknowledged by Sam Staff (dashboard)",
    )
    assert by_link[0] is None and by_link[1] == "alert" and "the link sent to duty (link:duty)" in by_link[2]
    assert db.execute("SELECT updated FROM incidents WHERE id = ?", (number,)).fetchone() == (T + 70,)
    link_entry = next(e for e in audit.entries(db) if e.action == "acknowledge-alert")
    assert link_entry.username == "link:duty"


def make_link(db: sqlite3.Connection, alert: int, *, expires: float = T + 3600, contact: str = "duty") -> str:
    token = new_token()
    db.execute(
        "INSERT INTO alert_links (token_hash, alert, contact, expires) VALUES (?, ?, ?, ?)",
        (token_digest(token), alert, contact, expires),
    )
    return token


def test_a_link_is_used_once_and_never_after_it_expires(db):
    alert = raise_alert(db)
    token = make_link(db, alert)
    assert alerts.link(db, token, T) == alerts.LinkState("valid", alert, "duty")
    assert alerts.link(db, token, T) == alerts.LinkState("valid", alert, "duty")  # looking spends nothing
    assert alerts.use_link(db, token, T + 1) == alert
    assert alerts.use_link(db, token, T + 2) is None
    assert alerts.link(db, token, T + 2).state == "used"
    late = make_link(db, alert, expires=T + 10)
    assert alerts.link(db, late, T + 10).state == "expired"
    assert alerts.use_link(db, late, T + 10) is None
    assert alerts.use_link(db, "not-a-token", T) is None
    assert alerts.link(db, "not-a-token", T) == alerts.LinkState("unknown")
    # The store keeps only the token's digest: a copy of the store cannot make a link.
    assert db.execute("SELECT count(*) FROM alert_links WHERE token_hash = ?", (token,)).fetchone() == (0,)


def test_a_channel_is_failing_once_a_message_failed_three_times_until_one_goes_through(db):
    alert = raise_alert(db)
    queue(db, alert, channel="ntfy", state="sent", attempts=1)
    queue(db, alert, kind="escalation", step=1, channel="email", contact="lead", attempts=2, error="SMTP: 1")
    assert alerts.failing_channels(db, T) == []  # two failures: a hiccup, retried with backoff
    db.execute("UPDATE alert_deliveries SET attempts = 3, error = 'SMTP: connection refused' WHERE step = 1")
    queue(
        db,
        alert,
        kind="escalation",
        step=2,
        channel="sms",
        contact="out-of-hours",
        state="failed",
        attempts=8,
        error="HTTP 500",
    )
    queue(
        db, alert, kind="escalation", step=3, channel="matrix", contact="out-of-hours", state="pending"
    )  # not tried yet
    failing = alerts.failing_channels(db, T)
    assert [(f.contact, f.channel, f.error, f.attempts, f.retrying) for f in failing] == [
        ("lead", "email", "SMTP: connection refused", 3, True),
        ("out-of-hours", "sms", "HTTP 500", 8, False),
    ]
    queue(db, None, kind="channel-failure", channel="email", contact="lead", state="sent", at=T + 1)
    assert [(f.contact, f.channel) for f in alerts.failing_channels(db, T + 1)] == [("out-of-hours", "sms")]
    # A message given up more than a week ago is forgotten.
    assert alerts.failing_channels(db, T + 8 * 24 * 3600) == []


def test_an_alerts_events_are_listed_oldest_first(db):
    alert = raise_alert(db)
    db.execute("INSERT INTO alert_events (alert, event, ts) VALUES (?, 'dns:7', ?)", (alert, T - 5))
    assert alerts.events_of(db, alert) == [
        alerts.AlertEvent("dns:7", T - 5),
        alerts.AlertEvent(f"web:{alert}", T),
    ]
