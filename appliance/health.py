"""What staff and `appliance check` must be told about the machine itself, in plain words: a disk that is
full or nearly full (the SD card), and a compiled index that failed its checks (the services then serve
the previous good one). Each problem is one sentence that says what it means and what to do."""

from __future__ import annotations

import os
from pathlib import Path

from appliance.config import Config
from appliance.files import free_bytes
from appliance.storage import index_problem

DISK_FULL_BYTES = 1 << 20  # below this, the event writers and a compile fail: "full"
DISK_LOW_BYTES = 64 << 20  # below this, a nightly compile may not fit: "nearly full"
_HELP = "docs/raspberry-pi.md#troubleshooting"


def _size(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def disk_problem(folder: Path) -> str | None:
    """The disk holding `folder`, if it is full or nearly full; None when it has room."""
    free = free_bytes(folder)
    if free < DISK_FULL_BYTES:
        return (
            f"disk full: {_size(free)} free for {folder}. Filtering goes on, but new events are only kept in"
            f" memory for a while, then lost, and list updates fail: free some space ({_HELP})"
        )
    if free < DISK_LOW_BYTES:
        return (
            f"disk nearly full: {_size(free)} free for {folder}. When it is full, events stop being saved"
            f" and list updates fail: free some space ({_HELP})"
        )
    return None


def health_problems(config: Config) -> list[str]:
    """Every problem of the machine under `config` that staff must know of: the disks of the data folder
    and of the event store, and the compiled index."""
    out = []
    seen: set[int] = set()
    for folder in (config.data_dir, config.events_path.parent):
        try:
            device = os.stat(_existing(folder)).st_dev
        except OSError:
            continue
        if device in seen:
            continue
        seen.add(device)
        problem = disk_problem(folder)
        if problem:
            out.append(problem)
    index = index_problem(config.index_path)
    if index:
        out.append(f"the compiled lists are damaged: {index}")
    return out


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
