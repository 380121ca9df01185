"""The machine's own troubles on every staff page: a line at the top when the disk is full or nearly full,
or the compiled lists failed their checks (appliance/health.py), and a plain page instead of an error when
the dashboard itself cannot write for want of disk space."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from flask import Flask, current_app, render_template

from appliance.files import DiskFull
from appliance.health import health_problems
from appliance.store.schema import StoreError, disk_full
from dashboard.database import config

CHECK_EVERY_S = 10.0  # a page view looks at most this often (the index's checksum is read once per file)
_checked: dict[int, tuple[float, list[str]]] = {}  # id of the configuration -> (when, problems)


def problems() -> list[str]:
    """The machine's problems now (looked at most every CHECK_EVERY_S)."""
    cfg = config()
    now = time.monotonic()
    found = _checked.get(id(cfg))
    if found is None or now - found[0] >= CHECK_EVERY_S:
        found = (now, health_problems(cfg))
        _checked.clear()
        _checked[id(cfg)] = found
    return found[1]


def _store_refused(error: Exception) -> tuple[str, int]:
    if not disk_full(error, Path(current_app.config["STORE_PATH"]).parent):
        raise error
    return (
        render_template(
            "error.html",
            error={
                "name": "Disk full",
                "description": "The appliance's disk is full, so this page could not be shown or this change"
                " saved. Filtering goes on. Free some space on the appliance (its guide: Troubleshooting)"
                " and try again.",
            },
        ),
        503,
    )


def install(app: Flask) -> None:
    app.jinja_env.globals["machine_problems"] = problems
    app.register_error_handler(sqlite3.OperationalError, _store_refused)
    app.register_error_handler(StoreError, _store_refused)  # (cannot even open it)
    app.register_error_handler(DiskFull, _store_refused)  # (a file the page writes: the lead's switches)
