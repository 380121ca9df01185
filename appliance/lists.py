"""Reading list sources (files, UT1 folders, archives, URLs), compiling them, and writing the index
atomically.

The last good copy of every source but a UT1 folder is kept under `data_dir/lists/` (an archive is
kept as the archive): a source that comes back as an HTML page, binary data, a hostile or damaged
archive, or not at all is reported as rejected and its last good copy is compiled instead, so a broken
download never empties a category. Downloads are `appliance.fetch`'s; archives `appliance.archives`'.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from appliance.archives import SNIFF, ArchiveLimits, CheckedArchive, check_archive, same_file
from appliance.config import HEAD_OFFICE_PREFIX, Config
from appliance.fetch import Downloader, Fetched, summary_with
from appliance.files import fsync_path, write_atomically
from appliance.memory import give_freed_memory_back
from appliance.storage import install_index
from filters.adblock import parse_adblock
from filters.compile import IndexBuilder
from filters.errors import ApplianceError, FilterError, SourceRejected
from filters.formats import (
    parse_adblock_dns,
    parse_domains,
    parse_expressions,
    parse_hosts,
    parse_ut1_urls,
    parse_ut1_usage,
)
from filters.host_table import ALLOW
from filters.index import SourceInfo
from filters.phrases import parse_phrase_list
from filters.report import FetchOutcome, FetchSummary, ReportBuilder, SkippedLine, SourceReport
from filters.sources import Format, Source
from filters.text import decode_lines, decode_list

UT1_FILES = ("domains", "urls", "expressions")
UT1_USAGE = "usage"
REPORT_NAME = "report.json"  # beside the compiled index: what the last compile found, for the dashboard

log = logging.getLogger(__name__)


class CompileError(ApplianceError):
    """Nothing usable came out of the sources: the index in force is left as it was."""


@dataclass(frozen=True)
class CompileResult:
    """What `compile_lists` did."""

    reports: tuple[SourceReport, ...]
    index_path: Path
    index_bytes: int
    seconds: float


def _read_file(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SourceRejected(name, f"cannot read {path}: {e.strerror}") from e


MAX_LINE = 64 * 1024  # bytes: far longer than any entry; a longer line is never held whole


def _read_lines(
    stream: IO[bytes], source_name: str, where: str, report: ReportBuilder, origin: str
) -> Iterator[bytes]:
    """The lines of `stream`, each at most MAX_LINE bytes: a longer one is read past, never held whole,
    and counted as skipped (an empty line in its place keeps the line numbers). A read that fails (a
    disk error, an archive damaged since its check) is SourceRejected, so the source's last good copy
    is compiled instead."""
    number = 0
    try:
        while line := stream.readline(MAX_LINE):
            number += 1
            if len(line) == MAX_LINE and not line.endswith(b"\n"):
                length = len(line)
                while (more := stream.readline(MAX_LINE)) and not more.endswith(b"\n"):
                    length += len(more)
                length += len(more)
                report.skip(origin, number, f"a line of {length:,} bytes: too long to be an entry")
                line = b"\n"
            yield line
    except (OSError, EOFError, zlib.error, tarfile.TarError, zipfile.BadZipFile) as e:
        raise SourceRejected(source_name, f"cannot read {where}: {e}") from e


def _opened(folder: Path, names: Iterable[str], source_name: str) -> Iterator[tuple[str, IO[bytes]]]:
    """The files `names` of `folder` as binary streams, one open at a time (each closed when the next is
    asked for), to be read a line at a time."""
    for name in names:
        try:
            f = open(folder / name, "rb")  # noqa: SIM115 - closed below, once the caller has read it
        except OSError as e:
            raise SourceRejected(source_name, f"cannot read {folder / name}: {e.strerror}") from e
        with f:
            yield name, f


@dataclass(frozen=True)
class _Copy:
    """A copy of a source on local disk that passed its checks, ready to parse: a list file, a UT1
    folder, or an archive with the members (for ut1, the folders) to read from it."""

    path: Path
    archive: CheckedArchive | None = None
    picked: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Outcome:
    problem: str | None  # why the source was rejected (its last good copy standing in, if it has one)
    fetch: FetchSummary | None


def _split(member: str) -> tuple[str, str]:
    """`adult/domains` -> (`adult/`, `domains`)."""
    folder, _, base = member.rpartition("/")
    return (f"{folder}/" if folder else ""), base


def _listing(archive: CheckedArchive) -> str:
    names = list(archive.files)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5:,} more" if len(names) > 5 else "")
    return f"it holds {shown}" if names else "it holds no file"


class _SourceReader:
    """Checks and reads copies of sources; keeps the last copy of each that gave entries, to stand in
    for it, and downloads URL sources (`appliance.fetch`)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.downloader = Downloader(config.fetch, config.list_cache_dir)
        self.limits = ArchiveLimits(config.fetch.max_unpacked_bytes, config.fetch.max_ratio)

    def _cache(self, source: Source) -> Path:
        return self.config.list_cache_dir / source.name

    def check(self, source: Source, path: Path) -> _Copy:
        """A copy at `path`, checked whole. Raises SourceRejected saying why it is not the list."""
        if source.archive is not None:
            return self._check_archive(source, path)
        if source.format is Format.UT1:
            if not path.is_dir():
                raise SourceRejected(source.name, f"{path} is not a UT1 category folder")
            return _Copy(path)
        try:
            with open(path, "rb") as f:
                head = f.read(SNIFF)
        except OSError as e:
            raise SourceRejected(source.name, f"cannot read {path}: {e.strerror}") from e
        decode_list(source.name, head)  # refuses an HTML page, binary data, an archive
        return _Copy(path)

    def _check_archive(self, source: Source, path: Path) -> _Copy:
        assert source.archive is not None
        ut1 = source.format is Format.UT1
        wanted = set(source.members)

        def asked(name: str) -> bool:
            folder, base = _split(name)
            if ut1:
                return base in (*UT1_FILES, UT1_USAGE) and (not wanted or folder in wanted)
            return not wanted or name in wanted

        display = source.location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        archive = check_archive(
            path, source.archive, label=source.name, display=display, limits=self.limits, wanted=asked
        )
        picked = self._pick_folders(source, archive) if ut1 else self._pick_files(source, archive)
        to_read = (
            [n for folder in picked for n in archive.folder(folder).values() if asked(n)] if ut1 else picked
        )
        for name in to_read:
            try:
                decode_list(source.name, archive.files[name].head)
            except SourceRejected as e:  # an HTML page, binary data: the archive is refused whole
                raise SourceRejected(source.name, f"member {name}: {e.reason}") from e
        return _Copy(path, archive, tuple(picked))

    def _pick_files(self, source: Source, archive: CheckedArchive) -> list[str]:
        if source.members:
            missing = [m for m in source.members if m not in archive.files]
            if missing:
                raise SourceRejected(
                    source.name, f"no member {', '.join(missing)} in the archive ({_listing(archive)})"
                )
            return list(source.members)
        if len(archive.files) != 1:
            raise SourceRejected(
                source.name,
                f"{_listing(archive)}: name the file(s) to take in the source's members",
            )
        return list(archive.files)

    def _pick_folders(self, source: Source, archive: CheckedArchive) -> list[str]:
        folders = list(source.members) or sorted(
            {_split(n)[0] for n in archive.files if _split(n)[1] in UT1_FILES}
        )
        if not source.members and len(folders) != 1:
            raise SourceRejected(
                source.name,
                f"no UT1 category folder in the archive ({_listing(archive)})"
                if not folders
                else f"several UT1 category folders ({', '.join(folders[:5])}): name the one to take in "
                "the source's members",
            )
        for folder in folders:
            if not any(n in archive.folder(folder) for n in UT1_FILES):
                raise SourceRejected(
                    source.name,
                    f"no member {folder}{{{','.join(UT1_FILES)}}} in the archive ({_listing(archive)})",
                )
        return folders

    def has_last_good(self, source: Source) -> bool:
        # A head-office list never stands in for itself: a bundle is taken whole or not at all, and a
        # copy kept from a bundle later refused must not come back in another.
        return not source.name.startswith(HEAD_OFFICE_PREFIX) and self._cache(source).exists()

    def last_good(self, source: Source) -> _Copy:
        return self.check(source, self._cache(source))

    def keep(self, source: Source, copy: _Copy, fetched: Fetched[_Copy] | None) -> None:
        """Make `copy` the source's last good copy (an unchanged copy is not rewritten: SD-card wear)."""
        if source.name.startswith(HEAD_OFFICE_PREFIX) or (source.format is Format.UT1 and not source.archive):
            return
        if fetched is not None:
            self.downloader.keep(source, fetched)
            return
        cache = self._cache(source)
        if same_file(cache, copy.path):
            return
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        try:
            shutil.copyfile(copy.path, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, cache)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_path(cache.parent)

    def close(self) -> None:
        self.downloader.close()


def _origin(source: Source) -> str:
    return Path(source.location).name if not source.is_url else source.location


def _parse_lines(
    source: Source, sid: int, builder: IndexBuilder, lines: Iterable[str], report: ReportBuilder, origin: str
) -> None:
    if source.format is Format.HOSTS:
        builder.add_hosts(sid, parse_hosts(lines, origin, report))
    elif source.format is Format.DOMAINS:
        builder.add_hosts(sid, parse_domains(lines, origin, report))
    elif source.format is Format.ADBLOCK_DNS:
        builder.add_hosts(sid, parse_adblock_dns(lines, origin, report))
    elif source.format is Format.ADBLOCK:
        builder.add_network_rules(sid, parse_adblock(lines, origin, report))
    elif source.format is Format.PHRASES:
        builder.add_phrases(
            parse_phrase_list(
                list(lines), origin, report, category=source.category, include=_include_reader(source)
            )
        )


def _load(source: Source, sid: int, copy: _Copy, builder: IndexBuilder, report: ReportBuilder) -> None:
    """Parse a checked copy into the builder."""
    archive = copy.archive
    if archive is None and source.format is Format.UT1:
        _parse_ut1_folder(source, sid, copy.path, builder, report)
    elif archive is None:
        for _, stream in _opened(copy.path.parent, [copy.path.name], source.name):
            origin = _origin(source)
            raw = _read_lines(stream, source.name, str(copy.path), report, origin)
            _parse_lines(source, sid, builder, decode_lines(source.name, raw), report, origin)
    elif source.format is Format.UT1:
        for folder in copy.picked:
            files = archive.folder(folder)
            usage = None
            if UT1_USAGE in files:
                member = archive.files[files[UT1_USAGE]]
                usage = member.head
                if member.size > SNIFF:
                    usage = dict(archive.read([member.name]))[member.name]
            present = [files[n] for n in UT1_FILES if n in files]
            contents = ((_split(name)[1], stream) for name, stream in archive.streams(present))
            label = folder.rstrip("/").rpartition("/")[2] or source.name
            where = f"{folder or 'the top'} of the archive"
            _parse_ut1(source, sid, builder, report, label=label, where=where, usage=usage, contents=contents)
    else:
        for name, stream in archive.streams(copy.picked):
            raw = _read_lines(stream, source.name, f"{name} in {copy.path.name}", report, name)
            _parse_lines(source, sid, builder, decode_lines(f"{source.name}/{name}", raw), report, name)


def _parse_source(
    source: Source, sid: int, builder: IndexBuilder, reader: _SourceReader, report: ReportBuilder
) -> _Outcome:
    """Parse one source into the builder; says why, if its last good copy had to stand in (or, with
    none, why it is left out).

    The copy stands in when the source cannot be read or downloaded, is not a list (HTML, binary, a
    hostile archive), or gives no entry at all; a source that gives entries becomes the new last good
    copy.
    """
    if source.format is Format.UT1 and source.archive is None:  # a folder, read where it is
        _load(source, sid, reader.check(source, Path(source.location)), builder, report)
        return _Outcome(None, None)
    fetched: Fetched[_Copy] | None = None
    summary: FetchSummary | None = None
    mark = builder.mark()
    try:
        if source.is_url:
            fetched = reader.downloader.fetch(source, lambda path: reader.check(source, path))
            summary = fetched.summary
            if fetched.checked is None:
                raise SourceRejected(source.name, summary.reason or "download failed")
            copy = fetched.checked
        else:
            copy = reader.check(source, Path(source.location))
        probe = ReportBuilder(source.name)
        _load(source, sid, copy, builder, probe)
        if probe.entries or not reader.has_last_good(source):
            report.merge(probe)
            if probe.entries:
                try:
                    reader.keep(source, copy, fetched)
                except (
                    OSError,
                    ApplianceError,
                ) as e:  # the entries are compiled all the same; the old copy stays
                    why = e.strerror if isinstance(e, OSError) else str(e)
                    report.warn(f"{source.name}: could not keep it as the last good copy: {why}")
            return _Outcome(None, summary)
        first = f", first: {probe.first_skipped[0]}" if probe.first_skipped else ""
        problem = f"no valid entries ({probe.skipped:,} lines skipped{first})"
        if summary is not None:
            summary = summary_with(summary, problem)
    except SourceRejected as e:
        problem = e.reason
        builder.rollback(mark)  # what was read before the copy failed half-way is not kept
    finally:
        if fetched is not None:
            reader.downloader.discard(fetched)
    if not reader.has_last_good(source):
        return _Outcome(problem, summary)
    try:
        copy = reader.last_good(source)
    except SourceRejected as e:
        return _Outcome(f"{problem}; its last good copy is refused too: {e.reason}", summary)
    report.warn(f"{source.name}: {problem}; compiled its last good copy instead")
    _load(source, sid, copy, builder, report)
    return _Outcome(problem, summary)


def _include_reader(source: Source) -> Callable[[str], tuple[str, Sequence[str]]] | None:
    """e2guardian `.Include<path>`: paths relative to the including list's folder; local files only."""
    if source.is_url or source.archive is not None:
        return None
    base = Path(source.location).parent

    def read(target: str) -> tuple[str, Sequence[str]]:
        path = (base / target).resolve()
        return path.name, decode_list(path.name, _read_file(path, source.name))

    return read


def _parse_ut1_folder(
    source: Source, sid: int, folder: Path, builder: IndexBuilder, report: ReportBuilder
) -> None:
    usage = folder / UT1_USAGE
    present = [name for name in UT1_FILES if (folder / name).exists()]
    if not present:
        raise SourceRejected(source.name, f"{folder} has none of {', '.join(UT1_FILES)}")
    contents = _opened(folder, present, source.name)
    _parse_ut1(
        source,
        sid,
        builder,
        report,
        label=folder.name,
        where=str(folder),
        usage=_read_file(usage, source.name) if usage.exists() else None,
        contents=contents,
    )


def _parse_ut1(
    source: Source,
    sid: int,
    builder: IndexBuilder,
    report: ReportBuilder,
    *,
    label: str,
    where: str,
    usage: bytes | None,
    contents: Iterable[tuple[str, IO[bytes]]],
) -> None:
    """A UT1 category: its `usage` (black or white) and its `domains`, `urls`, `expressions`, read one
    at a time from `contents` (name, stream), a line at a time: `adult/domains` alone is 4.6 million
    lines."""
    white = parse_ut1_usage(decode_list(source.name, usage), UT1_USAGE) if usage is not None else None
    if white is None:
        report.warn(f"{source.name}: no black/white usage file in {where}; taken as a blacklist")
    flags = ALLOW if white else 0
    for name, stream in contents:
        origin = f"{label}/{name}"
        raw = _read_lines(stream, source.name, f"{where}: {name}", report, origin)
        lines = decode_lines(f"{source.name}/{name}", raw)
        if name == "domains":
            builder.add_hosts(sid, parse_domains(lines, origin, report, flags=flags))
        elif name == "urls":
            builder.add_url_prefixes(sid, parse_ut1_urls(lines, origin, report, flags=flags))
        else:
            builder.add_expressions(sid, parse_expressions(lines, origin, report, flags=flags))


def compile_lists(config: Config, *, now: datetime) -> CompileResult:
    """Compile every configured source into the index file, replacing it atomically.

    A rejected source is reported and left out (or its last good copy used); if no source yields a
    single entry, CompileError is raised and the index in force is not touched. One compile at a time
    per index: a second (the nightly timer meeting a sync, a compile by hand) waits for the first, so
    the two never share a download's part file or the last good copies.
    """
    with _compile_lock(config.index_path):
        return _compile(config, now=now)


@contextmanager
def _compile_lock(index: Path) -> Iterator[None]:
    index.parent.mkdir(parents=True, exist_ok=True)
    path = index.with_name(f".{index.name}.compile.lock")
    lock: IO[bytes]
    try:
        lock = open(path, "a+b")  # noqa: SIM115 - closed below
    except PermissionError:
        lock = open(path, "rb")  # noqa: SIM115 - made by another user (a compile run as root): locks as well
    with lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another list compile is running for %s: waiting for it to end", index)
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield  # (the lock ends with the file's closing)


def _compile(config: Config, *, now: datetime) -> CompileResult:
    started = time.perf_counter()
    builder = IndexBuilder()
    reader = _SourceReader(config)
    for source in config.sources:
        builder.add_source(SourceInfo(source.name, source.category, source.format.value, source.location))
    found: dict[int, SourceReport] = {}
    # Adblock lists first, compiled at once and let go, then the domain lists (millions of entries):
    # the two are never in memory together (a 1 GB Pi, docs/raspberry-pi.md).
    adblock = [i for i, s in enumerate(config.sources) if s.format is Format.ADBLOCK]
    others = [i for i, s in enumerate(config.sources) if s.format is not Format.ADBLOCK]
    try:
        for group in (adblock, others):
            for sid in group:
                source = config.sources[sid]
                report = ReportBuilder(source.name)
                mark = builder.mark()
                try:
                    outcome = _parse_source(source, sid, builder, reader, report)
                except FilterError as e:
                    builder.rollback(mark)  # a source left out leaves no entries behind ...
                    reason = e.reason if isinstance(e, SourceRejected) else str(e)
                    found[sid] = ReportBuilder(source.name).freeze(rejected=reason)  # ... and counts none
                    continue
                found[sid] = report.freeze(rejected=outcome.problem, fetch=outcome.fetch)
            builder.finish_network_rules()
            give_freed_memory_back()  # what the adblock compile, then the parsing, used and let go
    finally:
        reader.close()
    reports = [found[sid] for sid in range(len(config.sources))]
    if config.sources and not any(r.entries for r in reports):
        raise CompileError("no source gave a single entry: the index in force was left unchanged")
    parts = builder.build_parts(created=now.isoformat(timespec="seconds"))
    size = sum(memoryview(part).nbytes for part in parts)
    install_index(config.index_path, parts)  # (the previous good one kept; DiskFull if no room)
    del parts
    result = CompileResult(tuple(reports), config.index_path, size, time.perf_counter() - started)
    _write_report(config, result, now, reader)
    return result


@dataclass(frozen=True)
class CompiledSource:
    """One source as the last compile found it: where it is from, and when its entries were read."""

    report: SourceReport
    category: str
    format: str
    location: str
    updated: str | None  # ISO time its entries were last read (the last good copy's, if it stood in)


@dataclass(frozen=True)
class CompileReport:
    """What the compile that made the index in force found, read back from `report.json`."""

    compiled: str  # ISO time
    index_bytes: int
    seconds: float
    sources: tuple[CompiledSource, ...]


def report_path(config: Config) -> Path:
    return config.index_path.parent / REPORT_NAME


def _write_report(config: Config, result: CompileResult, now: datetime, reader: _SourceReader) -> None:
    """Keep what this compile found beside the index (atomically, written after it)."""
    compiled = now.isoformat(timespec="seconds")
    sources = []
    for source, report in zip(config.sources, result.reports, strict=True):
        updated: str | None = compiled
        if report.rejected:
            cache = reader._cache(source)
            updated = (
                datetime.fromtimestamp(cache.stat().st_mtime, now.tzinfo).isoformat(timespec="seconds")
                if report.entries and cache.exists()
                else None
            )
        sources.append(
            {
                "source": report.source,
                "category": source.category,
                "format": source.format.value,
                "location": source.location,
                "updated": updated,
                "entries": report.entries,
                "skipped": report.skipped,
                "rejected": report.rejected,
                "first_skipped": [
                    {"origin": s.origin, "line": s.line, "reason": s.reason} for s in report.first_skipped
                ],
                "skipped_by_reason": [list(pair) for pair in report.skipped_by_reason],
                "warnings": list(report.warnings),
                "fetch": None if report.fetch is None else _fetch_json(report.fetch),
            }
        )
    data = {
        "compiled": compiled,
        "index_bytes": result.index_bytes,
        "seconds": round(result.seconds, 3),
        "sources": sources,
    }
    write_atomically(report_path(config), json.dumps(data, indent=1).encode("utf-8"))


def _fetch_json(summary: FetchSummary) -> dict[str, object]:
    return {
        "outcome": summary.outcome.value,
        "url": summary.url,
        "from_mirror": summary.from_mirror,
        "bytes_fetched": summary.bytes_fetched,
        "attempts": summary.attempts,
        "reason": summary.reason,
        "mirror_problem": summary.mirror_problem,
    }


def _fetch_read(data: dict[str, object] | None) -> FetchSummary | None:
    """A source's download as `_fetch_json` wrote it; None from a report written before there was one."""
    if data is None:
        return None
    return FetchSummary(
        outcome=FetchOutcome(str(data["outcome"])),
        url=str(data["url"]),
        from_mirror=bool(data["from_mirror"]),
        bytes_fetched=int(str(data["bytes_fetched"])),
        attempts=int(str(data["attempts"])),
        reason=None if data.get("reason") is None else str(data["reason"]),
        mirror_problem=None if data.get("mirror_problem") is None else str(data["mirror_problem"]),
    )


def read_compile_report(config: Config) -> CompileReport | None:
    """The report of the compile that made the index in force; None if there is none (or it is damaged)."""
    path = report_path(config)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        sources = tuple(
            CompiledSource(
                SourceReport(
                    source=str(s["source"]),
                    entries=int(s["entries"]),
                    skipped=int(s["skipped"]),
                    first_skipped=tuple(
                        SkippedLine(str(k["origin"]), int(k["line"]), str(k["reason"]))
                        for k in s["first_skipped"]
                    ),
                    warnings=tuple(str(w) for w in s["warnings"]),
                    rejected=None if s["rejected"] is None else str(s["rejected"]),
                    skipped_by_reason=tuple((str(r), int(n)) for r, n in s["skipped_by_reason"]),
                    fetch=_fetch_read(s.get("fetch")),
                ),
                str(s["category"]),
                str(s["format"]),
                str(s["location"]),
                None if s["updated"] is None else str(s["updated"]),
            )
            for s in data["sources"]
        )
        return CompileReport(str(data["compiled"]), int(data["index_bytes"]), float(data["seconds"]), sources)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("compile report %s is unreadable (%s); compile the lists again", path, e)
        return None
