"""Alerts on the dashboard: the live banner's feed (`/alerts/live`, polled every second by every open
staff page), the alerts page and one alert, acknowledging (any member of staff), and the single-use
acknowledge link sent in messages.

The link is the credential (no sign-in), but it is a staff page all the same: a child's device never
reaches it (security._gate), and only a POST from its page acknowledges, so a mail scanner opening
the link spends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.store import alerts, controls
from appliance.store.alerts import AlertRow, Delivery
from appliance.store.staff import Role
from dashboard.database import local_time, now, policy_files, store, vocabulary
from dashboard.review import who_of
from dashboard.security import current_user, log_action, requires
from dashboard.who_is_told import WhoIsTold, display_names, who_is_told
from dashboard.wording import alert_what, category_label, centre_time
from filters.errors import ApplianceError
from profiles.alerts import AlertPolicy

bp = Blueprint("alerts", __name__)
BANNER_LIMIT = 20  # the banner's newest open alerts (the alerts page lists every one)


def what_of(alert: AlertRow) -> str:
    """The alert's category (or kind) in plain words."""
    return alert_what(kind=alert.kind, category=alert.category, rule=alert.rule, words=vocabulary())


def whose(alert: AlertRow) -> str:
    """The child's display name (staff pages may show it), else the device, else a guest device."""
    return alert.child_name or who_of(alert.subject, {})


def when(ts: float) -> str:
    return centre_time(local_time(ts))


def alert_policy() -> AlertPolicy | None:
    """alerts.yaml in force, as the dashboard reads the policy files; None when they cannot be read
    (`appliance check` says why; the alerter keeps the last good one)."""
    try:
        return policy_files().alerts
    except ApplianceError:
        return None


def contact_names() -> dict[str, str]:
    """alerts.yaml's contact keys -> their display names (empty when alerts.yaml cannot be read)."""
    policy = alert_policy()
    return display_names(policy) if policy is not None else {}


def told_now() -> WhoIsTold | None:
    """The "Who is told" panel at the dashboard's now, in the centre's time."""
    policy = alert_policy()
    return who_is_told(policy, local_time(now()).replace(tzinfo=None)) if policy is not None else None


@dataclass(frozen=True)
class DeliveryLine:
    """One message of an alert in words: to whom, by which channel, which step, what became of it."""

    to: str
    step: str
    state: str  # pending, sent, failed, cancelled, retrying: the page's class
    said: str


def delivery_line(d: Delivery, names: dict[str, str]) -> DeliveryLine:
    """`names`: contact keys -> display names (`contact_names()`)."""
    step = "first message" if d.kind == "alert" else f"step {d.step + 1} of the ladder"
    if d.kind not in ("alert", "escalation"):
        step = d.kind.replace("-", " ")
    if d.state == "sent":
        state, said = "sent", f"sent {when(d.sent or d.due)}"
    elif d.state == "failed":
        state, said = "failed", f"failed after {d.attempts} tries, given up: {d.error or 'no reason given'}"
    elif d.state == "cancelled":
        state, said = "cancelled", "not sent: the alert was acknowledged first"
    elif d.error:
        state, said = "retrying", f"failed ({d.error}); trying again {when(d.due)}"
    else:
        state, said = "pending", f"to be sent {when(d.due)}"
    return DeliveryLine(f"{names.get(d.contact, d.contact)} by {d.channel}", step, state, said)


def acknowledged_words(alert: AlertRow, names: dict[str, str] | None = None) -> str:
    """`Acknowledged by Sam Staff on the dashboard, Mon 7 Dec 2026, 17:25`; '' while open."""
    if alert.acknowledged is None:
        return ""
    said = ["Acknowledged"]
    if alert.acknowledged_by:
        said.append(f"by {alert.acknowledged_by}")
    if alert.ack_via == alerts.DASHBOARD:
        said.append("on the dashboard")
    elif alert.ack_via.startswith("link:"):
        contact = alert.ack_via[5:]
        said.append(f"from the link sent to {(names or {}).get(contact, contact)}")
    elif alert.ack_via:
        said.append(f"({alert.ack_via})")
    return " ".join(said) + f", {when(alert.acknowledged)}"


def _live(alert: AlertRow) -> dict[str, Any]:
    return {
        "id": alert.id,
        "severity": alert.severity,
        "what": what_of(alert),
        "whose": whose(alert),
        "when": when(alert.raised),
        "count": alert.count,
        "url": url_for("alerts.show", number=alert.id),
        "incident_url": (
            url_for("incidents.show", number=alert.incident) if alert.incident is not None else None
        ),
        "incident": alert.incident,
        "acknowledge_url": url_for("alerts.acknowledge", number=alert.id),
    }


def _live_ask(ask: controls.AskRecord) -> dict[str, Any]:
    """A child's "ask to use this site" for the banner, with where its Grant and Refuse buttons post."""
    return {
        "id": ask.id,
        "who": ask.label,
        "host": ask.host,
        "category": category_label(ask.category, vocabulary()) if ask.category else "",
        "note": ask.note,
        "when": when(ask.ts),
        "grant_url": url_for("controls.grant_ask", ask_id=ask.id),
        "refuse_url": url_for("controls.refuse_ask", ask_id=ask.id),
    }


@bp.route("/alerts/live")
@requires(Role.STAFF)
def live() -> Response:
    """The open alerts for the banner, newest first, and the children's pending asks to use a blocked
    site, oldest first (JSON). Not in the audit log: every open page asks every second; the alerts page
    and each alert are logged when looked at."""
    db = store()
    found = alerts.open_alerts(db, limit=BANNER_LIMIT)
    asks = controls.pending_asks(db, now())[:BANNER_LIMIT]
    return jsonify(
        alerts=[_live(a) for a in found],
        more=len(found) == BANNER_LIMIT,
        page=url_for("alerts.index"),
        asks=[_live_ask(a) for a in asks],
        asks_page=url_for("controls.index"),
    )


@bp.route("/alerts")
@requires(Role.STAFF)
def index() -> str:
    db = store()
    listed = alerts.listing(db)
    names = contact_names()
    log_action("view-alerts", "alerts")
    return render_template(
        "alerts/index.html",
        alerts=listed,
        open_count=sum(1 for a in listed if a.open),
        failing=alerts.failing_channels(db, now()),
        told=told_now(),
        names=names,
        what=what_of,
        whose=whose,
        when=when,
        deliveries=lambda a: [delivery_line(d, names) for d in a.deliveries],
        acknowledged=lambda a: acknowledged_words(a, names),
    )


def _alert(number: int) -> AlertRow:
    found = alerts.alert(store(), number)
    if found is None:
        abort(404, "There is no such alert.")
    return found


@bp.route("/alerts/<int:number>")
@requires(Role.STAFF)
def show(number: int) -> str:
    alert = _alert(number)
    names = contact_names()
    log_action("view-alert", alert.subject, f"alert:{number}")
    return render_template(
        "alerts/show.html",
        alert=alert,
        what=what_of(alert),
        whose=whose(alert),
        when=when,
        events=alerts.events_of(store(), number),
        deliveries=[delivery_line(d, names) for d in alert.deliveries],
        acknowledged=acknowledged_words(alert, names),
    )


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.route("/alerts/<int:number>/acknowledge", methods=["POST"])
@requires(Role.STAFF)
def acknowledge(number: int) -> Response | tuple[Response, int]:
    """Any member of staff acknowledges: the ladder stops. The banner asks with fetch (JSON back); the
    pages' forms are sent back where they were."""
    alert = _alert(number)
    user = current_user()
    assert user is not None
    done = alerts.acknowledge(store(), number, staff=user.id, via=alerts.DASHBOARD, now=now())
    if _wants_json():
        return jsonify(acknowledged=done, id=number), 200
    if done:
        flash(f"Alert {number} ({what_of(alert)}, {whose(alert)}) is acknowledged: nobody else will be told.")
    else:
        flash(f"Alert {number} was already acknowledged.")
    back = request.form.get("back", "")  # the alerts page or the alert's: never somewhere else
    return redirect(
        back
        if back in (url_for("alerts.index"), url_for("alerts.show", number=number))
        else url_for("alerts.show", number=number)
    )


_LINK_WORDS = {
    "unknown": "This acknowledge link is not one this appliance made (it may have been copied wrongly)."
    " Open the alerts page on the dashboard to acknowledge the alert.",
    "used": "This acknowledge link has been used already: each link works once. The alert's page on the"
    " dashboard says who acknowledged it and when.",
    "expired": "This acknowledge link has expired. Open the alerts page on the dashboard to acknowledge the"
    " alert, if nobody has yet.",
}


@bp.route("/alerts/ack/<token>", methods=["GET", "POST"])
def link(token: str) -> str | tuple[str, int]:
    """The single-use acknowledge link: GET shows the alert (severity, category, time) and a button;
    only the POST from that page acknowledges (via link:<contact>) and spends the link. The link is
    the credential: no sign-in, but a staff page (the staff network only)."""
    db, t = store(), now()
    found = alerts.link(db, token, t)
    if found.state != "valid" or found.alert is None:
        return render_template("alerts/link.html", alert=None, said=_LINK_WORDS[found.state]), (
            404 if found.state == "unknown" else 410
        )
    alert = alerts.alert(db, found.alert)
    if alert is None:  # the link outlived its alert (retention): say it as an unknown link
        return render_template("alerts/link.html", alert=None, said=_LINK_WORDS["unknown"]), 404
    words = {"what": what_of(alert), "raised": when(alert.raised)}
    if request.method == "POST":
        if alerts.use_link(db, token, t) is None:  # spent meanwhile (a second click, another tab)
            return render_template("alerts/link.html", alert=None, said=_LINK_WORDS["used"]), 410
        user = current_user()
        via = f"link:{found.contact}"
        done = alerts.acknowledge(db, alert.id, staff=user.id if user else None, via=via, now=t)
        alert = alerts.alert(db, alert.id) or alert
        said = (
            "Thank you: the alert is acknowledged, and nobody else will be told."
            if done
            else "The alert had already been acknowledged: "
            + acknowledged_words(alert, contact_names())
            + "."
        )
        return render_template("alerts/link.html", alert=alert, done=True, said=said, **words)
    if not alert.open:
        said = "This alert is already acknowledged: " + acknowledged_words(alert, contact_names()) + "."
        return render_template("alerts/link.html", alert=alert, done=True, said=said, **words)
    return render_template("alerts/link.html", alert=alert, done=False, said="", **words)
