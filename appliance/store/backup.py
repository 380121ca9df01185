"""Backups of the event store: SQLite's online backup into a folder (safe while the services write), the
copy checked, the newest `keep` kept, and the last good one remembered in the store itself (settings
`last_backup`) so the overview can say when it was made.

A copy on the same SD card protects against a damaged store, not a dead card: `--to` a USB drive for
that (docs/raspberry-pi.md, "Backup and restore").
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from appliance.store.schema import STORE_MODE, StoreError, connect, transaction

PREFIX = "appliance-"
SUFFIX = ".sqlite"
KEEP = 7


@dataclass(frozen=True)
class Backup:
    """The last good backup: when (epoch seconds) and where."""

    ts: float
    path: str


def back_up(db_path: Path, folder: Path, *, now: float, keep: int = KEEP) -> Path:
    """Copy the store at `db_path` into `folder` as appliance-<UTC time>.sqlite (owner-only, written
    whole or not at all), check the copy, remove all but the newest `keep` copies there, and remember it
    in the store. Raises StoreError saying what failed; a failed copy leaves nothing behind."""
    if keep < 1:
        raise ValueError("keep at least one backup")
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H%M%SZ")
    target = folder / f"{PREFIX}{stamp}{SUFFIX}"
    part = target.with_name(target.name + ".part")
    db = connect(db_path)
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            part.unlink(missing_ok=True)
            os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STORE_MODE))
            copy = sqlite3.connect(part)
            try:
                db.backup(copy)
                (result,) = copy.execute("PRAGMA quick_check").fetchone()
            finally:
                copy.close()
            if result != "ok":
                raise StoreError(f"{part}: the copy does not check out: {result}")
            with open(part, "rb") as f:
                os.fsync(f.fileno())
            os.replace(part, target)
        except (sqlite3.Error, OSError) as e:
            _remove(part)
            raise StoreError(f"{target}: cannot back up the event store: {e}") from e
        except StoreError:
            _remove(part)
            raise
        for old in sorted(folder.glob(f"{PREFIX}*{SUFFIX}"))[:-keep]:
            old.unlink(missing_ok=True)
        with transaction(db):
            db.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('last_backup', ?)",
                (json.dumps({"ts": now, "path": str(target)}),),
            )
    finally:
        db.close()
    return target


def _remove(part: Path) -> None:
    with contextlib.suppress(OSError):  # (the folder may be the very thing that failed)
        part.unlink(missing_ok=True)


def last_backup(db: sqlite3.Connection) -> Backup | None:
    """The last good backup remembered in the store, or None if none was ever made."""
    row = db.execute("SELECT value FROM settings WHERE key = 'last_backup'").fetchone()
    if row is None:
        return None
    try:
        value = json.loads(row[0])
        return Backup(float(value["ts"]), str(value["path"]))
    except (ValueError, KeyError, TypeError):
        return None
