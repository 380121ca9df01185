"""(Being written.)"""

from __future__ import annotations

from flask import Blueprint

from appliance.store.staff import Role
from dashboard.security import requires

bp = Blueprint("review", __name__)


@bp.route("/review")
@requires(Role.STAFF)
def feed() -> str:
    return "coming"
