"""The appliance's configuration file (YAML): loading, validation with `file:line` errors, defaults.

Three layers, as Flask's tutorial app has them: defaults in code, one deployment file, test overrides
(tests pass their own file). Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from appliance.yaml_lines import Mapping as _Mapping
from appliance.yaml_lines import YamlError, empty_mapping, load_yaml, unknown_key_message
from filters.errors import ApplianceError
from filters.names import BadName, normalise_host
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


DEFAULT_HELP_SERVICES = (
    # Never blocked, never logged: a child looking for help must not be seen doing so.
    "childline.org.uk",
    "nspcc.org.uk",
    "samaritans.org",
    "papyrus-uk.org",
    "kooth.com",
    "giveusashout.org",
    "youngminds.org.uk",
    "ceop.police.uk",
    "thinkuknow.co.uk",
    "iwf.org.uk",
    "childhelplineinternational.org",
)


def _shipped(name: str) -> Path:
    return Path(str(resources.files("appliance") / "defaults" / "policy" / name))


@dataclass(frozen=True)
class PolicySettings:
    """Where the policy files are, the centre's time zone, and the hosts treated before any list."""

    timezone: str = "Europe/London"
    categories: Path = field(default_factory=lambda: _shipped("categories.yaml"))
    profiles: Path = field(default_factory=lambda: _shipped("profiles.yaml"))
    safe_search: Path = field(default_factory=lambda: _shipped("safesearch.yaml"))
    watch_lists: Path = field(default_factory=lambda: _shipped("watchlists.yaml"))
    guest_profile: str = "guest"
    help_services: tuple[str, ...] = DEFAULT_HELP_SERVICES
    portal_hosts: tuple[str, ...] = ("appliance.lan",)


@dataclass(frozen=True)
class Config:
    """The validated configuration. Paths are absolute."""

    origin: str
    data_dir: Path
    sources: tuple[Source, ...]
    fetch: FetchSettings
    policy: PolicySettings = field(default_factory=PolicySettings)

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index" / INDEX_NAME

    @property
    def list_cache_dir(self) -> Path:
        """Where the last good copy of each list source is kept."""
        return self.data_dir / "lists"


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
        data = load_yaml(path, text)
    except YamlError as e:
        raise ConfigError(str(e)) from e
    if not isinstance(data, _Mapping):
        raise ConfigError(f"{path}:1: the configuration must be a mapping of keys (data_dir, lists, ...)")
    return _parse(data, path)


def _where(path: Path, mapping: _Mapping, key: str | None = None) -> str:
    line = mapping.key_lines.get(key, mapping.line) if key else mapping.line
    return f"{path}:{line}"


def _unknown_keys(path: Path, mapping: _Mapping, allowed: set[str], what: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise ConfigError(f"{_where(path, mapping, key)}: {unknown_key_message(key, allowed, what)}")


def _parse(data: _Mapping, path: Path) -> Config:
    _unknown_keys(path, data, {"data_dir", "lists", "policy"}, "the configuration")
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
        lists = empty_mapping(data.line)
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
    policy = _parse_policy(data.get("policy"), path, data)
    return Config(origin=str(path), data_dir=data_dir, sources=tuple(sources), fetch=fetch, policy=policy)


def _host_list(value: Any, path: Path, parent: _Mapping, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{_where(path, parent, key)}: policy.{key} must be a list of domain names")
    hosts = []
    for item in value:
        try:
            hosts.append(normalise_host(item.strip()))
        except BadName as e:
            raise ConfigError(
                f"{_where(path, parent, key)}: policy.{key}: {item!r} is not a domain name "
                "(write the name alone, like example.org: no https:// and no path)"
            ) from e
    return tuple(hosts)


def _parse_policy(raw: Any, path: Path, data: _Mapping) -> PolicySettings:
    if raw is None:
        return PolicySettings()
    if not isinstance(raw, _Mapping):
        raise ConfigError(f"{_where(path, data, 'policy')}: policy must be a mapping (timezone, ...)")
    files = ("categories", "profiles", "safe_search", "watch_lists")
    _unknown_keys(path, raw, {"timezone", "guest_profile", "help_services", "portal_hosts", *files}, "policy")
    settings = PolicySettings()
    changes: dict[str, Any] = {}
    for key in ("timezone", "guest_profile", *files):
        if key in raw:
            value = raw[key]
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{_where(path, raw, key)}: policy.{key} must be a non-empty text")
            changes[key] = (path.parent / os.path.expanduser(value)).resolve() if key in files else value
    for key in ("help_services", "portal_hosts"):
        if key in raw:
            changes[key] = _host_list(raw[key], path, raw, key)
    return replace(settings, **changes)


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
