"""(Being written.)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("portal", __name__)


@bp.route("/portal")
def index() -> str:
    return "coming"
