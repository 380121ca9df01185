"""`bundle.yaml`: what head office puts in a bundle. It sits at the top of the bundle's folder:

    sources:            # as appliance.yaml's lists.sources; paths inside this folder, never URLs
      - {name: adult, format: hosts, category: adult, path: lists/adult.hosts}
    health:             # checked on every centre before and after a swap, with the guest profile
      blocked: [www.pornhub.com]
      allowed: [www.bbc.co.uk]
    categories: policy/categories.yaml   # optional: the category map every centre uses
    profiles: policy/profiles.yaml       # optional: profile templates (a centre adopts them by copying)
    expires_days: 30                      # a centre refuses the bundle after this

Head office edits it; `appliance bundle build` and every centre read it with the same checks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from appliance.config import ConfigError, parse_source
from appliance.config.reader import Mapping, Reader
from filters.names import BadName, normalise_host
from filters.sources import Source

SPEC_NAME = "bundle.yaml"
DEFAULT_EXPIRES_DAYS = 30


@dataclass(frozen=True)
class BundleSpec:
    """A bundle's contents as its bundle.yaml names them; paths absolute, inside `folder`."""

    folder: Path
    sources: tuple[Source, ...]
    blocked: tuple[str, ...]  # names the guest profile must find blocked
    allowed: tuple[str, ...]  # names the guest profile must find allowed
    categories: Path | None
    profiles: Path | None
    expires_days: int


def read_spec(folder: Path, *, prefix: str = "") -> BundleSpec:
    """Read `folder/bundle.yaml`; source names get `prefix`. Raises ConfigError naming file:line."""
    path = folder / SPEC_NAME
    r = Reader(path)
    try:
        data = r.load("the bundle's description", top="bundle.yaml must be a mapping (sources, health, ...)")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from e
    except RecursionError as e:
        raise ConfigError(f"{path}: nested too deeply to be a bundle's description") from e
    assert data is not None  # a Reader without `errors` raises instead
    r.keys(data, {"sources", "health", "categories", "profiles", "expires_days"}, "bundle.yaml")
    raw = data.get("sources")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}:{data.key_lines.get('sources', 1)}: sources must list the bundle's lists")
    sources: list[Source] = []
    for item in raw:
        source = parse_source(item, r, folder, data)
        line = getattr(item, "line", data.line)
        if source.is_url or not _inside(Path(source.location), folder):
            raise ConfigError(f"{path}:{line}: source {source.name!r}: a bundle's lists are files inside it")
        if any(s.name == prefix + source.name for s in sources):
            raise ConfigError(f"{path}:{line}: a second source named {source.name!r}")
        sources.append(replace(source, name=prefix + source.name))
    health = data.get("health")
    blocked = _names(health, "blocked", path, data)
    allowed = _names(health, "allowed", path, data)
    days = data.get("expires_days", DEFAULT_EXPIRES_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 366:
        raise ConfigError(f"{path}:{data.key_lines.get('expires_days', 1)}: expires_days must be 1 to 366")
    return BundleSpec(
        folder,
        tuple(sources),
        blocked,
        allowed,
        _policy_file(data, "categories", path, folder),
        _policy_file(data, "profiles", path, folder),
        days,
    )


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _names(health: Any, key: str, path: Path, data: Mapping) -> tuple[str, ...]:
    line = data.key_lines.get("health", data.line)
    if health is None:
        return ()
    if not isinstance(health, Mapping) or set(health) - {"blocked", "allowed"}:
        raise ConfigError(f"{path}:{line}: health must be a mapping with blocked and allowed name lists")
    names = health.get(key, [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{path}:{health.key_lines.get(key, line)}: health.{key} must be a list of names")
    try:
        return tuple(normalise_host(n) for n in names)
    except BadName as e:
        raise ConfigError(f"{path}:{health.key_lines.get(key, line)}: health.{key}: {e}") from e


def _policy_file(data: Mapping, key: str, path: Path, folder: Path) -> Path | None:
    value = data.get(key)
    if value is None:
        return None
    target = (folder / str(value)).resolve()
    if not isinstance(value, str) or not _inside(target, folder) or not target.is_file():
        where = f"{path}:{data.key_lines.get(key, 1)}"
        raise ConfigError(f"{where}: {key}: {value!r} is not a file in the bundle")
    return target
