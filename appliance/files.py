"""Files that must survive power cuts and full or failing disks: atomic replacement (a crash leaves the
old file or the new one, never a mix), durable renames, and a full disk (what was needed, what is free)
or a disk gone read-only said in words, with the file it was to replace unchanged. Used by every writer
of the data folder; the compiled index's own rules (read-only, the previous good one kept) are in
appliance/storage.py.
"""

from __future__ import annotations

import contextlib
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


class WriteFailed(ApplianceError):
    """A file could not be written for another reason of the disk's (read-only, an I/O error): the file
    it was to replace is unchanged."""


def write_error(path: Path, needed: int, e: OSError) -> ApplianceError:
    """What to raise when writing `path` (`needed` bytes) failed with `e`, in words for staff: DiskFull
    for want of space, else WriteFailed."""
    if e.errno in _FULL:
        return disk_full_error(path, needed, e)
    hint = ""
    if e.errno == errno.EROFS:
        hint = (
            ": the disk has become read-only (a failing SD card often does; the Pi guide's Troubleshooting)"
        )
    elif e.errno == errno.EIO:
        hint = ": the disk could not write (a failing SD card or a loose USB disk?)"
    return WriteFailed(f"cannot write {path}: {e.strerror}{hint}; {path} is unchanged")


def remove_quietly(*paths: Path) -> None:
    """Remove what a failed write left (on a disk gone read-only it stays: nothing more to do then)."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


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
    file `tmp` (with `mode`) and make it durable. Raises OSError (`write_error` says it for staff)."""
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
    the dashboard stays readable by the DNS filter and the proxy). Raises DiskFull when the disk is full,
    WriteFailed when it cannot be written (the old file unchanged either way)."""
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
        raise write_error(path, size_of(data), e) from e
    finally:
        remove_quietly(tmp)
    fsync_path(path.parent)
