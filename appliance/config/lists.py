"""The `lists:` section of appliance.yaml: the centre's own sources, the catalogue's preset and switches,
and how downloads are fetched (docs/configuration.md, docs/lists.md). A bundle's sources are read with the
same `parse_source`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from appliance.config.catalogue import (
    Catalogue,
    CatalogueError,
    Selection,
    load_catalogue,
    select,
    switches_of,
)
from appliance.config.catalogue import read_switches as _read_switches
from appliance.config.reader import ConfigError, Reader, empty_mapping
from appliance.config.reader import Mapping as _Mapping
from filters.sources import Format, Source

HEAD_OFFICE_PREFIX = "hq."  # a head-office list's source name: hq.<its name in the bundle>


@dataclass(frozen=True)
class FetchSettings:
    """How URL sources are downloaded and archives unpacked (`lists.fetch`; docs/lists.md)."""

    timeout_s: float = 30.0  # the longest wait for more bytes of a download
    max_bytes: int = 200 * 1024 * 1024  # a download's content
    connect_timeout_s: float = 10.0
    attempts: int = 3  # tries of the source's own URL (the mirror gets one)
    backoff_s: float = 2.0  # the pause before the second try; doubled before each next one
    mirror: str | None = None  # a base URL tried first: <mirror>/<source name><archive suffix>
    max_unpacked_bytes: int = 1024 * 1024 * 1024  # what one archive may unpack to
    max_ratio: int = 200  # ... and at most this many times its own size


_MB = 1024 * 1024


def parse_fetch(raw: Any, r: Reader, lists: _Mapping) -> FetchSettings:
    """`lists.fetch`: how downloads spare the link, and how far an archive may unpack."""
    d = FetchSettings()
    keys = {"timeout_s", "connect_timeout_s", "max_mb", "attempts", "backoff_s", "mirror"}
    keys |= {"max_unpacked_mb", "max_ratio"}
    node = r.section(raw, lists, "lists.fetch", keys)
    if node is None:
        return d

    def whole(key: str, default: int, low: int, high: int) -> int:
        value = node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(
                f"{r.where(node, key)}: lists.fetch.{key} must be a whole number from {low} to {high}"
            )
        return value

    mirror = node.get("mirror")
    if mirror is not None and (not isinstance(mirror, str) or not mirror.startswith(("http://", "https://"))):
        raise ConfigError(
            f"{r.where(node, 'mirror')}: lists.fetch.mirror must be an http:// or https:// base URL"
        )
    return FetchSettings(
        timeout_s=float(r.number(node, "timeout_s", d.timeout_s, 0.1, 600, "lists.fetch")),
        connect_timeout_s=float(
            r.number(node, "connect_timeout_s", d.connect_timeout_s, 0.1, 600, "lists.fetch")
        ),
        max_bytes=whole("max_mb", d.max_bytes // _MB, 1, 4096) * _MB,
        attempts=whole("attempts", d.attempts, 1, 10),
        backoff_s=float(r.number(node, "backoff_s", d.backoff_s, 0, 300, "lists.fetch")),
        mirror=mirror.rstrip("/") if mirror else None,
        max_unpacked_bytes=whole("max_unpacked_mb", d.max_unpacked_bytes // _MB, 1, 16384) * _MB,
        max_ratio=whole("max_ratio", d.max_ratio, 2, 100_000),
    )


def parse_source(item: Any, r: Reader, base: Path, parent: _Mapping) -> Source:
    """One list source of a `sources:` list (paths relative to `base`). Raises ConfigError with file:line."""
    if not isinstance(item, _Mapping):
        raise ConfigError(f"{r.where(parent, 'sources')}: each source must be a mapping (name, format, ...)")
    r.keys(item, {"name", "format", "category", "path", "url", "members"}, "a source")
    for key in ("name", "format", "category"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{r.where(item)}: source is missing {key!r} (a non-empty text)")
    name = item["name"].strip()
    # Not starting with ".": the name is a file name under data_dir/lists, beside hidden working files.
    if not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ConfigError(
            f"{r.where(item, 'name')}: source name {name!r}: use letters, digits, - _ . only (not first: .)"
        )
    try:
        fmt = Format(item["format"])
    except ValueError as e:
        known = ", ".join(f.value for f in Format)
        where = r.where(item, "format")
        bad = item["format"]
        raise ConfigError(f"{where}: source {name!r}: unknown format {bad!r} (known: {known})") from e
    has_path, has_url = "path" in item, "url" in item
    if has_path == has_url:
        raise ConfigError(f"{r.where(item)}: source {name!r}: give exactly one of path or url")
    if has_url:
        url = item["url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{r.where(item, 'url')}: source {name!r}: url must start with http(s)://")
        location = url
    else:
        raw = item["path"]
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"{r.where(item, 'path')}: source {name!r}: path must be a file or folder")
        location = str((base / os.path.expanduser(raw)).resolve())
    source = Source(name=name, format=fmt, category=item["category"].strip(), location=location)
    if fmt is Format.UT1 and source.archive in (None, ".gz") and has_url:
        raise ConfigError(
            f"{r.where(item, 'url')}: source {name!r}: ut1 sources are folders (use path) or "
            "category archives (a url ending .tar.gz, .tgz or .zip)"
        )
    if fmt is Format.UT1 and source.archive == ".gz":
        raise ConfigError(
            f"{r.where(item, 'path')}: source {name!r}: a .gz holds one file, not a ut1 category "
            "folder: use its .tar.gz, .tgz or .zip"
        )
    return replace(source, members=_members(item, r, source))


def _members(item: _Mapping, r: Reader, source: Source) -> tuple[str, ...]:
    """A source's `members:` (the files, or for ut1 the folders, of an archive to take), normalised."""
    raw = item.get("members")
    if raw is None:
        return ()
    where = f"{r.where(item, 'members')}: source {source.name!r}"
    if source.archive not in (".tar.gz", ".tgz", ".zip"):
        raise ConfigError(f"{where}: members are for .tar.gz, .tgz and .zip archives only")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(m, str) and m.strip() for m in raw):
        raise ConfigError(f"{where}: members must be a list of paths inside the archive")
    out = []
    for entry in raw:
        try:
            member = member_path(entry.strip())
        except ValueError as e:
            raise ConfigError(f"{where}: member {e}") from e
        if not member:
            raise ConfigError(f"{where}: member {entry!r} names no file")
        folder = member.endswith("/")
        if source.format is Format.UT1 and not folder:
            raise ConfigError(
                f"{where}: member {entry!r}: a ut1 source takes category folders: write {member + '/'!r}"
            )
        if source.format is not Format.UT1 and folder:
            raise ConfigError(
                f"{where}: member {entry!r} is a folder: folders are for ut1 sources; name the list's file"
            )
        if member in out:
            raise ConfigError(f"{where}: member {entry!r} is named twice")
        out.append(member)
    return tuple(out)


def parse_catalogue(lists: _Mapping, r: Reader) -> tuple[Selection, list[Source]]:
    """`lists.preset` and `lists.catalogue`: the catalogue entries in force, as sources.

    `catalogue` switches entries on or off over the preset: a mapping (`{ut1-adult: off}`), a list of
    entries to switch on, or the path of a file holding such a mapping (the dashboard writes that one).
    """
    if "preset" not in lists and "catalogue" not in lists:
        return Selection(), []
    try:
        catalogue = load_catalogue()
    except CatalogueError as e:
        raise ConfigError(str(e)) from e
    preset = lists.get("preset")
    if preset is not None and (not isinstance(preset, str) or preset not in catalogue.presets):
        known = ", ".join(catalogue.presets)
        raise ConfigError(f"{r.where(lists, 'preset')}: lists.preset {preset!r} is not a preset ({known})")
    raw = lists.get("catalogue")
    switches: dict[str, bool] = {}
    unknown: tuple[str, ...] = ()
    switches_file = None
    try:
        if isinstance(raw, _Mapping):
            switches, unknown = switches_of(raw, r.path, catalogue)
        elif isinstance(raw, list):
            switches, unknown = _listed(raw, r, lists, catalogue)
        elif isinstance(raw, str) and raw.strip():
            switches_file = (r.path.parent / os.path.expanduser(raw.strip())).resolve()
            switches, unknown = _read_switches(switches_file, catalogue)
        elif raw is not None:
            raise ConfigError(
                f"{r.where(lists, 'catalogue')}: lists.catalogue is a mapping of entries to on or off "
                "({ut1-adult: off}), a list of entries to switch on, or the path of a file of such lines"
            )
    except CatalogueError as e:
        raise ConfigError(str(e)) from e
    selection = select(
        catalogue,
        preset,
        switches,
        switches_file=switches_file,
        inline=isinstance(raw, _Mapping | list),
        unknown=unknown,
    )
    return selection, [catalogue.source(name) for name in selection.entries]


def _listed(
    raw: list[Any], r: Reader, lists: _Mapping, catalogue: Catalogue
) -> tuple[dict[str, bool], tuple[str, ...]]:
    """`catalogue: [a, b]`: these entries switched on."""
    lines = getattr(raw, "item_lines", [lists.line_of("catalogue")] * len(raw))
    mapping = empty_mapping(lists.line_of("catalogue"))
    for name, line in zip(raw, lines, strict=True):
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{r.path}:{line}: lists.catalogue: {name!r} is not a catalogue entry name")
        mapping[name.strip()] = "on"
        mapping.key_lines[name.strip()] = line
    return switches_of(mapping, r.path, catalogue)


_DRIVE = re.compile(r"^[A-Za-z]:")


def member_path(raw: str) -> str:
    """A member's path as written in an archive, normalised (`./a//b` is `a/b`; a folder keeps one
    trailing `/`). Raises ValueError saying why for a path out of the archive."""
    if raw.startswith(("/", "\\")) or _DRIVE.match(raw):
        raise ValueError(f"{raw!r} is an absolute path")
    parts = [p for p in re.split(r"[/\\]", raw) if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{raw!r} leads out of the archive (..)")
    if "\x00" in raw:
        raise ValueError(f"{raw!r} has a NUL character")
    name = "/".join(parts)
    return f"{name}/" if name and raw.endswith(("/", "\\")) else name
