"""Each long-running service says it is alive by touching a file of its own (`<data_dir>/alive/<role>`)
every few seconds; the dashboard's overview reads their times to say which services run.

A file's time, not a row in the store: a heartbeat must not take the store's write lock from the event
writers four times a second, and it must still beat when the store is full or locked.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FOLDER = "alive"
BEAT_S = 5.0  # a service touches its file at least this often
STALE_S = 30.0  # no beat for this long: the service is not running (or is stuck)
ROLES = {
    "dns": "the DNS filter",
    "proxy": "the proxy",
    "alerts": "the alerter",
    "router": "the router's controls",
}


class Heartbeat:
    """Touches `<data_dir>/alive/<role>` when `beat` is called and BEAT_S has passed since the last."""

    def __init__(self, data_dir: Path, role: str) -> None:
        self.path = data_dir / FOLDER / role
        self._last = float("-inf")

    def beat(self, now: float) -> None:
        """Say this service is alive at `now` (monotonic or wall: only the spacing is read). Never
        raises: a disk that cannot be written is the overview's other line."""
        if now - self._last < BEAT_S:
            return
        self._last = now
        with contextlib.suppress(OSError):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.touch()


def last_beats(data_dir: Path) -> dict[str, float]:
    """When each service that ever beat here last did (epoch seconds), by role."""
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(data_dir / FOLDER):
            with contextlib.suppress(OSError):
                found[entry.name] = entry.stat().st_mtime
    return found
