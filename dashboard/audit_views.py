"""The audit log, for the e-safety lead: every staff view of a child's events and every change."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from appliance.store import audit, people
from appliance.store.staff import Role
from dashboard.database import local_time, store
from dashboard.review import who_of
from dashboard.security import requires

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
    names = {c.id: c.display_name for c in people.children(store(), archived=True)}
    return render_template(
        "audit.html",
        entries=entries,
        when=local_time,
        who=lambda s: who_of(s, names) if s.startswith(("child:", "device:")) else s,
        args={k: v for k, v in args.items() if v and k != "before"},
        older=entries[-1].ts if len(entries) == 200 else None,
    )
