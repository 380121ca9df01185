"""Files that must survive power cuts: atomic replacement, and the memory-mapped compiled index."""

from __future__ import annotations

import mmap
import os
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from filters.errors import IndexFormatError
from filters.index import FilterIndex


def fsync_path(path: Path) -> None:
    """Make `path` durable: a file's data, or a folder's entries (a rename, an unlink in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes | Sequence[bytes | array[int]]) -> None:
    """Replace `path` with `data` (or its parts, written in order: a compiled index is never joined
    into one copy) so that a crash leaves either the old or the new file, never a mix.
    A file replaced keeps its permission bits (a profiles file edited in the dashboard stays readable by
    the DNS filter and the proxy)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    try:
        with open(tmp, "wb") as f:
            for part in (data,) if isinstance(data, bytes) else data:
                f.write(part)
            f.flush()
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(path.parent)


def open_index(path: Path, *, verify: bool = False) -> FilterIndex:
    """Memory-map a compiled index read-only, and keep the file open for the host table, which is
    read with `pread` (filters/host_table.py says why). Raises IndexFormatError naming the file if
    unusable."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - open as long as the index is in use (its reader holds it)
    except FileNotFoundError as e:
        raise IndexFormatError(f"{path}: no compiled index yet: run `appliance lists compile`") from e
    except OSError as e:
        raise IndexFormatError(f"{path}: cannot open the compiled index: {e.strerror}") from e
    try:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise IndexFormatError(f"{path}: empty file")
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        f.close()
        raise IndexFormatError(f"{path}: cannot open the compiled index: {e.strerror}") from e
    except IndexFormatError:
        f.close()
        raise
    try:
        return FilterIndex(memoryview(mapped), verify=verify, read=_reader(f))
    except IndexFormatError as e:
        f.close()
        raise IndexFormatError(f"{path}: {e}") from e


def _reader(f: BinaryIO) -> Callable[[int, int], bytes]:
    """`pread` on `f`'s file, which stays open as long as the reader is referenced."""
    fd = f.fileno()
    pread = os.pread

    def read(offset: int, length: int, _file: BinaryIO = f) -> bytes:
        return pread(fd, length, offset)

    return read
