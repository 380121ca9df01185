"""Tries counted before they are checked (staff passwords, children's PINs): a try is recorded under each
of its keys in one write transaction, so parallel tries cannot all pass the count, and forgotten again
when it succeeds."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from appliance.store.schema import transaction

FAILURE_WINDOW_S = 15 * 60


def attempt(db: sqlite3.Connection, limits: Sequence[tuple[str, int]], now: float) -> list[str] | None:
    """Count a try under each key of `limits` ((key, most tries within FAILURE_WINDOW_S) pairs); None,
    counting nothing, when a key has reached its limit. The keys counted, for `succeeded`."""
    since = now - FAILURE_WINDOW_S
    with transaction(db):
        for key, limit in limits:
            (tries,) = db.execute(
                "SELECT count(*) FROM sign_in_failures WHERE key = ? AND ts > ?", (key, since)
            ).fetchone()
            if int(tries) >= limit:
                return None
        keys = [key for key, _ in limits]
        db.executemany("INSERT INTO sign_in_failures (key, ts) VALUES (?, ?)", [(k, now) for k in keys])
    return keys


def succeeded(db: sqlite3.Connection, keys: Sequence[str], now: float, *, forget: Sequence[str] = ()) -> None:
    """The try of `attempt` at `now` was right: it no longer counts, nor do earlier failures of `forget`."""
    with transaction(db):
        db.executemany("DELETE FROM sign_in_failures WHERE key = ? AND ts = ?", [(k, now) for k in keys])
        db.executemany("DELETE FROM sign_in_failures WHERE key = ?", [(k,) for k in forget])
