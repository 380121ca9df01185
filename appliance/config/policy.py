"""The `policy:` section of appliance.yaml: where the policy files are, the centre's time zone, and the
hosts treated before any list (docs/configuration.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from appliance.config.reader import ConfigError, Reader
from appliance.config.reader import Mapping as _Mapping
from filters.names import BadName, normalise_host

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
    alerts: Path = field(default_factory=lambda: _shipped("alerts.yaml"))
    guest_profile: str = "guest"
    help_services: tuple[str, ...] = DEFAULT_HELP_SERVICES
    portal_hosts: tuple[str, ...] = ("appliance.lan",)


def _host_list(value: Any, r: Reader, parent: _Mapping, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{r.where(parent, key)}: policy.{key} must be a list of domain names")
    hosts = []
    for item in value:
        try:
            hosts.append(normalise_host(item.strip()))
        except BadName as e:
            raise ConfigError(
                f"{r.where(parent, key)}: policy.{key}: {item!r} is not a domain name "
                "(write the name alone, like example.org: no https:// and no path)"
            ) from e
    return tuple(hosts)


def parse_policy(raw: Any, r: Reader, data: _Mapping) -> PolicySettings:
    if raw is None:
        return PolicySettings()
    if not isinstance(raw, _Mapping):
        raise ConfigError(f"{r.where(data, 'policy')}: policy must be a mapping (timezone, ...)")
    files = ("categories", "profiles", "safe_search", "watch_lists", "alerts")
    r.keys(raw, {"timezone", "guest_profile", "help_services", "portal_hosts", *files}, "policy")
    settings = PolicySettings()
    changes: dict[str, Any] = {}
    for key in ("timezone", "guest_profile", *files):
        if key in raw:
            value = raw[key]
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{r.where(raw, key)}: policy.{key} must be a non-empty text")
            changes[key] = (r.path.parent / os.path.expanduser(value)).resolve() if key in files else value
    for key in ("help_services", "portal_hosts"):
        if key in raw:
            changes[key] = _host_list(raw[key], r, raw, key)
    return replace(settings, **changes)
