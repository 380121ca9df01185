"""Reading list sources (files, UT1 folders, URLs), compiling them, and writing the index atomically.

The last good copy of every single-file source is kept under `data_dir/lists/`: a source that comes
back as an HTML page, binary data, or not at all is reported as rejected and its last good copy is
compiled instead, so a broken download never empties a category.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from appliance.config import HEAD_OFFICE_PREFIX, Config, FetchSettings
from appliance.storage import install_index, write_atomically
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
from filters.report import ReportBuilder, SkippedLine, SourceReport
from filters.sources import Format, Source
from filters.text import decode_list

UT1_FILES = ("domains", "urls", "expressions")
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


def fetch_url(url: str, settings: FetchSettings) -> bytes:
    """Download one list. Raises SourceRejected with the reason on any failure or oversize."""
    request = urllib.request.Request(url, headers={"User-Agent": "childsafe-appliance list fetch"})
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout_s) as response:
            data: bytes = response.read(settings.max_bytes + 1)
    except urllib.error.HTTPError as e:
        raise SourceRejected(url, f"HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise SourceRejected(url, f"download failed: {getattr(e, 'reason', e)}") from e
    if len(data) > settings.max_bytes:
        raise SourceRejected(
            url, f"larger than {settings.max_bytes // (1024 * 1024)} MB (lists.fetch.max_mb)"
        )
    return data


def _read_file(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SourceRejected(name, f"cannot read {path}: {e.strerror}") from e


class _SourceReader:
    """Reads single-file sources; keeps the last copy of each that gave entries, to stand in for it."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def _cache(self, source: Source) -> Path:
        return self.config.list_cache_dir / source.name

    def read(self, source: Source) -> bytes:
        """The source's bytes as they are now. Raises SourceRejected."""
        if source.is_url:
            return fetch_url(source.location, self.config.fetch)
        return _read_file(Path(source.location), source.name)

    def has_last_good(self, source: Source) -> bool:
        # A head-office list never stands in for itself: a bundle is taken whole or not at all, and a
        # copy kept from a bundle later refused must not come back in another.
        return not source.name.startswith(HEAD_OFFICE_PREFIX) and self._cache(source).exists()

    def last_good(self, source: Source) -> bytes:
        return self._cache(source).read_bytes()

    def keep(self, source: Source, data: bytes) -> None:
        """Make `data` the source's last good copy (unchanged copies are not rewritten: SD-card wear)."""
        if source.name.startswith(HEAD_OFFICE_PREFIX):
            return
        cache = self._cache(source)
        try:
            same = cache.stat().st_size == len(data) and cache.read_bytes() == data
        except FileNotFoundError:
            same = False
        if not same:
            write_atomically(cache, data)


def _parse_lines(
    source: Source, sid: int, builder: IndexBuilder, lines: list[str], report: ReportBuilder
) -> None:
    origin = Path(source.location).name if not source.is_url else source.location
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
                lines, origin, report, category=source.category, include=_include_reader(source)
            )
        )


def _parse_source(
    source: Source, sid: int, builder: IndexBuilder, reader: _SourceReader, report: ReportBuilder
) -> str | None:
    """Parse one source into the builder; returns why, if its last good copy had to stand in.

    The copy stands in when the source cannot be read, is not a list (HTML, binary), or gives no
    entry at all; a source that gives entries becomes the new last good copy.
    """
    if source.format is Format.UT1:
        _parse_ut1(source, sid, builder, report)
        return None
    try:
        data = reader.read(source)
        lines = decode_list(source.name, data)
    except SourceRejected as e:
        problem = e.reason
    else:
        probe = ReportBuilder(source.name)
        _parse_lines(source, sid, builder, lines, probe)
        if probe.entries or not reader.has_last_good(source):
            report.merge(probe)
            if probe.entries:
                reader.keep(source, data)
            return None
        first = f", first: {probe.first_skipped[0]}" if probe.first_skipped else ""
        problem = f"no valid entries ({probe.skipped:,} lines skipped{first})"
    if not reader.has_last_good(source):
        raise SourceRejected(source.name, problem)
    report.warn(f"{source.name}: {problem}; compiled its last good copy instead")
    _parse_lines(source, sid, builder, decode_list(source.name, reader.last_good(source)), report)
    return problem


def _include_reader(source: Source) -> Callable[[str], tuple[str, Sequence[str]]] | None:
    """e2guardian `.Include<path>`: paths relative to the including list's folder; local files only."""
    if source.is_url:
        return None
    base = Path(source.location).parent

    def read(target: str) -> tuple[str, Sequence[str]]:
        path = (base / target).resolve()
        return path.name, decode_list(path.name, _read_file(path, source.name))

    return read


def _parse_ut1(source: Source, sid: int, builder: IndexBuilder, report: ReportBuilder) -> None:
    folder = Path(source.location)
    if not folder.is_dir():
        raise SourceRejected(source.name, f"{folder} is not a UT1 category folder")
    label = folder.name
    usage = folder / "usage"
    white = (
        parse_ut1_usage(decode_list(source.name, _read_file(usage, source.name)), "usage")
        if usage.exists()
        else None
    )
    if white is None:
        report.warn(f"{source.name}: no black/white usage file in {folder}; taken as a blacklist")
    flags = ALLOW if white else 0
    present = [name for name in UT1_FILES if (folder / name).exists()]
    if not present:
        raise SourceRejected(source.name, f"{folder} has none of {', '.join(UT1_FILES)}")
    for name in present:
        lines = decode_list(f"{source.name}/{name}", _read_file(folder / name, source.name))
        origin = f"{label}/{name}"
        if name == "domains":
            builder.add_hosts(sid, parse_domains(lines, origin, report, flags=flags))
        elif name == "urls":
            builder.add_url_prefixes(sid, parse_ut1_urls(lines, origin, report, flags=flags))
        else:
            builder.add_expressions(sid, parse_expressions(lines, origin, report, flags=flags))


def compile_lists(config: Config, *, now: datetime) -> CompileResult:
    """Compile every configured source into the index file, replacing it atomically.

    A rejected source is reported and left out (or its last good copy used); if no source yields a
    single entry, CompileError is raised and the index in force is not touched.
    """
    started = time.perf_counter()
    builder = IndexBuilder()
    reader = _SourceReader(config)
    reports: list[SourceReport] = []
    for source in config.sources:
        report = ReportBuilder(source.name)
        sid = builder.add_source(
            SourceInfo(source.name, source.category, source.format.value, source.location)
        )
        try:
            stale = _parse_source(source, sid, builder, reader, report)
        except FilterError as e:
            reason = e.reason if isinstance(e, SourceRejected) else str(e)
            reports.append(report.freeze(rejected=reason))
            continue
        reports.append(report.freeze(rejected=stale) if stale else report.freeze())
    if config.sources and not any(r.entries for r in reports):
        raise CompileError("no source gave a single entry: the index in force was left unchanged")
    blob = builder.build(created=now.isoformat(timespec="seconds"))
    install_index(config.index_path, blob)  # (the previous good one kept; DiskFull if no room)
    result = CompileResult(tuple(reports), config.index_path, len(blob), time.perf_counter() - started)
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
            }
        )
    data = {
        "compiled": compiled,
        "index_bytes": result.index_bytes,
        "seconds": round(result.seconds, 3),
        "sources": sources,
    }
    write_atomically(report_path(config), json.dumps(data, indent=1).encode("utf-8"))


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
