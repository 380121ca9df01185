"""Files that must survive power cuts and full disks: atomic replacement (a crash leaves the old file or
the new one, never a mix), durable renames, and a full disk said in words (what was needed, what is
free) with the file it was to replace unchanged. Used by every writer of the data folder; the compiled
index's own rules (read-only, the previous good one kept) are in appliance/storage.py.
"""

from __future__ import annotations

import errno
import os
import shutil
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from filters.errors import ApplianceError

_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(ApplianceError):
    """A file could not be written because its disk (or the user's quota) is full: the file it was to
    replace is unchanged."""


def free_bytes(path: Path) -> int:
    """Bytes an ordinary user (the services' `appliance` user) may still write on the disk of `path`
    (or of its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def disk_full_error(path: Path, needed: int, e: OSError) -> DiskFull:
    """The DiskFull for `path`, naming what was needed and what is free."""
    return DiskFull(
        f"cannot write {path}: the disk is full ({_size(free_bytes(path.parent))} free there,"
        f" {_size(needed)} needed; {e.strerror}); {path} is unchanged: free some space and try again"
    )


def is_disk_full(e: OSError) -> bool:
    """Did `e` fail for want of space (the disk, or the user's quota)?"""
    return e.errno in _FULL


def fsync_path(path: Path) -> None:
    """Make `path` durable: a file's data, or a folder's entries (a rename, an unlink in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


Data: TypeAlias = "bytes | Sequence[bytes | array[int]]"  # a file's bytes, or its parts in order


def size_of(data: Data) -> int:
    """How many bytes `data` writes."""
    return len(data) if isinstance(data, bytes) else sum(memoryview(part).nbytes for part in data)


def write_new(tmp: Path, data: Data, mode: int | None) -> None:
    """Write `data` (or its parts, in order: a compiled index is never joined into one copy) to the new
    file `tmp` (with `mode`) and make it durable. Raises OSError (`is_disk_full` tells a full disk)."""
    with open(tmp, "wb") as f:
        for part in (data,) if isinstance(data, bytes) else data:
            f.write(part)
        f.flush()
        if mode is not None:
            os.fchmod(f.fileno(), mode)
        os.fsync(f.fileno())


def write_atomically(path: Path, data: Data) -> None:
    """Replace `path` with `data` (bytes, or parts written in order) so that a crash leaves either the
    old or the new file, never a mix. A file replaced keeps its permission bits (a profiles file edited in
    the dashboard stays readable by the DNS filter and the proxy). Raises DiskFull (the old file
    unchanged) when the disk is full."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    try:
        write_new(tmp, data, mode)
        os.replace(tmp, path)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(path, size_of(data), e) from e
        raise
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(path.parent)
