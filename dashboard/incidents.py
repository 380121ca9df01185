"""(Being written.)"""

from __future__ import annotations

from flask import Blueprint

from appliance.store.staff import Role
from dashboard.security import requires

bp = Blueprint("incidents", __name__)


@bp.route("/incidents")
@requires(Role.STAFF)
def index() -> str:
    return "coming"
