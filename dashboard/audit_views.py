"""(Being written.)"""

from __future__ import annotations

from flask import Blueprint

from appliance.store.staff import Role
from dashboard.security import requires

bp = Blueprint("audit_views", __name__)


@bp.route("/audit_views")
@requires(Role.STAFF)
def index() -> str:
    return "coming"
