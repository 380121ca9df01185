"""(Being written: see the issue.)"""

from __future__ import annotations

from flask import Blueprint

from appliance.store.staff import Role
from dashboard.security import requires

bp = Blueprint("reports", __name__)


@bp.route("/reports")
@requires(Role.STAFF)
def index() -> str:
    return "coming"
