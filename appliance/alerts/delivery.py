"""Telling people: the ladder's messages, retries, failing channels and the digest, through the outbox.

Every message is first a row of `alert_deliveries` (the outbox, in the store): queued in a transaction,
sent through Apprise, and marked sent in its own transaction right after Apprise says it went. A row is
never lost (a `kill -9` or a power cut leaves it pending, and the next alerter sends it); the one window
for a repeat is between Apprise's "sent" and that commit: a message sent then is sent again after the
restart. E-mails carry the delivery's id in a header (`X-Appliance-Delivery`) so a receiver can tell.

Each channel is sent to by a worker thread of its own, one message at a time, with a deadline: a dead
server holds neither the alerter's loop nor the other channels.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.alerts.messages import (
    Message,
    alert_message,
    channel_failure_message,
    digest_counts,
    digest_message,
    trial_message,
)
from appliance.store import audit
from appliance.store.alerts import failing_channels
from appliance.store.schema import transaction
from filters.errors import ApplianceError
from profiles.alerts import AlertPolicy, Channel
from profiles.categories import CategoryMap, Severity
from profiles.escalation import (
    FAILING_AFTER,
    STALE_S,
    digest_due,
    digest_period,
    digest_slot,
    due_steps,
    recipient,
    retry_delay,
)

log = logging.getLogger("appliance.alerts")

Send = Callable[[Channel, Message], None]

APPLIANCE = "appliance"  # the audit log's username for what the appliance does by itself
DIGEST_SETTING = "alerts.digest"  # the `settings` key: the digest slot last queued (centre's time, ISO)
SEND_DEADLINE_S = 60.0  # a channel that has not answered by then has failed this attempt
GIVE_UP_S = 24 * 3600.0  # a message still undelivered a day after it was queued is given up
_LADDER_KINDS = ("alert", "escalation")


class DeliveryError(ApplianceError):
    """A channel did not take a message: the reason in words."""


def use_ca_directory(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Have every TLS connection this process makes (Python's ssl, and requests for Apprise's web
    channels) trust the system's CA certificates through their hashed directory, each read when a peer
    names its issuer, instead of the whole bundle parsed again for every connection: Apprise opens one
    connection per message, and reading the bundle was four fifths of a message's CPU (27 ms a message,
    4 ms after; bench/alerts.py). Verification is unchanged: the same CAs, the same checks. Settings
    already in `environ` are kept. False (nothing changed) where the directory has no hashed
    certificates (`openssl rehash`; Debian's ca-certificates keeps /etc/ssl/certs so) or the
    environment names other CAs (the machine's own choice)."""
    paths = ssl.get_default_verify_paths()
    capath = paths.openssl_capath if Path(paths.openssl_capath).is_dir() else paths.capath
    if not capath or not any(Path(capath).glob("*.0")):
        return False
    # The system's own bundle and directory, named in the environment (as some images do), are no
    # choice of the machine's; anything else is, and is kept.
    system = {os.path.realpath(p) for p in (paths.openssl_cafile, paths.openssl_capath, capath)}
    keys = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    if any(key in environ and os.path.realpath(environ[key]) not in system for key in keys):
        return False
    environ["SSL_CERT_DIR"] = capath
    environ["SSL_CERT_FILE"] = os.devnull  # no bundle: the directory alone
    environ["REQUESTS_CA_BUNDLE"] = capath  # requests takes a directory as its CA path
    environ.pop("CURL_CA_BUNDLE", None)  # requests' second choice: the bundle again
    return True


def apprise_send(channel: Channel, message: Message) -> None:
    """Send `message` through `channel`'s Apprise URL; raises DeliveryError with Apprise's reason."""
    import apprise  # imported here: the dashboard and the other commands never need it

    plugin = apprise.Apprise.instantiate(channel.url)
    if plugin is None:
        raise DeliveryError(f"the channel {channel.name!r} has an address Apprise does not know")
    headers = getattr(plugin, "headers", None)
    if message.key and isinstance(headers, dict):  # e-mail: lets a receiver drop a repeat
        headers["X-Appliance-Delivery"] = message.key
    said = _ThreadLog()
    logger = logging.getLogger("apprise")
    logger.addHandler(said)
    try:
        ok = plugin.notify(body=message.body, title=message.title, body_format="text")
    except Exception as e:  # a plugin's own failure is this channel's, not the alerter's
        raise DeliveryError(f"{type(e).__name__}: {e}") from e
    finally:
        logger.removeHandler(said)
    if not ok:
        raise DeliveryError(said.last() or "the channel did not take the message")


class _ThreadLog(logging.Handler):
    """Apprise's warnings from the calling thread only (each channel sends from its own)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())

    def last(self) -> str:
        return " ".join(line.strip() for line in self.lines[-2:])[:300]


@dataclass
class _Flight:
    """A message on its way through one channel's worker thread."""

    row: int
    thread: threading.Thread
    started: float  # monotonic
    recorded: bool = False


_ROW = "id, alert, kind, step, contact, channel, attempts, created, body"


@dataclass(frozen=True)
class _Row:
    id: int
    alert: int | None
    kind: str
    step: int
    contact: str
    channel: str
    attempts: int
    created: float
    body: str


@dataclass
class Deliverer:
    """The alerter's second job: every `step`, queue the ladder's due messages and the digest, send what
    is due, record what happened. `send` sends one message or raises (default: Apprise); `zone` is the
    centre's (for the times in messages); `categories` say the alerts' categories in words and place
    them in the three Cs; `wait_s`: how long a step waits for the sends it started before it returns (the
    rest are recorded by a later step)."""

    db: sqlite3.Connection
    _: KW_ONLY
    send: Send | None = None
    zone: tzinfo = field(default_factory=lambda: ZoneInfo("UTC"))
    categories: CategoryMap | None = None
    wait_s: float = 0.2
    send_deadline_s: float = SEND_DEADLINE_S
    _flights: dict[tuple[str, str], _Flight] = field(default_factory=dict, init=False)
    _results: queue.Queue[tuple[int, str | None]] = field(default_factory=queue.Queue, init=False)
    _unreachable: set[tuple[int, int]] = field(default_factory=set, init=False)
    _late: set[int] = field(default_factory=set, init=False)
    busy: bool = field(default=False, init=False)  # after a step: messages due and not yet sent remain

    def step(self, policy: AlertPolicy, now: float, local: datetime) -> None:
        """Queue, send and record as of `now` (the wall clock), `local` being the centre's time."""
        self.queue_ladder(policy, now, local)
        if policy.digest is not None:
            self._digest_on_timer(policy, now, local)
        self._collect(policy, now, time.monotonic())
        # Until `wait_s` is spent: a channel that has sent one message sends its next at once, so a burst
        # of alerts is not held to one message per channel per step.
        until = time.monotonic() + self.wait_s
        while True:
            self._start(policy, now)
            if not self._collect(policy, now, until):
                break
        self.busy = (
            self.db.execute(
                "SELECT 1 FROM alert_deliveries WHERE state = 'pending' AND due <= ? LIMIT 1", (now,)
            ).fetchone()
            is not None
        )

    # ---- queuing ----

    def queue_ladder(self, policy: AlertPolicy, now: float, local: datetime) -> int:
        """Queue the ladder's steps due at `now` for every unacknowledged alert (one row per channel of
        the step's contact; a step already queued is not queued again); the rows queued."""
        if not policy.ladder:
            return 0
        queued = 0
        open_alerts = self.db.execute(
            "SELECT a.id, a.severity, a.raised, a.incident,"
            " (SELECT group_concat(DISTINCT d.step) FROM alert_deliveries d"
            "  WHERE d.alert = a.id AND d.kind IN ('alert', 'escalation'))"
            " FROM alerts a WHERE a.acknowledged IS NULL"
        ).fetchall()
        for alert, severity, raised, incident, steps in open_alerts:
            done = {int(s) for s in steps.split(",")} if steps else set()
            due = [
                i
                for i in due_steps(policy.ladder, Severity.parse(severity), raised, now, stale_s=STALE_S)
                if i not in done and (alert, i) not in self._unreachable
            ]
            for i in due:
                queued += self._queue_step(policy, alert, incident, i, now, local)
        return queued

    def _queue_step(
        self, policy: AlertPolicy, alert: int, incident: int | None, i: int, now: float, local: datetime
    ) -> int:
        name = recipient(policy, policy.ladder[i], local)
        contact = policy.contact(name)
        if contact is None or not contact.channels:
            self._unreachable.add((alert, i))
            log.warning(
                "alert %d: the ladder's step %d tells %r, who has no channel", alert, i + 1, name or "nobody"
            )
            return 0
        kind = "alert" if i == 0 else "escalation"
        with transaction(self.db):
            for channel in contact.channels:
                self.db.execute(
                    "INSERT OR IGNORE INTO alert_deliveries (alert, kind, step, contact, channel, due, state,"
                    " created) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (alert, kind, i, contact.name, channel.name, now, now),
                )
            if i > 0:
                audit.record(
                    self.db,
                    now,
                    None,
                    APPLIANCE,
                    "alert-escalated",
                    f"alert:{alert}",
                    f"step {i + 1}: {name}",
                )
                _note(self.db, incident, now, f"Not acknowledged: step {i + 1} of the ladder tells {name}.")
        return len(contact.channels)

    def queue_digest(self, policy: AlertPolicy, now: float) -> list[int]:
        """Queue the digest of the period up to `now` for its contact (one row per channel); their ids."""
        digest = policy.digest
        if digest is None:
            return []
        contact = policy.contact(digest.to)
        if contact is None:
            log.warning("the digest goes to %r, who is not a contact", digest.to)
            return []
        since = now - digest_period(digest).total_seconds()
        counts = digest_counts(self.db, since, now, self.categories)
        message = digest_message(
            policy, counts, since=since, until=now, zone=self.zone, weekly=digest.weekday is not None
        )
        return self._queue_other("digest", contact.name, [c.name for c in contact.channels], message, now)

    def _digest_on_timer(self, policy: AlertPolicy, now: float, local: datetime) -> None:
        digest = policy.digest
        assert digest is not None
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", (DIGEST_SETTING,)).fetchone()
        last = datetime.fromisoformat(row[0]) if row is not None else None
        naive = local.replace(tzinfo=None)
        if last is not None and not digest_due(digest, last, naive):
            return
        slot = digest_slot(digest, naive).isoformat()
        with transaction(self.db):
            # The slot is remembered in the transaction that queues it: one digest per slot, restarts or not.
            self.db.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (DIGEST_SETTING, slot)
            )
            if last is not None:
                self.queue_digest(policy, now)

    def _queue_other(
        self, kind: str, contact: str, channels: Iterable[str], message: Message, now: float
    ) -> list[int]:
        """Queue `message` (a kind without an alert) to these channels of `contact`; the rows' ids."""
        body = json.dumps({"title": message.title, "body": message.body})
        ids: list[int] = []
        own = not self.db.in_transaction
        if own:
            self.db.execute("BEGIN IMMEDIATE")
        try:
            for channel in channels:
                cur = self.db.execute(
                    "INSERT INTO alert_deliveries (alert, kind, step, contact, channel, due, state, created,"
                    " body) VALUES (NULL, ?, 0, ?, ?, ?, 'pending', ?, ?)",
                    (kind, contact, channel, now, now, body),
                )
                ids.append(int(cur.lastrowid or 0))
            if own:
                self.db.execute("COMMIT")
        except BaseException:
            if own:
                self.db.execute("ROLLBACK")
            raise
        return ids

    # ---- sending ----

    def _start(self, policy: AlertPolicy, now: float, only: Iterable[int] | None = None) -> None:
        """Start sending the pending rows due at `now` (`only` these, when given), one per channel."""
        rows = [
            _Row(*r)
            for r in self.db.execute(
                f"SELECT {_ROW} FROM alert_deliveries WHERE state = 'pending' AND due <= ? ORDER BY due, id",
                (now,),
            )
        ]
        if only is not None:
            wanted = set(only)
            rows = [r for r in rows if r.id in wanted]
        for row in rows:
            key = (row.contact, row.channel)
            flight = self._flights.get(key)
            if flight is not None:
                if not flight.recorded or flight.thread.is_alive():
                    continue  # one message at a time per channel, and each recorded before the next
                del self._flights[key]
            channel = _channel(policy, row.contact, row.channel)
            if channel is None:
                self._finish(
                    row, "failed", now, f"alerts.yaml has no channel {row.channel!r} for {row.contact!r}"
                )
                continue
            message = self._message(policy, row, now)
            if message is None:
                continue
            thread = threading.Thread(
                target=self._send_one,
                args=(channel, message, row.id),
                name=f"alert-send-{row.channel}",
                daemon=True,
            )
            self._flights[key] = _Flight(row.id, thread, time.monotonic())
            thread.start()

    def _message(self, policy: AlertPolicy, row: _Row, now: float) -> Message | None:
        key = f"delivery-{row.id}@appliance"
        if row.alert is None:
            stored = json.loads(row.body or "{}")
            return Message(str(stored.get("title", "")), str(stored.get("body", "")), key)
        found = self.db.execute("SELECT acknowledged FROM alerts WHERE id = ?", (row.alert,)).fetchone()
        if found is None or (found[0] is not None and row.kind in _LADDER_KINDS):
            # Acknowledged meanwhile (the dashboard cancels these itself; this is in case it did not).
            self._finish(row, "cancelled", now, "")
            return None
        with transaction(self.db):  # the acknowledge link is stored before the message can go
            return alert_message(
                self.db,
                policy,
                row.alert,
                row.contact,
                now=now,
                zone=self.zone,
                categories=self.categories,
                key=key,
            )

    def _send_one(self, channel: Channel, message: Message, row: int) -> None:
        send = self.send or apprise_send
        try:
            send(channel, message)
        except Exception as e:  # any failure is this channel's, in words
            error = str(e) if isinstance(e, DeliveryError) else f"{type(e).__name__}: {e}"
            self._results.put((row, error or type(e).__name__))
        else:
            self._results.put((row, None))

    def _collect(self, policy: AlertPolicy, now: float, until: float) -> bool:
        """Record what the worker threads report, waiting (until `until`, monotonic) for at least one
        report while messages are in flight; whether anything was recorded. A send past its deadline is
        recorded as failed (its thread keeps the channel busy until it ends)."""
        recorded = False
        while True:
            for flight in self._flights.values():
                if not flight.recorded and time.monotonic() - flight.started > self.send_deadline_s:
                    flight.recorded = recorded = True
                    self._late.add(flight.row)  # its thread's report, when it comes, is not recorded
                    self._record(policy, flight.row, f"no answer within {self.send_deadline_s:g} s", now)
            waiting = [f.started + self.send_deadline_s for f in self._flights.values() if not f.recorded]
            wait = min(until, *waiting) - time.monotonic() if waiting and not recorded else 0.0
            try:
                row, error = self._results.get(timeout=wait) if wait > 0 else self._results.get_nowait()
            except queue.Empty:
                if waiting and not recorded and time.monotonic() < until:
                    continue  # a deadline came first: record it
                return recorded
            if row in self._late:  # past its deadline, and recorded failed already
                self._late.discard(row)
                continue
            for flight in self._flights.values():
                if flight.row == row:
                    flight.recorded = True
            self._record(policy, row, error, now)
            recorded = True

    def send_now(self, policy: AlertPolicy, now: float, rows: Iterable[int]) -> None:
        """Send these queued rows now and wait for them (a command's digest or test: never the rows the
        running alerter sends, so nothing goes twice)."""
        self._start(policy, now, rows)
        self.settle(policy, now, timeout=self.send_deadline_s + 5)

    def settle(self, policy: AlertPolicy, now: float, timeout: float = 30.0) -> None:
        """Wait (up to `timeout`) until every message in flight is recorded."""
        until = time.monotonic() + timeout
        while any(not f.recorded for f in self._flights.values()) and time.monotonic() < until:
            self._collect(policy, now, until)

    # ---- recording ----

    def _record(self, policy: AlertPolicy, row_id: int, error: str | None, now: float) -> None:
        found = self.db.execute(
            f"SELECT {_ROW} FROM alert_deliveries WHERE id = ?",
            (row_id,),
        ).fetchone()
        if found is None:
            return
        row = _Row(*found)
        if error is None:
            self._finish(row, "sent", now, "")
            return
        failing_before = any(
            f.contact == row.contact and f.channel == row.channel for f in failing_channels(self.db, now)
        )
        attempts = row.attempts + 1
        given_up = now - row.created >= GIVE_UP_S
        with transaction(self.db):
            self.db.execute(
                "UPDATE alert_deliveries SET attempts = ?, error = ?, due = ?, state = ? WHERE id = ?"
                " AND state = 'pending'",
                (attempts, error, now + retry_delay(attempts), "failed" if given_up else "pending", row.id),
            )
            what = f"{_what(row)} to {row.contact} by {row.channel}: attempt {attempts} failed ({error})"
            audit.record(self.db, now, None, APPLIANCE, "alert-failed", _subject(row), what)
            _note(self.db, self._incident(row), now, f"Message {what}." + (" Given up." if given_up else ""))
            if (
                attempts >= FAILING_AFTER
                and not failing_before
                and row.kind not in ("channel-failure", "test")
            ):
                self._report_failing(policy, row, attempts, error, now)
        log.warning("%s", what)

    def _finish(self, row: _Row, state: str, now: float, error: str) -> None:
        with transaction(self.db):
            changed = self.db.execute(
                # A message that went is recorded sent even if it was cancelled meanwhile (acknowledged
                # as it was on its way): the audit log says what left the appliance.
                "UPDATE alert_deliveries SET state = ?, sent = ?, attempts = attempts + ?, error = ?"
                " WHERE id = ? AND (state = 'pending' OR (state = 'cancelled' AND ? = 'sent'))",
                (
                    state,
                    now if state == "sent" else None,
                    1 if state == "sent" else 0,
                    error if state != "sent" else "",
                    row.id,
                    state,
                ),
            ).rowcount
            if not changed or state == "cancelled":
                return
            if state == "sent":
                what = f"{_what(row)} sent to {row.contact} by {row.channel}"
                audit.record(self.db, now, None, APPLIANCE, "alert-sent", _subject(row), what)
            else:
                what = f"{_what(row)} to {row.contact} by {row.channel} not sent: {error}"
                audit.record(self.db, now, None, APPLIANCE, "alert-failed", _subject(row), what)
            _note(self.db, self._incident(row), now, f"Message {what}.")
        log.info("%s", what)

    def _incident(self, row: _Row) -> int | None:
        if row.alert is None:
            return None
        found = self.db.execute("SELECT incident FROM alerts WHERE id = ?", (row.alert,)).fetchone()
        return int(found[0]) if found is not None and found[0] is not None else None

    def _report_failing(self, policy: AlertPolicy, row: _Row, attempts: int, error: str, now: float) -> None:
        """Tell the contact's other channels, and the lead's, that this channel fails."""
        message = channel_failure_message(
            policy,
            row.contact,
            row.channel,
            attempts=attempts,
            error=error,
            since=row.created,
            zone=self.zone,
        )
        told: dict[str, list[str]] = {}
        for name in (row.contact, lead(policy)):
            contact = policy.contact(name) if name else None
            if contact is None:
                continue
            for channel in contact.channels:
                if (contact.name, channel.name) != (row.contact, row.channel):
                    told.setdefault(contact.name, [])
                    if channel.name not in told[contact.name]:
                        told[contact.name].append(channel.name)
        for contact_name, channels in told.items():
            self._queue_other("channel-failure", contact_name, channels, message, now)

    # ---- a test of every channel ----

    def try_channels(
        self, policy: AlertPolicy, now: float, contact: str | None = None
    ) -> list[tuple[str, str, str]]:
        """Send a test message through every channel (of `contact`, or of everyone), each in its own
        thread with the deadline; (contact, channel, error or '') for each, recorded as `test` rows."""
        contacts = [c for c in policy.contacts if contact is None or c.name == contact]
        if contact is not None and not contacts:
            raise ApplianceError(f"alerts.yaml has no contact {contact!r}")
        ids = []
        for c in contacts:
            for channel in c.channels:
                message = trial_message(policy, c.name, channel.name, now=now, zone=self.zone)
                ids += self._queue_other("test", c.name, [channel.name], message, now)
        self.send_now(policy, now, ids)
        # A test that failed is not retried: its row is closed as failed.
        for i in ids:
            self.db.execute(
                "UPDATE alert_deliveries SET state = 'failed' WHERE state = 'pending' AND id = ?", (i,)
            )
        return self.results(ids)

    def results(self, ids: Iterable[int]) -> list[tuple[str, str, str]]:
        """(contact, channel, error or '' when sent) of these rows."""
        out = []
        for i in ids:
            found = self.db.execute(
                "SELECT contact, channel, state, error FROM alert_deliveries WHERE id = ?", (i,)
            ).fetchone()
            if found is not None:
                c, ch, state, err = found
                out.append((c, ch, "" if state == "sent" else (err or "not sent")))
        return out


def lead(policy: AlertPolicy) -> str:
    """Who hears that a channel fails beside its own contact: the digest's contact, else `lead`."""
    if policy.digest is not None:
        return policy.digest.to
    return "lead" if policy.contact("lead") is not None else ""


def _channel(policy: AlertPolicy, contact: str, name: str) -> Channel | None:
    found = policy.contact(contact)
    if found is None:
        return None
    return next((c for c in found.channels if c.name == name), None)


def _what(row: _Row) -> str:
    if row.kind in _LADDER_KINDS:
        return f"alert {row.alert} (step {row.step + 1})"
    return row.kind


def _subject(row: _Row) -> str:
    return f"alert:{row.alert}" if row.alert is not None else row.kind


def _note(db: sqlite3.Connection, incident: int | None, now: float, text: str) -> None:
    """Add the appliance's note to `incident` (in the caller's transaction)."""
    if incident is None:
        return
    db.execute(
        "INSERT INTO incident_notes (incident, ts, author, kind, text) VALUES (?, ?, NULL, 'alert', ?)",
        (incident, now, text),
    )
