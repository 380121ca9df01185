"""Incidents: opened from events of one child, events added later, worked through (new, reviewing,
escalated, closed), assigned, noted, escalated to a contact from the configuration, closed with an
outcome; a printable record naming whose each event is. Events of two children are refused, never
silently joined: each child's record is handed on separately."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.store import incidents, people, staff
from appliance.store.feed import FeedEvent, get_events
from appliance.store.incidents import Status
from appliance.store.schema import StoreError
from appliance.store.staff import Role
from dashboard.database import area_of, config, local_time, now, store
from dashboard.review import who_of
from dashboard.security import current_user, log_action, requires

bp = Blueprint("incidents", __name__)


def _role() -> Role:
    user = current_user()
    assert user is not None
    return user.role


def _me() -> int:
    user = current_user()
    assert user is not None
    return user.id


def statuses_for(role: Role, current: Status) -> list[Status]:
    """The statuses `role` may choose for an incident now `current`: only the lead closes one or opens
    a closed one again (the page offers no more; the change route refuses the rest all the same)."""
    if role.may(Role.LEAD):
        return list(Status)
    return [] if current is Status.CLOSED else [s for s in Status if s is not Status.CLOSED]


def _incident(number: int) -> incidents.Incident:
    found = incidents.get(store(), number)
    if found is None:
        abort(404, "There is no such incident.")
    return found


@bp.route("/incidents")
@requires(Role.STAFF)
def index() -> str:
    status = request.args.get("status", "")
    listed = incidents.listing(store(), status=status if status in set(Status) else "")
    log_action("view-incidents", "incidents", status or "all")
    names = {c.id: c.display_name for c in people.children(store(), archived=True)}
    return render_template(
        "incidents/index.html",
        incidents=listed,
        who=lambda s: who_of(s, names),
        flagged={int(f.target[9:]) for f in incidents.flags(store()) if f.target.startswith("incident:")},
        when=local_time,
        statuses=list(Status),
        status=status,
    )


def _names() -> dict[str, str]:
    return {c.id: c.display_name for c in people.children(store(), archived=True)}


def _mixed(error: incidents.MixedSubjects) -> str:
    names = _names()
    whose = " and ".join(sorted(who_of(s, names) for s in error.subjects))
    children = all(s.startswith("child:") for s in error.subjects)
    return (
        f"These events are of more than one {'child' if children else 'child or device'} ({whose})."
        " An incident is about one child, so that"
        " each child's record can be handed on without another child's browsing: open one incident"
        " per child, and mention the other incident in a note."
    )


def _back() -> Response:
    """Back to the page the form was on (the feed or an event), else the feed."""
    target = request.form.get("back", "")
    return redirect(target if target.startswith(("/review", "/flagged")) else url_for("review.feed"))


@bp.route("/incidents/new", methods=["POST"])
@requires(Role.STAFF)
def new() -> Response:
    chosen = request.form.getlist("event")
    events = get_events(store(), chosen[:200])
    if not events:
        flash("Choose at least one event to open an incident from.", "error")
        return _back()
    if request.form.get("add_to", "").strip():
        return _add(request.form["add_to"].strip(), events)
    try:
        number = incidents.open_incident(
            store(), request.form.get("title", ""), events, _me(), now(), area_of()
        )
    except incidents.MixedSubjects as e:
        flash(_mixed(e), "error")
        return _back()
    log_action("open-incident", f"incident:{number}", ", ".join(e.id for e in events))
    return redirect(url_for("incidents.show", number=number))


@bp.route("/incidents/add", methods=["POST"])
@requires(Role.STAFF)
def add() -> Response:
    """Add the chosen events to the incident numbered in the form (`add_to`)."""
    events = get_events(store(), request.form.getlist("event")[:200])
    if not events:
        flash("Choose at least one event to add to the incident.", "error")
        return _back()
    return _add(request.form.get("add_to", "").strip(), events)


def _add(number_text: str, events: list[FeedEvent]) -> Response:
    number = int(number_text.lstrip("#")) if number_text.lstrip("#").isdigit() else 0
    incident = incidents.get(store(), number) if number else None
    if incident is None:
        flash(f"There is no incident {number_text}: give the number shown on the incidents page.", "error")
        return _back()
    try:
        added = incidents.add_events(store(), number, events, _me(), now())
    except incidents.MixedSubjects as e:
        flash(_mixed(e) if len(e.subjects) > 2 else _other_child(incident, e), "error")
        return _back()
    log_action("add-to-incident", incident.subject, f"incident:{number} " + ", ".join(e.id for e in events))
    flash(f"Added {added} event(s) to incident {number}." if added else "Those events were already in it.")
    return redirect(url_for("incidents.show", number=number))


def _other_child(incident: incidents.Incident, error: incidents.MixedSubjects) -> str:
    names = _names()
    theirs = who_of(incident.subject, names)
    other = " and ".join(who_of(s, names) for s in error.subjects if s != incident.subject)
    return (
        f"Incident {incident.id} is about {theirs}; these events are of {other}. Open a separate"
        f" incident for {other}, and mention incident {incident.id} in a note."
    )


@bp.route("/incidents/<int:number>")
@requires(Role.STAFF)
def show(number: int) -> str:
    return _page(number, "incidents/show.html")


@bp.route("/incidents/<int:number>/print")
@requires(Role.STAFF)
def printable(number: int) -> str:
    return _page(number, "incidents/print.html")


def _page(number: int, template: str) -> str:
    incident = _incident(number)
    db = store()
    names = _names()
    log_action("view-incident", incident.subject, f"incident:{number}")
    events = incidents.events_of(db, number)
    user = current_user()
    return render_template(
        template,
        incident=incident,
        who=who_of(incident.subject, names),
        whose=lambda subject: who_of(str(subject), names),
        subjects=sorted({str(e.get("subject", "")) for e in events}, key=lambda s: who_of(s, names)),
        flags=incidents.flags(db, f"incident:{number}"),
        lead=user is not None and user.role.may(Role.LEAD),
        events=events,
        history=incidents.history(db, number),
        staff=[u for u in staff.all_users(db) if not u.disabled],
        contacts=config().dashboard.escalation,
        statuses=statuses_for(_role(), incident.status),
        may_record_outcome=_role().may(Role.LEAD),
        when=local_time,
        centre=config().proxy.centre,
    )


@bp.route("/incidents/<int:number>/change", methods=["POST"])
@requires(Role.STAFF)
def change(number: int) -> Response:
    """One change per form: status, assignee, note, escalation or outcome."""
    incident = _incident(number)
    form, db, me, t = request.form, store(), _me(), now()
    user = current_user()
    assert user is not None
    what = form.get("change", "")
    try:
        if what == "status":
            status = Status(form.get("status", ""))
            if status not in statuses_for(user.role, incident.status):
                abort(403, "Only the e-safety lead closes an incident, or opens a closed one again.")
            incidents.set_status(db, number, status, me, t)
            detail = f"status {status}"
        elif what == "assign":
            chosen = form.get("assignee", "")
            target = staff.get_user(db, int(chosen)) if chosen.isdigit() else None
            incidents.assign(
                db, number, target.id if target else None, me, target.display_name if target else "", t
            )
            detail = f"assigned to {target.username if target else 'nobody'}"
        elif what == "note":
            incidents.add_note(db, number, me, form.get("note", ""), t)
            detail = "note added"
        elif what == "escalate":
            contacts = {c.name: c for c in config().dashboard.escalation}
            contact = form.get("contact", "")
            if contact not in contacts:
                raise StoreError("Choose one of the centre's escalation contacts.")
            incidents.escalate(db, number, contact, form.get("note", ""), me, t)
            detail = f"escalated to {contact}"
        elif what == "outcome":
            if not user.role.may(Role.LEAD):
                abort(403, "Only the e-safety lead records the outcome.")
            incidents.set_outcome(db, number, form.get("outcome", ""), me, t)
            detail = "outcome recorded"
        else:
            abort(400, "Unknown change.")
    except (StoreError, ValueError) as e:
        flash(str(e) if isinstance(e, StoreError) else "That status does not exist.", "error")
        return redirect(url_for("incidents.show", number=number))
    log_action("change-incident", incident.subject, f"incident:{number} {detail}")
    return redirect(url_for("incidents.show", number=number))


@bp.route("/flags/<int:flag>/resolve", methods=["POST"])
@requires(Role.LEAD)
def resolve_flag(flag: int) -> Response:
    """The lead marks a flag the store's migration raised (a mixed incident, a duplicate name) resolved."""
    try:
        done = incidents.resolve_flag(store(), flag, _me(), now())
    except StoreError as e:
        flash(str(e).capitalize() + ".", "error")
        return _back_from_flag()
    log_action("resolve-flag", done.target, done.detail)
    flash("The flag is marked resolved.")
    if done.target.startswith("incident:"):
        return redirect(url_for("incidents.show", number=int(done.target.split(":", 1)[1])))
    return redirect(url_for("people.index"))


def _back_from_flag() -> Response:
    target = request.form.get("back", "")
    return redirect(target if target.startswith(("/incidents", "/people")) else url_for("people.index"))
