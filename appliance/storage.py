"""The compiled index on disk, which must survive power cuts, full disks and careless hands: the
memory-mapped index, checked whole, and the previous good one kept beside it (atomic writes and a full
disk are appliance/files.py's).

The compiled index is mapped by every DNS, proxy and dashboard process. A mapped file cannot be changed
in place safely: truncated, a process reading it gets SIGBUS and dies; overwritten, it reads another
file through offsets read from the old one. No process can survive that, so the file is made hard to
damage (a new index is written beside it and renamed over it, never written in place, and it is
read-only, 0444) and a process that starts or reloads checks it whole (size, header, checksum) and, when
it fails, serves the previous good index (`filters.idx.previous`) instead of failing to start.
"""

from __future__ import annotations

import logging
import mmap
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO
from zlib import crc32

from appliance.files import Data, fsync_path, remove_quietly, size_of, write_error, write_new
from filters.errors import IndexFormatError
from filters.index import PREFIX_BYTES, FilterIndex, header_end, read_header

log = logging.getLogger(__name__)

INDEX_MODE = 0o444  # the served index: no one writes it in place, not even its owner by mistake
PREVIOUS_SUFFIX = ".previous"
_CHUNK = 1 << 20


# ---- the compiled index ----


def previous_index(path: Path) -> Path:
    """Where the previous good index of the one at `path` is kept."""
    return path.with_name(path.name + PREVIOUS_SUFFIX)


# Versions of index files (device, inode, size, modification time) whose checksum this process has
# checked: a reload that finds the same file does not read it again.
_VERIFIED: set[tuple[int, int, int, int]] = set()


def _check_fd(fd: int, path: Path) -> Mapping[str, Any]:
    """Check the index open as `fd` whole: its header, its size, and its body's checksum (read with
    pread, not through a mapping: the pages stay out of this process). Returns its header."""
    st = os.fstat(fd)
    if st.st_size == 0:
        raise IndexFormatError(f"{path}: empty file")
    prefix = os.pread(fd, PREFIX_BYTES, 0)
    try:
        header, body = read_header(os.pread(fd, header_end(prefix), 0))
    except IndexFormatError as e:
        raise IndexFormatError(f"{path}: {e}") from e
    expected = body + int(header["body_length"])
    if st.st_size != expected:
        cut = "truncated" if st.st_size < expected else "of the wrong size"
        raise IndexFormatError(f"{path}: compiled index {cut}: {st.st_size} bytes, expected {expected}")
    stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if stamp in _VERIFIED:
        return header
    crc, offset = 0, body
    while chunk := os.pread(fd, _CHUNK, offset):
        crc = crc32(chunk, crc)
        offset += len(chunk)
    if offset != expected or crc != header["body_crc32"]:
        raise IndexFormatError(f"{path}: compiled index damaged: body checksum mismatch")
    if len(_VERIFIED) >= 64:
        _VERIFIED.clear()
    _VERIFIED.add(stamp)
    return header


def check_index(path: Path) -> Mapping[str, Any]:
    """Check the compiled index at `path` whole (as `open_index` does) without mapping it; its header.
    Raises IndexFormatError naming the file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as e:
        raise IndexFormatError(f"{path}: no compiled index yet: run `appliance lists compile`") from e
    except OSError as e:
        raise IndexFormatError(f"{path}: cannot open the compiled index: {e.strerror}") from e
    try:
        return _check_fd(fd, path)
    finally:
        os.close(fd)


def _map(path: Path, *, verify: bool) -> FilterIndex:
    """Map the index at `path` and keep its file open for the host table, which is read with `pread`
    (filters/host_table.py says why)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - open as long as the index is in use (its reader holds it)
    except FileNotFoundError as e:
        raise IndexFormatError(f"{path}: no compiled index yet: run `appliance lists compile`") from e
    except OSError as e:
        raise IndexFormatError(f"{path}: cannot open the compiled index: {e.strerror}") from e
    try:
        if verify:
            _check_fd(f.fileno(), path)  # the very file mapped next, whatever is renamed meanwhile
        elif os.fstat(f.fileno()).st_size == 0:
            raise IndexFormatError(f"{path}: empty file")
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return FilterIndex(memoryview(mapped), read=_reader(f))
    except OSError as e:
        f.close()
        raise IndexFormatError(f"{path}: cannot open the compiled index: {e.strerror}") from e
    except IndexFormatError as e:
        f.close()
        if str(e).startswith(str(path)):  # (from _check_fd, which names the file)
            raise
        raise IndexFormatError(f"{path}: {e}") from e


def _reader(f: BinaryIO) -> Callable[[int, int], bytes]:
    """`pread` on `f`'s file, which stays open as long as the reader is referenced."""
    fd = f.fileno()
    pread = os.pread

    def read(offset: int, length: int, _file: BinaryIO = f) -> bytes:
        return pread(fd, length, offset)

    return read


def open_index(path: Path, *, verify: bool = True, fallback: bool = True) -> FilterIndex:
    """Memory-map the compiled index at `path` read-only, checked whole first (`verify`: header, size
    and the body's checksum, read once per version of the file in this process). When it fails and
    `fallback`, the previous good index beside it (`previous_index`) is mapped instead and a warning
    says why. Raises IndexFormatError naming the file when no usable index is there."""
    try:
        return _map(path, verify=verify)
    except IndexFormatError as e:
        previous = previous_index(path)
        if not fallback or not previous.is_file():
            raise
        try:
            index = _map(previous, verify=True)
        except IndexFormatError as again:
            raise IndexFormatError(f"{e}; the previous index is no better: {again}") from e
        log.warning(
            "%s; serving the previous good index %s (compiled %s) until a compile makes a new one",
            e,
            previous,
            index.header.get("created", "at an unknown time"),
        )
        return index


def index_problem(path: Path) -> str | None:
    """What is wrong with the compiled index at `path` as a service starting now would find it, in words
    for staff, and what it would serve instead; None when it is sound or simply not compiled yet."""
    try:
        check_index(path)
        return None
    except IndexFormatError as e:
        problem = str(e)
    previous = previous_index(path)
    if not path.exists() and not previous.exists():
        return None  # never compiled: said elsewhere
    try:
        created = check_index(previous).get("created", "at an unknown time")
    except IndexFormatError:
        return f"{problem}, and there is no usable previous index: the DNS filter and the proxy cannot start"
    return (
        f"{problem}: the DNS filter and the proxy serve the previous good lists ({previous.name},"
        f" compiled {created}) until `appliance lists compile` makes new ones"
    )


def install_index(path: Path, blob: Data) -> None:
    """Make `blob` (bytes, or parts in order) the compiled index at `path`. It is written beside it,
    read-only (INDEX_MODE), made durable and renamed over it, so the file the services map is never
    written in place; the index it replaces becomes the previous good one (`previous_index`) if it
    passes its checks (a damaged one never does: the previous good one stays). Raises DiskFull, naming
    the file and the space, when the disk is full: the index in force and the previous one are then
    unchanged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    previous = previous_index(path)
    link = previous.with_name(f".{previous.name}.{os.getpid()}.tmp")
    try:
        try:
            write_new(tmp, blob, INDEX_MODE)
        except OSError as e:
            raise write_error(path, size_of(blob), e) from e
        keep = path.exists()
        if keep:
            try:
                check_index(path)
            except IndexFormatError as e:
                keep = False
                log.warning("%s: not kept as the previous good index (%s is kept)", e, previous.name)
        if keep:
            link.unlink(missing_ok=True)
            try:
                os.link(path, link)  # a second name for the same file: no copy, no space
                os.replace(link, previous)
            except OSError:
                # No hard link here (a file system without them; a file of another owner under
                # protected_hardlinks): moved instead. Until the rename below there is no current index,
                # and a service starting meanwhile serves this same one as the previous.
                os.replace(path, previous)
        os.replace(tmp, path)
    finally:
        remove_quietly(tmp, link)
    fsync_path(path.parent)
