"""The audit log, for the e-safety lead: every staff view of a child's events and every change, in
sentences with names ("Amina looked at the flagged feed")."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from appliance.store import audit, people, staff
from appliance.store.staff import Role
from dashboard.alerts import contact_names
from dashboard.database import store
from dashboard.security import requires
from dashboard.wording import audit_line

bp = Blueprint("audit_views", __name__)


@bp.route("/audit")
@requires(Role.LEAD)
def index() -> str:
    args = request.args
    before = args.get("before", "")
    entries = audit.entries(
        store(),
        limit=200,
        before=float(before) if before.replace(".", "", 1).isdigit() else None,
        username=args.get("username", ""),
        subject=args.get("subject", ""),
    )
    children = {c.id: c.display_name for c in people.children(store(), archived=True)}
    names = {u.username: u.display_name for u in staff.all_users(store())}
    contacts = contact_names()
    lines = [
        (
            e,
            audit_line(
                action=e.action,
                subject=e.subject,
                detail=e.detail,
                actor=names.get(e.username, e.username),
                children=children,
                staff=names,
                contacts=contacts,
            ),
        )
        for e in entries
    ]
    return render_template(
        "audit.html",
        lines=lines,
        staff=sorted(names.items(), key=lambda kv: kv[1]),
        args={k: v for k, v in args.items() if v and k != "before"},
        older=entries[-1].ts if len(entries) == 200 else None,
    )
