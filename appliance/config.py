"""The appliance's configuration file (YAML): loading, validation with `file:line` errors, defaults.

Three layers, as Flask's tutorial app has them: defaults in code, one deployment file, test overrides
(tests pass their own file). Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from filters.errors import ApplianceError
from filters.sources import Format, Source

ENV_CONFIG = "APPLIANCE_CONFIG"
ENV_DATA_DIR = "APPLIANCE_DATA_DIR"
SYSTEM_CONFIG = Path("/etc/appliance/appliance.yaml")
INDEX_NAME = "filters.idx"


class ConfigError(ApplianceError):
    """The configuration file is wrong; the message starts with `file:line:` and says how to fix it."""


@dataclass(frozen=True)
class FetchSettings:
    """How URL sources are downloaded."""

    timeout_s: float = 30.0
    max_bytes: int = 200 * 1024 * 1024


@dataclass(frozen=True)
class Config:
    """The validated configuration. Paths are absolute."""

    origin: str
    data_dir: Path
    sources: tuple[Source, ...]
    fetch: FetchSettings

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index" / INDEX_NAME

    @property
    def list_cache_dir(self) -> Path:
        """Where the last good copy of each list source is kept."""
        return self.data_dir / "lists"


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings remember the line of each key, for `file:line` errors."""


class _Mapping(dict[str, Any]):
    line: int
    key_lines: dict[str, int]


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Mapping:
    mapping = _Mapping({str(k): v for k, v in loader.construct_mapping(node, deep=True).items()})
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def default_config_path() -> Path:
    """The configuration used when none is named: $APPLIANCE_CONFIG, /etc/appliance, else the demo."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    if SYSTEM_CONFIG.exists():
        return SYSTEM_CONFIG
    return Path(str(resources.files("appliance") / "defaults" / "appliance.yaml"))


def load_config(path: Path | None = None) -> Config:
    """Read and validate a configuration file. Raises ConfigError naming file:line on any mistake."""
    path = (path or default_config_path()).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration: {e.strerror}") from e
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from e
    if data is None:
        data = _Mapping()
        data.line, data.key_lines = 1, {}
    if not isinstance(data, _Mapping):
        raise ConfigError(f"{path}:1: the configuration must be a mapping of keys (data_dir, lists, ...)")
    return _parse(data, path)


def _where(path: Path, mapping: _Mapping, key: str | None = None) -> str:
    line = mapping.key_lines.get(key, mapping.line) if key else mapping.line
    return f"{path}:{line}"


def _unknown_keys(path: Path, mapping: _Mapping, allowed: set[str], what: str) -> None:
    for key in mapping:
        if key not in allowed:
            hint = ", ".join(sorted(allowed))
            raise ConfigError(f"{_where(path, mapping, key)}: unknown key {key!r} in {what} (known: {hint})")


def _parse(data: _Mapping, path: Path) -> Config:
    _unknown_keys(path, data, {"data_dir", "lists"}, "the configuration")
    base = path.parent
    raw_dir = data.get("data_dir")
    if raw_dir is None:
        data_dir = Path(os.environ.get(ENV_DATA_DIR, "var")).resolve()
    elif isinstance(raw_dir, str) and raw_dir:
        data_dir = (base / os.path.expanduser(raw_dir)).resolve()
    else:
        raise ConfigError(f"{_where(path, data, 'data_dir')}: data_dir must be a folder path")

    lists = data.get("lists")
    if lists is None:
        lists = _Mapping()
        lists.line, lists.key_lines = data.line, {}
    if not isinstance(lists, _Mapping):
        raise ConfigError(f"{_where(path, data, 'lists')}: lists must be a mapping with a sources key")
    _unknown_keys(path, lists, {"sources", "fetch"}, "lists")

    fetch = FetchSettings()
    raw_fetch = lists.get("fetch")
    if raw_fetch is not None:
        if not isinstance(raw_fetch, _Mapping):
            raise ConfigError(f"{_where(path, lists, 'fetch')}: lists.fetch must be a mapping")
        _unknown_keys(path, raw_fetch, {"timeout_s", "max_mb"}, "lists.fetch")
        timeout = raw_fetch.get("timeout_s", fetch.timeout_s)
        max_mb = raw_fetch.get("max_mb", fetch.max_bytes // (1024 * 1024))
        if not isinstance(timeout, int | float) or not 0 < timeout <= 600:
            raise ConfigError(f"{_where(path, raw_fetch, 'timeout_s')}: timeout_s must be 0 < seconds <= 600")
        if not isinstance(max_mb, int) or not 0 < max_mb <= 4096:
            raise ConfigError(f"{_where(path, raw_fetch, 'max_mb')}: max_mb must be a whole number 1..4096")
        fetch = FetchSettings(float(timeout), max_mb * 1024 * 1024)

    raw_sources = lists.get("sources", [])
    if not isinstance(raw_sources, list):
        raise ConfigError(f"{_where(path, lists, 'sources')}: lists.sources must be a list of sources")
    sources: list[Source] = []
    names: set[str] = set()
    for item in raw_sources:
        source = _parse_source(item, path, base, lists)
        if source.name in names:
            raise ConfigError(
                f"{_where(path, item)}: a second source named {source.name!r}: names must be unique"
            )
        names.add(source.name)
        sources.append(source)
    return Config(origin=str(path), data_dir=data_dir, sources=tuple(sources), fetch=fetch)


def _parse_source(item: Any, path: Path, base: Path, parent: _Mapping) -> Source:
    if not isinstance(item, _Mapping):
        raise ConfigError(
            f"{_where(path, parent, 'sources')}: each source must be a mapping (name, format, ...)"
        )
    _unknown_keys(path, item, {"name", "format", "category", "path", "url"}, "a source")
    for key in ("name", "format", "category"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{_where(path, item)}: source is missing {key!r} (a non-empty text)")
    name = item["name"].strip()
    if not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(
            f"{_where(path, item, 'name')}: source name {name!r}: use letters, digits, - _ . only"
        )
    try:
        fmt = Format(item["format"])
    except ValueError as e:
        known = ", ".join(f.value for f in Format)
        where = _where(path, item, "format")
        bad = item["format"]
        raise ConfigError(f"{where}: source {name!r}: unknown format {bad!r} (known: {known})") from e
    has_path, has_url = "path" in item, "url" in item
    if has_path == has_url:
        raise ConfigError(f"{_where(path, item)}: source {name!r}: give exactly one of path or url")
    if has_url:
        url = item["url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{_where(path, item, 'url')}: source {name!r}: url must start with http(s)://")
        if fmt is Format.UT1:
            raise ConfigError(
                f"{_where(path, item, 'url')}: source {name!r}: ut1 sources are folders: use path"
            )
        location = url
    else:
        raw = item["path"]
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"{_where(path, item, 'path')}: source {name!r}: path must be a file or folder")
        location = str((base / os.path.expanduser(raw)).resolve())
    return Source(name=name, format=fmt, category=item["category"].strip(), location=location)
