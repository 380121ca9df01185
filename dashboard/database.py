"""The event store for the request being served: one connection per request, closed after it."""

from __future__ import annotations

import sqlite3
import time

from flask import current_app, g

from appliance.config import Config
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
