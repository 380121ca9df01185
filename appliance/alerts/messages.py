"""What the appliance says when it tells someone: an alert, the digest, a channel that fails, a test.

An alert's message carries the minimum (docs/alerts.md): its severity, its category in plain words, the
centre, the time on the centre's clock, a link to the alert on the staff dashboard and a single-use link
that acknowledges it. Nothing about the child leaves the appliance (no name, site or search terms)
unless alerts.yaml's `share` says so; then it is looked up in the store as the message is made.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, tzinfo

from appliance.store.secrets import new_token, token_digest
from profiles.alerts import AlertKind, AlertPolicy
from profiles.categories import Area, CategoryMap


@dataclass(frozen=True)
class Message:
    """One message as a channel sends it. `key` names the delivery it is for (`delivery-12@appliance`):
    an e-mail carries it in a header, so a receiver can drop a repeat."""

    title: str
    body: str
    key: str = ""


# How each kind of alert reads, when the category alone does not say it.
_KIND_WORDS = {
    AlertKind.PERSONAL_INFO: "personal information sent (a phone number, an address or the like)",
    AlertKind.CHILD_REPORT: 'a child pressed "report a problem"',
    AlertKind.BYPASS: "trying to get round the filter",
}


def plain_words(kind: str, category: str, rule: str, categories: CategoryMap | None) -> str:
    """The alert's category in words a member of staff reads: the category's title (and description),
    else what its kind means, else its rule's name."""
    found = categories.categories.get(category) if categories is not None and category else None
    if found is not None:
        title = found.title or found.name
        return f"{title}: {found.description}" if found.description else title
    try:
        words = _KIND_WORDS.get(AlertKind(kind))
    except ValueError:
        words = None
    if words:
        return words
    return (category or rule).replace("-", " ")


def _short(kind: str, category: str, rule: str, categories: CategoryMap | None) -> str:
    """The title's few words: the category's title, else the rule's name."""
    found = categories.categories.get(category) if categories is not None and category else None
    if found is not None:
        return (found.title or found.name).lower()
    return (rule or category or kind).replace("-", " ")


def local_time(ts: float, zone: tzinfo) -> str:
    """`Mon 7 Dec 2026, 14:05 (GMT)`: `ts` on the centre's clock."""
    at = datetime.fromtimestamp(ts, zone)
    return f"{at:%a} {at.day} {at:%b %Y, %H:%M} ({at:%Z})"


def _centre(policy: AlertPolicy) -> str:
    return policy.centre or "the appliance"


def alert_message(
    db: sqlite3.Connection,
    policy: AlertPolicy,
    alert: int,
    contact: str,
    *,
    now: float,
    zone: tzinfo,
    categories: CategoryMap | None = None,
    key: str = "",
) -> Message:
    """The message telling `contact` of `alert`, with a fresh single-use acknowledge link (its token's
    digest stored in `alert_links`, working for `policy.link_ttl_s`; call within the transaction that
    records the attempt). Raises LookupError when there is no such alert."""
    row = db.execute(
        "SELECT rule, severity, kind, category, subject, raised, count FROM alerts WHERE id = ?", (alert,)
    ).fetchone()
    if row is None:
        raise LookupError(f"no alert {alert}")
    rule, severity, kind, category, subject, raised, count = row
    token = new_token()
    db.execute(
        "INSERT INTO alert_links (token_hash, alert, contact, expires) VALUES (?, ?, ?, ?)",
        (token_digest(token), alert, contact, now + policy.link_ttl_s),
    )
    base = policy.link_base.rstrip("/")
    title = f"{severity.upper()} alert: {_short(kind, category, rule, categories)} ({_centre(policy)})"
    lines = [
        f"Severity: {severity}",
        f"What: {plain_words(kind, category, rule, categories)}",
        f"Centre: {_centre(policy)}",
        f"When: {local_time(raised, zone)}",
    ]
    if count > 1:
        lines.append(f"Seen {count} times")
    lines += _shared(db, policy, alert, subject)
    lines += [
        "",
        f"See it on the dashboard: {base}/alerts/{alert}",
        f"Acknowledge (once, no sign-in): {base}/alerts/ack/{token}",
    ]
    return Message(title, "\n".join(lines), key)


def _shared(db: sqlite3.Connection, policy: AlertPolicy, alert: int, subject: str) -> list[str]:
    """What `share` lets a message carry beyond the minimum: the child's name, the site, the search
    terms (of the alert's latest event)."""
    share = policy.share
    lines: list[str] = []
    if share.child_name and subject.startswith("child:"):
        found = db.execute("SELECT display_name FROM children WHERE id = ?", (subject[6:],)).fetchone()
        if found is not None:
            lines.append(f"Child: {found[0]}")
    if not (share.site or share.search_terms):
        return lines
    event = db.execute(
        "SELECT event FROM alert_events WHERE alert = ? ORDER BY ts DESC LIMIT 1", (alert,)
    ).fetchone()
    host, url, terms = _event(db, event[0]) if event is not None else ("", "", "")
    if share.site and (url or host):
        lines.append(f"Site: {url or host}")
    if share.search_terms and terms:
        lines.append(f"Search terms: {terms}")
    return lines


def _event(db: sqlite3.Connection, event: str) -> tuple[str, str, str]:
    """The host, URL and search terms of a feed event (`dns:N`, `web:N`); blanks when unknown."""
    table, _, rowid = event.partition(":")
    if not rowid.isdigit():
        return "", "", ""
    if table == "dns":
        row = db.execute(
            "SELECT w.host FROM events e JOIN answers w ON w.id = e.answer WHERE e.rowid = ?", (int(rowid),)
        ).fetchone()
        return (row[0], "", "") if row is not None else ("", "", "")
    if table == "web":
        row = db.execute(
            "SELECT w.host, r.url, r.terms FROM requests r JOIN answers w ON w.id = r.answer"
            " WHERE r.rowid = ?",
            (int(rowid),),
        ).fetchone()
        return (row[0], row[1], row[2]) if row is not None else ("", "", "")
    return "", "", ""


@dataclass(frozen=True)
class DigestCounts:
    """What a digest reports for its period: notable events by the three Cs (and `other` for those of
    no risk category), alerts raised by severity, and what is still open now."""

    areas: dict[str, int]
    alerts: dict[str, int]
    open_incidents: int
    unacknowledged: int


def digest_counts(
    db: sqlite3.Connection, since: float, until: float, categories: CategoryMap | None
) -> DigestCounts:
    """Count the period [`since`, `until`) of the store for a digest."""
    areas = {str(area): 0 for area in Area}
    areas["other"] = 0
    by_category: dict[str, int] = {}
    for table in ("events", "requests"):
        for category, n in db.execute(
            f"SELECT w.category, count(*) FROM {table} t JOIN answers w ON w.id = t.answer"
            " WHERE t.notable AND t.ts >= ? AND t.ts < ? GROUP BY w.category",
            (since, until),
        ):
            by_category[category] = by_category.get(category, 0) + n
    for category, n in by_category.items():
        found = categories.categories.get(category) if categories is not None else None
        area = str(found.area) if found is not None and found.area is not None else "other"
        areas[area] += n
    alerts = {"critical": 0, "high": 0, "medium": 0}
    for severity, n in db.execute(
        "SELECT severity, count(*) FROM alerts WHERE raised >= ? AND raised < ? GROUP BY severity",
        (since, until),
    ):
        alerts[severity] = n
    (open_incidents,) = db.execute("SELECT count(*) FROM incidents WHERE status != 'closed'").fetchone()
    (unacknowledged,) = db.execute("SELECT count(*) FROM alerts WHERE acknowledged IS NULL").fetchone()
    return DigestCounts(areas, alerts, open_incidents, unacknowledged)


def digest_message(
    policy: AlertPolicy, counts: DigestCounts, *, since: float, until: float, zone: tzinfo, weekly: bool
) -> Message:
    """The digest for the lead: the period's counts by the three Cs, its alerts, and what is open."""
    base = policy.link_base.rstrip("/")
    title = f"{'Weekly' if weekly else 'Daily'} safeguarding digest ({_centre(policy)})"
    a = counts.areas
    lines = [
        f"From {local_time(since, zone)} to {local_time(until, zone)}",
        "",
        "Blocked or flagged, by the three Cs:",
        f"  content (what a child saw or looked for): {a.get('content', 0)}",
        f"  contact (who a child dealt with): {a.get('contact', 0)}",
        f"  conduct (what a child did): {a.get('conduct', 0)}",
    ]
    if a.get("other"):
        lines.append(f"  other: {a['other']}")
    al = counts.alerts
    lines += [
        "",
        f"Alerts raised: {al.get('critical', 0)} critical, {al.get('high', 0)} high,"
        f" {al.get('medium', 0)} medium",
        f"Alerts not yet acknowledged: {counts.unacknowledged}",
        f"Incidents open: {counts.open_incidents}",
        "",
        f"The dashboard: {base}/",
    ]
    return Message(title, "\n".join(lines))


def channel_failure_message(
    policy: AlertPolicy, contact: str, channel: str, *, attempts: int, error: str, since: float, zone: tzinfo
) -> Message:
    """The report that `contact`'s `channel` fails (never its address: it may hold a password)."""
    title = f"Alerts cannot reach {contact} by {channel} ({_centre(policy)})"
    body = "\n".join(
        [
            f"Messages to {contact} through the channel {channel!r} have failed {attempts} times"
            f" since {local_time(since, zone)}.",
            f"The last error: {error or 'unknown'}",
            "The appliance keeps trying (at most every 15 minutes); check the channel's address in"
            " alerts.yaml and run `appliance alerts test`.",
            f"The dashboard: {policy.link_base.rstrip('/')}/alerts",
        ]
    )
    return Message(title, body)


def trial_message(policy: AlertPolicy, contact: str, channel: str, *, now: float, zone: tzinfo) -> Message:
    """A test message: no alert, only to show that the channel works."""
    return Message(
        f"Test message from {_centre(policy)}",
        f"This is a test of the alerts channel {channel!r} for {contact}, sent {local_time(now, zone)}."
        " Nothing has happened; no need to answer.",
    )
