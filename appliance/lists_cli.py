"""`appliance lists catalogue` and `appliance lists preset`: the list catalogue, and choosing a preset.

Also the bundled stand-in of `appliance lists compile`: when a compile gets none of the lists to download
and the index in force has none of them either (none yet: no connection at install), the bundled demo
lists are compiled in their place, so the appliance still starts filtering (and says protection is
minimal until a download succeeds).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from appliance.config import Config, ConfigError, default_config_path
from appliance.config.catalogue import (
    DEMO,
    Catalogue,
    catalogue_markdown,
    load_catalogue,
)
from appliance.config.reader import Mapping, YamlError, load_yaml
from appliance.files import write_atomically
from appliance.in_force.head_office import load_config_in_force as load_config
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


# ---- appliance lists catalogue ----


def _size(catalogue: Catalogue, name: str) -> str:
    entry = catalogue.entries[name]
    return f"{'~' if entry.counted == 'upstream' else ''}{entry.entries:,}"


def _catalogue(args: argparse.Namespace) -> int:
    catalogue = load_catalogue()
    if args.markdown:
        print(catalogue_markdown(catalogue), end="")
        return 0
    config = load_config(args.config)
    chosen = config.catalogue
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "category": e.category,
                        "format": e.format.value,
                        "url": e.url,
                        "path": e.path,
                        "members": list(e.members),
                        "mirror_path": catalogue.source(e.name).mirror_path if e.url else None,
                        "entries": e.entries,
                        "counted": e.counted,
                        "changes": e.changes,
                        "provider": e.provider.title,
                        "licence": e.licence,
                        "presets": list(catalogue.presets_of(e.name)),
                        "in_force": e.name in chosen.entries,
                        "why": chosen.why(e.name),
                    }
                    for e in catalogue.entries.values()
                ]
            )
        )
        return 0
    print("Presets (lists.preset):")
    for preset in catalogue.presets.values():
        total = catalogue.expected_entries(preset.entries)
        print(f"  {preset.name:<12} {len(preset.entries):>3} lists, about {total:>10,} entries")
    where = (
        f", switches in {chosen.switches_file}"
        if chosen.switches_file
        else (", switches in lists.catalogue" if chosen.inline else "")
    )
    print(
        f"\nEntries (* in force in {config.origin}: preset {chosen.preset or 'none'}{where}; "
        f"{len(chosen.entries)} lists, about {catalogue.expected_entries(chosen.entries):,} entries):"
    )
    for e in catalogue.entries.values():
        mark = "*" if e.name in chosen.entries else " "
        print(
            f"{mark} {e.name:<28} {e.category:<16} {_size(catalogue, e.name):>11}  {e.changes:<20} "
            f"{chosen.why(e.name)}"
        )
    for line in chosen.unknown:
        print(f"warning: {line}")
    return 0


# ---- appliance lists preset ----


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _block_key(lines: list[str], at: int, key: str) -> bool:
    """Is line `at` a `key:` opening a block (not a flow mapping like `key: {...}`)?"""
    return re.match(rf"^\s*{key}:\s*(#.*)?$", lines[at]) is not None


def _set_value(line: str, key: str, value: str) -> str:
    return re.sub(rf"^(\s*{key}:\s*)[^\s#]*", lambda m: m.group(1) + value, line)


def with_preset(path: Path, text: str, preset: str, mirror: str | None = None) -> str:
    """`text` (a configuration file) with `lists.preset` set to `preset` and, if given,
    `lists.fetch.mirror` to `mirror`; every other line as it was. Raises ConfigError when `lists:` (or
    `lists.fetch:`) is written as a flow mapping (`{...}`), which this does not edit."""
    try:
        data = load_yaml(path, text)
    except YamlError as e:
        raise ConfigError(str(e)) from e
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}:1: the configuration must be a mapping of keys (lists, policy, ...)")
    lines = text.splitlines()
    if "lists" not in data:
        block = ["lists:", f"  preset: {preset}"] + (["  fetch:", f"    mirror: {mirror}"] if mirror else [])
        return "\n".join([*lines, *block]) + "\n"
    head = data.key_lines["lists"] - 1
    lists = data["lists"]
    if not _block_key(lines, head, "lists"):
        raise ConfigError(f"{path}:{head + 1}: write lists: as a block of key: value lines to change it here")
    keys = lists.key_lines if isinstance(lists, Mapping) else {}
    indent = _indent(lines[min(keys.values()) - 1]) if keys else "  "
    edits: dict[int, str] = {}  # line index -> the line that replaces it
    inserts: dict[int, list[str]] = {}  # line index -> the lines that follow it
    if "preset" in keys:
        edits[keys["preset"] - 1] = _set_value(lines[keys["preset"] - 1], "preset", preset)
    else:
        inserts.setdefault(head, []).append(f"{indent}preset: {preset}")
    if mirror:
        if "fetch" not in keys:
            after = keys["preset"] - 1 if "preset" in keys else head
            inserts.setdefault(after, []).extend([f"{indent}fetch:", f"{indent * 2}mirror: {mirror}"])
        else:
            at = keys["fetch"] - 1
            if not _block_key(lines, at, "fetch"):
                raise ConfigError(f"{path}:{at + 1}: write lists.fetch as a block to change it here")
            fetch = lists["fetch"]
            inner = fetch.key_lines if isinstance(fetch, Mapping) else {}
            if "mirror" in inner:
                edits[inner["mirror"] - 1] = _set_value(lines[inner["mirror"] - 1], "mirror", mirror)
            else:
                deeper = _indent(lines[min(inner.values()) - 1]) if inner else _indent(lines[at]) + indent
                inserts.setdefault(at, []).append(f"{deeper}mirror: {mirror}")
    out = []
    for i, line in enumerate(lines):
        out.append(edits.get(i, line))
        out.extend(inserts.get(i, []))
    return "\n".join(out) + "\n"


def _preset(args: argparse.Namespace) -> int:
    path = (args.config or default_config_path()).resolve()
    catalogue = load_catalogue()
    if args.name not in catalogue.presets:
        raise ConfigError(f"no preset {args.name!r} (presets: {', '.join(catalogue.presets)})")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration: {e.strerror}") from e
    new = with_preset(path, text, args.name, args.mirror)
    # Checked as a whole before it replaces the file: a file that does not load is never left behind.
    trial = path.with_name(f".{path.name}.preset-{secrets.token_hex(4)}")
    try:
        trial.write_text(new, encoding="utf-8")
        config = load_config(trial)
    except ConfigError as e:
        raise ConfigError(str(e).replace(str(trial), str(path))) from e
    finally:
        trial.unlink(missing_ok=True)
    if new != text:
        before = path.stat()
        write_atomically(path, new.encode("utf-8"))
        if (before.st_uid, before.st_gid) != ((after := path.stat()).st_uid, after.st_gid):
            # install.sh runs this as root on /etc/appliance/appliance.yaml (root:appliance, 0640): the
            # services must still read the file.
            os.chown(path, before.st_uid, before.st_gid)
    chosen = config.catalogue
    total = catalogue.expected_entries(chosen.entries)
    print(f"lists.preset is {args.name} in {path}: {len(chosen.entries)} lists, about {total:,} entries")
    if any(s.is_url for s in config.sources):
        print("run `appliance lists compile` to fetch and compile them (the nightly update does it too)")
    return 0


def add_commands(lists: Any, common: argparse.ArgumentParser) -> None:
    """Register `catalogue` and `preset` under `appliance lists`."""
    catalogue = lists.add_parser(
        "catalogue", parents=[common], help="the list catalogue: presets, entries, and which are in force"
    )
    out = catalogue.add_mutually_exclusive_group()
    out.add_argument("--markdown", action="store_true", help="the tables of docs/lists.md")
    out.add_argument("--json", action="store_true", help="every entry as JSON (with its mirror path)")
    catalogue.set_defaults(run=_catalogue)
    preset = lists.add_parser(
        "preset", parents=[common], help="choose the catalogue preset in the configuration file"
    )
    preset.add_argument("name", help="recommended, minimal or demo (see `appliance lists catalogue`)")
    preset.add_argument(
        "--mirror", help="also set lists.fetch.mirror: a head office's or local copy of the lists"
    )
    preset.set_defaults(run=_preset)
