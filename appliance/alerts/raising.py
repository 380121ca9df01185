"""Raising alerts: the notable events past the alerter's cursor, judged by alerts.yaml's rules
(docs/alerts.md, "What raises an alert", "Throttling and repeats", "Trying to get round the filter").

Each `Raiser.step` is one write transaction with the cursor's move: the alerts it raises or adds to,
their events, the conduct flags, the incidents critical alerts open and the audit log are written with
the cursor or not at all, so a crash, a power cut or a changed rule never raises an event's alert twice
(and never loses one: the next step reads the same rows again). Rows are read in bounded batches.

Besides the event log's rows, two signals are bypass events:
- the portal's sign-ins: one address signing a child in from MAC_COUNT or more different hardware
  addresses within MAC_WINDOW_S (a device changing its MAC to shed who it is) is a bypass event of that
  child, `session:<id>` (the sign-in that made the count);
- in router mode, the router's refusals of DNS over TLS and DNS over HTTPS (`refusals`, written by
  `appliance router refusals` on its timer): each reading's new refusals of one address are one bypass
  event, `refusal:<id>`, of whoever the DNS filter last saw at that address (else a guest device).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from appliance.store import audit
from appliance.store.feed import FeedEvent, notable_after, notable_of
from appliance.store.incidents import attach_within, open_within
from appliance.store.schema import transaction
from profiles.alert_rules import (
    EventFacts,
    alert_category,
    alert_kind,
    facts_of,
    matches,
    matching,
    repeated,
    throttle_key,
)
from profiles.alerts import AlertKind, AlertPolicy, AlertRule
from profiles.verdict import Action, Step

BATCH = 500  # notable rows read from each table per step (memory stays bounded in a flood)
SCAN = 50_000  # rows of each table looked through per step (time stays bounded behind a backlog)
MAC_COUNT = 3  # different hardware addresses signing in from one address...
MAC_WINDOW_S = 3600.0  # ...within this long: a device changing its MAC (a bypass event)
_TABLES = ("events", "requests")


@dataclass(frozen=True)
class _Seen:
    """One notable event read: its record (as the feed and incidents keep it) and its facts; `also`: the
    times of the attempts it stands for beside its own (a MAC change: the other sign-ins, as of now)."""

    event: FeedEvent
    facts: EventFacts
    also: tuple[float, ...] = ()


class Raiser:
    """Reads the store's notable rows after `alert_cursor` and raises alerts by the policy given to each
    `step`. `area_of`: category -> three-Cs area, for the incidents it opens. One per alerter process;
    `db` is its own connection (autocommit: `step` opens the transaction)."""

    def __init__(self, db: sqlite3.Connection, *, area_of: Mapping[str, str]) -> None:
        self.db = db
        self.area_of = area_of

    def step(self, policy: AlertPolicy, now: float) -> list[int]:
        """Judge every event stored since the last step (up to a batch of each table) by `policy`; the
        ids of the alerts raised or added to, in order."""
        touched: dict[int, None] = {}
        if not self._behind():
            return []  # nothing new: no write lock taken, nothing written (four steps a second)
        with transaction(self.db) as db:
            cursor = dict(db.execute("SELECT tbl, last FROM alert_cursor"))
            before = dict(cursor)
            seen: list[_Seen] = []
            for table in _TABLES:
                (head,) = db.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()
                last = min(int(cursor.get(table, head)), head)  # retention may empty a table
                up_to = min(head, last + SCAN)
                rows = notable_after(db, table, last, up_to, BATCH)
                seen += [self._seen(e) for e in rows]
                cursor[table] = int(rows[-1].id.partition(":")[2]) if len(rows) == BATCH else up_to
            seen += self._mac_changes(db, cursor)
            seen += self._refusals(db, cursor)
            for one in sorted(seen, key=lambda s: (s.event.ts, s.event.id)):
                if AlertKind.BYPASS in one.facts.kinds:
                    _conduct(db, one.facts)
                alert = self._raise(db, policy, one, now)
                if alert is not None:
                    touched[alert] = None
            db.executemany(
                "INSERT INTO alert_cursor (tbl, last) VALUES (?, ?)"
                " ON CONFLICT (tbl) DO UPDATE SET last = excluded.last",
                [(t, last) for t, last in cursor.items() if before.get(t) != last],
            )
        return list(touched)

    def _behind(self) -> bool:
        """Whether any table has rows past the cursor (or lost its top to retention): a read only."""
        cursor = dict(self.db.execute("SELECT tbl, last FROM alert_cursor"))
        heads = {
            t: self.db.execute(f"SELECT coalesce(max(rowid), 0) FROM {t}").fetchone()[0] for t in _TABLES
        }
        (heads["sessions"],) = self.db.execute("SELECT coalesce(max(id), 0) FROM sessions").fetchone()
        (heads["refusals"],) = self.db.execute("SELECT coalesce(max(id), 0) FROM refusals").fetchone()
        return any(cursor.get(t) != head for t, head in heads.items())

    @staticmethod
    def _seen(event: FeedEvent, also: tuple[float, ...] = ()) -> _Seen:
        # Guests share one subject in the log; an alert is about one guest device, by its address.
        subject = f"guest:{event.client}" if event.subject == "guest" else event.subject
        facts = facts_of(
            event.reasons, severity=event.severity, subject=subject, profile=event.profile, ts=event.ts
        )
        return _Seen(event, facts, also)

    # ---- one event ----

    def _raise(self, db: sqlite3.Connection, policy: AlertPolicy, one: _Seen, now: float) -> int | None:
        """The alert `one` raised or was added to (the first rule of those it matches that fires)."""
        facts = one.facts
        for rule in matching(policy.rules, facts):
            key = throttle_key(rule, facts.subject)
            found = db.execute(
                "SELECT id, incident FROM alerts WHERE throttle = ? AND acknowledged IS NULL AND last_ts >= ?"
                " ORDER BY last_ts DESC LIMIT 1",
                (key, facts.ts - policy.throttle_s),
            ).fetchone()
            if found is not None:
                alert, incident = found
                added = db.execute(
                    "INSERT OR IGNORE INTO alert_events (alert, event, ts) VALUES (?, ?, ?)",
                    (alert, one.event.id, one.event.ts),
                ).rowcount
                if added:
                    db.execute(
                        "UPDATE alerts SET count = count + 1, last_ts = max(last_ts, ?) WHERE id = ?",
                        (facts.ts, alert),
                    )
                    if incident is not None:
                        attach_within(db, incident, [one.event])
                return int(alert)
            events = [one]
            if rule.repeats is not None:
                events = self._repeats(db, rule, one)
                if not repeated(rule, [s.facts.ts for s in events] + list(one.also), facts.ts):
                    continue
            return self._new(db, rule, one, events, now)
        return None

    def _repeats(self, db: sqlite3.Connection, rule: AlertRule, one: _Seen) -> list[_Seen]:
        """The subject's events the rule names within its window up to `one` (`one` among them)."""
        assert rule.repeats is not None
        facts = one.facts
        subject, client = facts.subject, ""
        if subject.startswith("guest:"):
            subject, client = "guest", subject.partition(":")[2]
        since = facts.ts - rule.repeats.within_s
        earlier = notable_of(db, subject, since, facts.ts, client=client)
        if AlertKind.BYPASS in facts.kinds:  # the router's refusals are attempts too (not in the log)
            refused = db.execute(
                "SELECT id, ts, client, count FROM refusals WHERE ts >= ? AND ts <= ?", (since, facts.ts)
            ).fetchall()
            earlier += [e for e in (_refusal(db, *row) for row in refused) if e.subject == subject]
            if client:
                earlier = [e for e in earlier if e.client == client]
        found = [s for s in map(self._seen, earlier) if s.event.id != one.event.id and matches(rule, s.facts)]
        return [*found, one]

    def _new(
        self, db: sqlite3.Connection, rule: AlertRule, one: _Seen, events: list[_Seen], now: float
    ) -> int:
        facts = one.facts
        first = min(s.facts.ts for s in events)
        cur = db.execute(
            "INSERT INTO alerts (rule, severity, kind, category, subject, profile, throttle, raised, last_ts,"
            " count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rule.name,
                str(rule.severity),
                str(alert_kind(rule, facts)),
                alert_category(rule, facts),
                facts.subject,
                facts.profile,
                throttle_key(rule, facts.subject),
                first,
                facts.ts,
                len(events),
            ),
        )
        alert = cur.lastrowid
        assert alert is not None
        db.executemany(
            "INSERT OR IGNORE INTO alert_events (alert, event, ts) VALUES (?, ?, ?)",
            [(alert, s.event.id, s.event.ts) for s in events],
        )
        what = f"alert {alert}: {rule.name} ({rule.severity}), {len(events)} event(s) from {one.event.id}"
        audit.record(db, now, None, "appliance", "raise-alert", facts.subject, what)
        if rule.open_incident:
            incident = open_within(
                db,
                f"{rule.severity} alert: {rule.name}".capitalize(),
                [s.event for s in events],
                None,
                now,
                self.area_of,
                severity=str(rule.severity),
                note=("alert", f"opened by alert {alert} ({rule.name}, {rule.severity})"),
            )
            db.execute("UPDATE alerts SET incident = ? WHERE id = ?", (incident, alert))
            # As the dashboard writes an incident opened by staff: whom it is about, then its events.
            ids = ", ".join(s.event.id for s in events)
            audit.record(db, now, None, "appliance", "open-incident", f"incident:{incident}", ids)
        return alert

    # ---- the portal's sign-ins ----

    def _mac_changes(self, db: sqlite3.Connection, cursor: dict[str, int]) -> list[_Seen]:
        """The sign-ins since the cursor that made one address's MACs MAC_COUNT or more within the
        window: each a bypass event of its child (moves the `sessions` cursor)."""
        (head,) = db.execute("SELECT coalesce(max(id), 0) FROM sessions").fetchone()
        last = min(int(cursor.get("sessions", head)), head)
        rows = db.execute(
            "SELECT s.id, s.child, s.device, s.client, s.started, c.profile FROM sessions s"
            " JOIN children c ON c.id = s.child WHERE s.id > ? AND s.staff IS NULL ORDER BY s.id LIMIT ?",
            (last, BATCH),
        ).fetchall()
        cursor["sessions"] = rows[-1][0] if len(rows) == BATCH else head
        out = []
        for number, child, device, client, started, profile in rows:
            if device == client:
                continue  # no MAC was known: nothing to count
            before = db.execute(
                "SELECT device, started FROM sessions WHERE client = ? AND staff IS NULL AND id < ?"
                " AND started >= ? AND started <= ? AND device != client",
                (client, number, started - MAC_WINDOW_S, started),
            ).fetchall()
            macs = {d: t for d, t in before if d != device}
            if device in {d for d, _ in before} or len(macs) + 1 < MAC_COUNT:
                continue
            event = _bypass_event(
                id=f"session:{number}",
                ts=started,
                client=client,
                subject=f"child:{child}",
                via="session",
                channel="portal",
                profile=profile,
                detail=device,
                effect=Action.FLAG,
                why=f"signed in at the portal from {len(macs) + 1} different hardware addresses (MACs)"
                f" on {client} within {MAC_WINDOW_S / 3600:g} hour",
            )
            # It stands for the sign-ins that made it: repeats enough by itself for a rule of repeats.
            out.append(self._seen(event, (started,) * len(macs)))
        return out

    # ---- the router's refusals ----

    def _refusals(self, db: sqlite3.Connection, cursor: dict[str, int]) -> list[_Seen]:
        """The router's refusals since the cursor, each a bypass event (moves the `refusals` cursor)."""
        (head,) = db.execute("SELECT coalesce(max(id), 0) FROM refusals").fetchone()
        last = min(int(cursor.get("refusals", head)), head)
        rows = db.execute(
            "SELECT id, ts, client, count FROM refusals WHERE id > ? ORDER BY id LIMIT ?", (last, BATCH)
        ).fetchall()
        cursor["refusals"] = rows[-1][0] if len(rows) == BATCH else head
        return [self._seen(_refusal(db, *row)) for row in rows]


def _refusal(db: sqlite3.Connection, number: int, ts: float, client: str, packets: int) -> FeedEvent:
    """A `refusals` row as a bypass event of whoever the DNS filter or the proxy last saw at the address
    (the router knows addresses only), else of the guest device there."""
    asker = db.execute(
        "SELECT subject, via FROM askers WHERE client = ? ORDER BY id DESC LIMIT 1", (client,)
    ).fetchone()
    subject, via = asker if asker is not None else ("guest", "guest")
    return _bypass_event(
        id=f"refusal:{number}",
        ts=ts,
        client=client,
        subject=subject,
        via=via,
        channel="router",
        profile="",
        detail=f"{packets} refused",
        effect=Action.BLOCK,
        why=f"the router refused {packets} packet(s) of DNS over TLS or DNS over HTTPS from {client}:"
        " a private DNS or VPN setting trying to get past the filter",
    )


def _bypass_event(
    *,
    id: str,
    ts: float,
    client: str,
    subject: str,
    via: str,
    channel: str,
    profile: str,
    detail: str,
    effect: Action,
    why: str,
) -> FeedEvent:
    """An attempt to get round the filter seen outside the event log (a sign-in, a router's refusal), as
    the feed would read it: flagged, `filter-bypass`, medium, with `why` as its one reason."""
    reason = {
        "step": str(Step.BYPASS_ATTEMPT),
        "effect": str(effect),
        "detail": why,
        "category": "filter-bypass",
        "severity": "medium",
        "source": "",
        "line": 0,
        "rule": "",
    }
    return FeedEvent(
        client=client,
        subject=subject,
        via=via,
        channel=channel,
        profile=profile,
        host="",
        detail=detail,
        action=str(effect),
        severity="medium",
        category="filter-bypass",
        flagged=True,
        id=id,
        ts=ts,
        reasons=[reason],
    )


def _conduct(db: sqlite3.Connection, facts: EventFacts) -> None:
    """Count one attempt to get round the filter on the subject's conduct flag."""
    db.execute(
        "INSERT INTO conduct_flags (subject, kind, first, last, count) VALUES (?, 'bypass', ?, ?, 1)"
        " ON CONFLICT (subject, kind) DO UPDATE SET count = count + 1, first = min(first, excluded.first),"
        " last = max(last, excluded.last)",
        (facts.subject, facts.ts, facts.ts),
    )


def raised_events(db: sqlite3.Connection, alert: int) -> Sequence[str]:
    """The events (dns:N, web:N, session:N, refusal:N) an alert stands for, oldest first."""
    return [
        e
        for (e,) in db.execute("SELECT event FROM alert_events WHERE alert = ? ORDER BY ts, event", (alert,))
    ]
