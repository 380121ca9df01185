"""The machine's own troubles on every staff page: a line at the top when the disk is full or nearly full,
or the compiled lists failed their checks (appliance/health.py), and a plain page instead of an error when
the dashboard itself cannot write for want of disk space."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask import Flask, current_app, render_template

from appliance.bundles.sets import loaded_by
from appliance.checks import sync_warnings
from appliance.config import Config
from appliance.files import DiskFull, free_bytes
from appliance.health import health_problems
from appliance.heartbeat import ROLES, STALE_S, last_beats
from appliance.lists import read_compile_report
from appliance.store.alerts import failing_channels
from appliance.store.backup import last_backup
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


# ---- the machine's health in plain words (the overview) ----

LISTS_STALE_DAYS = 2  # the nightly update missed this many nights: someone should look


@dataclass(frozen=True)
class HealthLine:
    """One thing about the machine, in words staff read: what (`Disk`), whether it is well, and a sentence."""

    what: str
    ok: bool
    words: str


def _ago(seconds: float) -> str:
    if seconds < 3600:
        return "less than an hour ago"
    if seconds < 2 * 86400:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours != 1 else ''} ago"
    return f"{int(seconds // 86400)} days ago"


def _disk(cfg: Config, found: list[str]) -> HealthLine:
    full = [p for p in found if p.startswith("disk ")]
    if full:
        return HealthLine("Disk", False, full[0][:1].upper() + full[0][1:] + ".")
    try:
        free = free_bytes(cfg.data_dir)
    except OSError:
        return HealthLine("Disk", False, f"The data folder {cfg.data_dir} cannot be read.")
    return HealthLine("Disk", True, f"{free / 1e9:.1f} GB free.")


def _lists(cfg: Config, found: list[str], at: float) -> HealthLine:
    damaged = [p for p in found if p.startswith("the compiled lists")]
    if damaged:
        return HealthLine("Lists", False, damaged[0][:1].upper() + damaged[0][1:] + ".")
    report = read_compile_report(cfg)
    if report is None:
        return HealthLine("Lists", False, "No lists are compiled yet: only the bundled ones filter.")
    try:
        age = at - datetime.fromisoformat(report.compiled).timestamp()
    except ValueError:
        return HealthLine("Lists", False, "The last update's report cannot be read.")
    minimal = not any(
        s.report.entries for s in report.sources if s.location.startswith(("http://", "https://"))
    )
    if minimal and any(s.is_url for s in cfg.sources):
        return HealthLine(
            "Lists",
            False,
            f"Protection is minimal: the lists to download have not come in"
            f" (last tried {_ago(age)}). See Profiles & lists.",
        )
    if age > LISTS_STALE_DAYS * 86400:
        return HealthLine(
            "Lists", False, f"Last updated {_ago(age)}: the nightly update is failing. See Profiles & lists."
        )
    return HealthLine("Lists", True, f"Updated {_ago(age)}.")


def _head_office(cfg: Config) -> HealthLine:
    if cfg.sync is None:
        return HealthLine("Head office", True, "Not used: this centre keeps its own lists and profiles.")
    warnings = sync_warnings(cfg)
    if warnings:
        return HealthLine("Head office", False, warnings[0][:1].upper() + warnings[0][1:] + ".")
    running = cfg.set_dir.name if cfg.set_dir else None
    if running is None:
        return HealthLine("Head office", False, "No bundle from head office has arrived yet.")
    loaded = loaded_by(cfg.data_dir, "dns")
    if loaded not in (None, running):
        return HealthLine(
            "Head office", False, f"Bundle {running} is in force, but the DNS filter still runs {loaded}."
        )
    return HealthLine("Head office", True, f"Bundle {running} is in force.")


def _alert_messages(db: sqlite3.Connection, at: float) -> HealthLine:
    failing = failing_channels(db, at)
    if failing:
        n = len(failing)
        what = "one channel is" if n == 1 else f"{n} channels are"
        return HealthLine("Alert messages", False, f"Messages fail: {what} failing. See Alerts.")
    return HealthLine("Alert messages", True, "Getting through.")


def health_lines(db: sqlite3.Connection, at: float) -> list[HealthLine]:
    """The machine's health in plain words, for the overview: the services (their heartbeats), the
    disk, the lists' age (and damage), head office's bundle, alert messages, the last backup."""
    cfg = config()
    found = problems()
    return [
        _services(cfg, at),
        _disk(cfg, found),
        _lists(cfg, found, at),
        _head_office(cfg),
        _alert_messages(db, at),
        _backup(db, at),
    ]


EXPECTED = ("dns", "proxy", "alerts")  # on every appliance; the router's controls where it routes
BACKUP_STALE_DAYS = 2


def _services(cfg: Config, at: float) -> HealthLine:
    beats = last_beats(cfg.data_dir)
    if not beats:
        # The dashboard on its own (a demo, a trial): nothing to say the services are down.
        return HealthLine("Services", True, "No service has reported here yet.")
    down = [
        role for role in (*EXPECTED, *sorted(set(beats) - set(EXPECTED))) if at - beats.get(role, 0) > STALE_S
    ]
    if down:
        names = [ROLES.get(role, role) for role in down]
        since = [beats[r] for r in down if r in beats]
        when = f" (last heard {_ago(at - max(since))})" if since else ""
        return HealthLine(
            "Services",
            False,
            f"Not running: {', '.join(names)}{when}. Restart the appliance; if it stays, call your support.",
        )
    return HealthLine("Services", True, "Running: " + ", ".join(ROLES.get(r, r) for r in sorted(beats)) + ".")


def _backup(db: sqlite3.Connection, at: float) -> HealthLine:
    made = last_backup(db)
    if made is None:
        # A new appliance makes its first at night (appliance-backup.timer): not yet a worry.
        return HealthLine("Backup", True, "None yet: the first is made tonight (or: appliance store backup).")
    if at - made.ts > BACKUP_STALE_DAYS * 86400:
        return HealthLine(
            "Backup", False, f"The last backup was made {_ago(at - made.ts)}: the nightly one fails."
        )
    return HealthLine("Backup", True, f"Last made {_ago(at - made.ts)}.")
