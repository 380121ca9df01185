"""Archive list sources (`.tar.gz`, `.tgz`, `.gz`, `.zip`): checked whole, then read member by member.

An archive is refused whole (`SourceRejected`, so the source's last good copy stays) when any member is
a path out of the archive (`../`, an absolute path), a link (symbolic or hard), a device file, a fifo or
a sparse file; when a member is named twice; when it holds more than `MAX_MEMBERS` members; when it
unpacks to more than `max_unpacked_bytes`, or to more than `max_ratio` times its own size (an archive
bomb; archives that unpack to less than `RATIO_FLOOR` are not held to the ratio, as a tar's padding alone
compresses 100:1); when it is damaged or truncated (every byte is decompressed and checksummed before a
line is used); or when it is not an archive at all (an HTML page served under an archive's name).

Nothing is extracted to disk: members are read into memory by name, one at a time, and a member's name
is never made into a file path, only compared with the members asked for. The checks run in one pass
over the archive before any content is used, with the decompressed stream counted as it comes so a bomb
is stopped at the cap, not after it.

Why the standard library is enough: `tarfile`, `zipfile` and `gzip` read every archive list publishers
use (UT1's per-category `.tar.gz`, zipped hosts files, gzipped lists), stream their contents, and
`zipfile` already stops each member at its declared size and checks its CRC. What makes an archive
hostile is decided by the checks above, which would be ours to write around any unpacker; a third-party
one (libarchive bindings and the like) would add a compiled dependency for formats no list uses.
`tarfile.data_filter` (Python's own extraction guard) is applied to every tar member as a second check
where Python has it (3.11.4 and later; Debian 12's 3.11.2 does not: our own checks are the whole guard).
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from appliance.config.lists import member_path
from filters.errors import SourceRejected
from filters.text import decode_list

SNIFF = 4096  # bytes of each member kept from the check, to tell a list from an HTML page or binary data
MAX_MEMBERS = 10_000  # UT1's whole blacklist archive has a few hundred
RATIO_FLOOR = 1024 * 1024
_CHUNK = 1 << 16
_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")  # Python 3.11.4 and later


@dataclass(frozen=True)
class ArchiveLimits:
    """How far an archive may unpack (`lists.fetch.max_unpacked_mb` and `max_ratio`)."""

    max_unpacked_bytes: int = 1024 * 1024 * 1024
    max_ratio: int = 200


@dataclass(frozen=True)
class Member:
    """A file in a checked archive: its path in the archive, its size, and its first `SNIFF` bytes
    (all of it, when it is that small) if it was asked for."""

    name: str
    size: int
    head: bytes


def same_file(a: Path, b: Path) -> bool:
    """Do the two files hold the same bytes? (False when either is missing.)"""
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                chunk = fa.read(_CHUNK)
                if chunk != fb.read(_CHUNK):
                    return False
                if not chunk:
                    return True
    except FileNotFoundError:
        return False


class CheckedArchive:
    """An archive that passed every check; its files can be read by name (`files` lists them)."""

    def __init__(
        self, path: Path, kind: str, budget: _Budget, files: Mapping[str, Member], data: bytes | None
    ) -> None:
        self.path = path
        self.kind = kind
        self.label = budget.label
        self._budget = budget
        self.files = dict(files)  # name -> Member, in archive order
        self._data = data  # a .gz's one file, decompressed by the check

    def folder(self, folder: str) -> dict[str, str]:
        """The files directly in `folder` (`"adult/"`): their base name -> member name."""
        return {
            name[len(folder) :]: name
            for name in self.files
            if name.startswith(folder) and "/" not in name[len(folder) :]
        }

    def read(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """The contents of the named files, one at a time, in archive order (one pass over a tar)."""
        for name, stream in self.streams(names):
            try:
                yield name, stream.read()
            except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
                raise SourceRejected(self.label, f"cannot read the archive again: {e}") from e

    def streams(self, names: Iterable[str]) -> Iterator[tuple[str, IO[bytes]]]:
        """The named files as binary streams, one at a time, in archive order (one pass over a tar):
        each is read from the archive as it is consumed (UT1's `adult/domains` is 4.6 million lines,
        never held whole) and is usable only until the next is asked for."""
        wanted = set(names)
        unknown = wanted - self.files.keys()
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))
        try:
            if self.kind == ".gz":
                assert self._data is not None
                yield next(iter(self.files)), io.BytesIO(self._data)
            elif self.kind == ".zip":
                with zipfile.ZipFile(self.path) as archive:
                    for entry in archive.infolist():
                        name = member_path(entry.filename)
                        if name in wanted:
                            with archive.open(entry) as member:
                                yield name, member
            else:
                with (
                    _gunzip(self.path, self._budget) as stream,
                    tarfile.open(fileobj=stream, mode="r|") as tar,
                ):
                    for info in tar:
                        name = member_path(info.name)
                        if name in wanted:
                            wanted.discard(name)
                            extracted = tar.extractfile(info)
                            assert extracted is not None  # a regular file, as the check found
                            yield name, extracted
                            if not wanted:
                                return
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
            # Only a disk failure gets here: the same bytes passed the check.
            raise SourceRejected(self.label, f"cannot read the archive again: {e}") from e


def check_archive(
    path: Path,
    kind: str,
    *,
    label: str,
    display: str,
    limits: ArchiveLimits,
    wanted: Callable[[str], bool],
) -> CheckedArchive:
    """Check the archive at `path` (of `kind`: ".tar.gz", ".tgz", ".zip" or ".gz") whole, keeping the
    first bytes of the files `wanted` says are asked for. `display` is the archive's own file name (a
    `.gz` holds that name without `.gz`). Raises SourceRejected (source `label`) saying why."""
    try:
        compressed = path.stat().st_size
    except OSError as e:
        raise SourceRejected(label, f"cannot read {path}: {e.strerror}") from e
    budget = _Budget.of(label, compressed, limits)
    try:
        if kind == ".zip":
            files, data = _check_zip(path, budget, wanted), None
        elif kind == ".gz":
            files, data = _check_gz(path, budget, display)
        else:
            files, data = _check_tar(path, budget, wanted), None
    except SourceRejected:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError) as e:
        raise SourceRejected(label, _not_an_archive(path, kind, e)) from e
    return CheckedArchive(path, kind, budget, files, data)


@dataclass(frozen=True)
class _Budget:
    """How many bytes one archive of source `label` may unpack to, and why that many."""

    label: str
    bytes: int
    limits: ArchiveLimits

    @classmethod
    def of(cls, label: str, compressed: int, limits: ArchiveLimits) -> _Budget:
        ratio = max(limits.max_ratio * compressed, RATIO_FLOOR)
        return cls(label, min(limits.max_unpacked_bytes, ratio), limits)

    def refusal(self) -> SourceRejected:
        if self.bytes >= self.limits.max_unpacked_bytes:
            mb = self.limits.max_unpacked_bytes / (1024 * 1024)
            return SourceRejected(
                self.label, f"unpacks to more than {mb:,.0f} MB (lists.fetch.max_unpacked_mb)"
            )
        return SourceRejected(
            self.label,
            f"unpacks to more than {self.limits.max_ratio} times its size (lists.fetch.max_ratio): "
            "an archive bomb?",
        )


def _not_an_archive(path: Path, kind: str, error: BaseException) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF)
    except OSError:
        head = b""
    try:
        decode_list("", head)
    except SourceRejected as e:
        if e.reason.startswith("an HTML page"):
            return f"an HTML page, not a {kind} archive (a login or error page served instead?)"
    if isinstance(error, zipfile.BadZipFile) and "not a zip file" in str(error):
        return "not a .zip archive, or a truncated one (the directory at its end is missing)"
    if isinstance(error, EOFError) or "truncated" in str(error) or "unexpected end" in str(error):
        return f"a truncated {kind} archive ({error})"
    return f"not a usable {kind} archive: {error}"


class _Bounded(io.BufferedIOBase):
    """A read-only stream that refuses to give more than `limit` bytes of what it wraps."""

    def __init__(self, raw: io.BufferedIOBase, budget: _Budget) -> None:
        super().__init__()
        self._raw = raw
        self._budget = budget
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        room = self._budget.bytes - self.count + 1
        data = self._raw.read(room if size is None or size < 0 else min(size, room))
        self.count += len(data)
        if self.count > self._budget.bytes:
            raise self._budget.refusal()
        return data

    def drain(self) -> None:
        """Read to the end: a gzip stream's checksum and length are checked only there."""
        while self.read(_CHUNK):
            pass


@contextmanager
def _gunzip(path: Path, budget: _Budget) -> Iterator[_Bounded]:
    """The decompressed stream of a gzip file, refusing to give more than the budget."""
    with open(path, "rb") as f, gzip.GzipFile(fileobj=f, mode="rb") as unzipped:
        yield _Bounded(unzipped, budget)


def _named(label: str, raw: str) -> str:
    try:
        return member_path(raw)
    except ValueError as e:
        raise SourceRejected(label, f"member {e}: refused whole") from e


def _add(files: dict[str, Member], label: str, member: Member) -> None:
    if member.name in files:
        raise SourceRejected(label, f"member {member.name!r} is in the archive twice: refused whole")
    if len(files) >= MAX_MEMBERS:
        raise SourceRejected(label, f"more than {MAX_MEMBERS:,} files: not a list archive")
    files[member.name] = member


def _check_tar(path: Path, budget: _Budget, wanted: Callable[[str], bool]) -> dict[str, Member]:
    label = budget.label
    files: dict[str, Member] = {}
    seen = 0
    with _gunzip(path, budget) as stream:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                seen += 1
                if seen > MAX_MEMBERS:
                    raise SourceRejected(label, f"more than {MAX_MEMBERS:,} members: not a list archive")
                name = _named(label, info.name)
                _check_tar_type(label, info)
                if _HAS_DATA_FILTER:
                    try:
                        # Python's own extraction guard, as a second opinion (nothing is extracted).
                        tarfile.data_filter(info, "/nonexistent-destination")
                    except tarfile.FilterError as e:
                        raise SourceRejected(label, f"member {info.name!r}: {e}: refused whole") from e
                if info.isdir():
                    continue
                head = b""
                if wanted(name):
                    extracted = tar.extractfile(info)
                    assert extracted is not None
                    head = extracted.read(SNIFF)
                _add(files, label, Member(name, info.size, head))
        stream.drain()
    return files


def _check_tar_type(label: str, info: tarfile.TarInfo) -> None:
    what = None
    if info.issym():
        what = f"a symbolic link to {info.linkname!r}"
    elif info.islnk():
        what = f"a hard link to {info.linkname!r}"
    elif info.ischr() or info.isblk():
        what = "a device file"
    elif info.isfifo():
        what = "a fifo"
    elif info.issparse():
        what = "a sparse file (it unpacks to more than it holds)"
    elif not (info.isreg() or info.isdir()):
        what = f"of an unknown kind (tar type {info.type!r})"
    if what:
        raise SourceRejected(label, f"member {info.name!r} is {what}: refused whole")


def _check_zip(path: Path, budget: _Budget, wanted: Callable[[str], bool]) -> dict[str, Member]:
    label = budget.label
    files: dict[str, Member] = {}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise SourceRejected(label, f"more than {MAX_MEMBERS:,} members: not a list archive")
        # zipfile stops every member at its declared size: the declared sizes bound what comes out.
        if sum(info.file_size for info in infos) > budget.bytes:
            raise budget.refusal()
        for info in infos:
            name = _named(label, info.filename)
            # A Unix zip keeps the file's mode in the high half (type bits may be left out, as Python's
            # zipfile does); other systems keep their own attributes there, and have no links.
            kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
            if kind == stat.S_IFLNK:
                raise SourceRejected(label, f"member {info.filename!r} is a symbolic link: refused whole")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise SourceRejected(
                    label, f"member {info.filename!r} is a device file or fifo: refused whole"
                )
            if info.flag_bits & 0x1:
                raise SourceRejected(label, f"member {info.filename!r} is encrypted")
            if info.is_dir():
                continue
            head = b""
            if wanted(name):
                with archive.open(info) as member:
                    head = member.read(SNIFF)
                    while member.read(_CHUNK):  # to its end: the CRC is checked there
                        pass
            _add(files, label, Member(name, info.file_size, head))
    return files


def _check_gz(path: Path, budget: _Budget, display: str) -> tuple[dict[str, Member], bytes]:
    chunks = []
    with _gunzip(path, budget) as stream:
        while chunk := stream.read(_CHUNK):
            chunks.append(chunk)
    data = b"".join(chunks)
    name = display[: -len(".gz")] if display.lower().endswith(".gz") else display
    name = os.path.basename(name) or "list"
    return {name: Member(name, len(data), data[:SNIFF])}, data
