"""The event store for the request being served: one connection per request, closed after it."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app, g

from appliance.config import Config
from appliance.policy_files import PolicyFiles, read_policy_files
from appliance.store.schema import connect


def store() -> sqlite3.Connection:
    db: sqlite3.Connection | None = g.get("store")
    if db is None:
        db = g.store = connect(current_app.config["STORE_PATH"])
    return db


def config() -> Config:
    found: Config = current_app.config["APPLIANCE"]
    return found


def now() -> float:
    """The time, as the store records it (tests may set NOW)."""
    fixed = current_app.config.get("NOW")
    return float(fixed) if fixed is not None else time.time()


def close_store(_: BaseException | None = None) -> None:
    db = g.pop("store", None)
    if db is not None:
        db.close()


_POLICY: dict[tuple[object, ...], PolicyFiles] = {}


def policy_files() -> PolicyFiles:
    """The policy files in force (re-read when one of them changes)."""
    settings = config().policy
    paths = (settings.categories, settings.profiles, settings.safe_search, settings.watch_lists)
    stamp: tuple[object, ...] = tuple((str(p), p.stat().st_mtime_ns if p.exists() else 0) for p in paths)
    found = _POLICY.get(stamp)
    if found is None:
        _POLICY.clear()
        found = _POLICY[stamp] = read_policy_files(settings)
    return found


def area_of() -> dict[str, str]:
    """Category name -> its three-Cs area ('' for allowlist categories)."""
    return {name: str(c.area or "") for name, c in policy_files().categories.categories.items()}


def local_time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, ZoneInfo(config().policy.timezone))
