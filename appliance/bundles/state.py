"""What `appliance sync` last did, kept in `data_dir/sync/state.json` for `appliance sync --status` and
the dashboard (which reads it without touching the network or the DNS filter)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from appliance.bundles.sets import pointed, sets_dir, version_of
from appliance.files import write_atomically

MANIFEST = "bundle.json"


def manifest_entry(data: bytes) -> dict[str, int | str]:
    """How bundle.json lists one file: its length and SHA-256 (written by build, checked by sign and sync)."""
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@dataclass(frozen=True)
class SyncState:
    """What `appliance sync --status` and the dashboard show."""

    in_force: int | None = None  # the bundle version in force
    created: str | None = None  # when head office built it (ISO)
    installed: str | None = None  # when this centre swapped it in
    last_attempt: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    checking: int | None = None  # a version swapped in whose check has not finished
    refused: dict[str, str] | None = None  # version -> why it is refused (not tried again)
    rolled_back: dict[str, int] | None = None  # version -> how often it was swapped in and rolled back

    unfinished: bool = False  # the last attempt has no outcome yet: running now, or killed from outside


def state_path(data_dir: Path) -> Path:
    return data_dir / "sync" / "state.json"


def read_state(data_dir: Path) -> SyncState:
    """The last recorded state (an empty one if there is none or it is unreadable)."""
    try:
        data = json.loads(state_path(data_dir).read_text(encoding="utf-8"))
        return SyncState(**{k: v for k, v in data.items() if k in SyncState.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return SyncState()


def save_state(data_dir: Path, state: SyncState) -> None:
    """Record `state`, with what is in force read from the disk itself (the pointer is the truth)."""
    current = pointed(data_dir, "current")
    if current is None:
        state = replace(state, in_force=None, created=None, installed=None)
    else:
        try:
            created = json.loads((current / "bundle" / MANIFEST).read_text(encoding="utf-8")).get("created")
        except (OSError, ValueError):
            created = None
        swapped = datetime.fromtimestamp((sets_dir(data_dir) / "current").stat().st_mtime, UTC)
        state = replace(state, in_force=version_of(current), created=created, installed=iso(swapped))
    write_atomically(state_path(data_dir), json.dumps(state.__dict__, indent=1).encode("utf-8"))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def bundle_age(created: str | None, now: datetime) -> str:
    """How old a bundle made at `created` (ISO) is, in days and hours."""
    try:
        seconds = (now - datetime.fromisoformat(created or "")).total_seconds()
    except (ValueError, TypeError):
        return "unknown"
    days, hours = divmod(int(seconds) // 3600, 24)
    return f"{days} d {hours} h" if days else f"{hours} h"
