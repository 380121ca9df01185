"""The bundled stand-in of `appliance lists compile`: when a compile gets none of the lists to download and
the index in force has none of them either (none yet: no connection at install), the bundled demo lists are
compiled in their place, so the appliance still starts filtering (and `appliance check` says protection is
minimal, appliance.checks.MINIMAL, until a download succeeds).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from appliance.config import Config
from appliance.config.catalogue import DEMO, load_catalogue
from appliance.lists import CompileError, CompileResult, compile_lists, read_compile_report
from filters.report import SourceReport


@dataclass(frozen=True)
class Compiled:
    """What `compile_with_fallback` did: the compile in force; whether the bundled lists stood in for
    lists that could not be downloaded, and those downloads' reports (when the first compile gave any)."""

    config: Config
    result: CompileResult
    stood_in: bool = False
    not_downloaded: tuple[SourceReport, ...] = ()


def compile_with_fallback(config: Config, *, now: datetime) -> Compiled:
    """Compile the configured lists. When none of the lists to download gives an entry, and none did in
    the compile that made the index in force (or there is none: no connection at install), compile again
    with the demo preset's bundled lists in their place, from files alone (nothing is downloaded twice),
    so the services filter with something; `appliance check` says protection is minimal until a compile
    brings the lists in. Once they have come in, a failed download keeps its last good copy instead."""
    downloaded = {s.name for s in config.sources if s.is_url}
    # Still on the bundled lists (or nothing yet): no index, or one that no download went into. An index
    # made from downloads stays in force when every download fails (and their last good copies with it).
    before = read_compile_report(config) if config.index_path.exists() else None
    first = before is None or not any(
        s.report.entries for s in before.sources if s.location.startswith(("http://", "https://"))
    )
    try:
        result: CompileResult | None = compile_lists(config, now=now)
    except CompileError:
        if not (first and downloaded):
            raise
        result = None  # nothing at all gave an entry
    came_in = result is not None and any(r.entries for r in result.reports if r.source in downloaded)
    if result is not None and (not first or not downloaded or came_in):
        return Compiled(config, result)
    catalogue = load_catalogue()
    local = [s for s in config.sources if not s.is_url]
    have = {s.name for s in local}
    bundled = [catalogue.source(n) for n in catalogue.presets[DEMO].entries if n not in have]
    stand_in = replace(config, sources=(*local, *bundled))
    failed = tuple(r for r in (result.reports if result else ()) if r.source in downloaded)
    return Compiled(stand_in, compile_lists(stand_in, now=now), True, failed)
