"""(Being written: see the issue.)"""

from __future__ import annotations

from flask import Blueprint

from appliance.store.staff import Role
from dashboard.security import requires

bp = Blueprint("people", __name__)


@bp.route("/people")
@requires(Role.STAFF)
def index() -> str:
    return "coming"
