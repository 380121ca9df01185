"""appliance.yaml as a whole: `load_config` reads and validates the file, each section by its own module.

Three layers, as Flask's tutorial app has them: defaults in code, one deployment file, test overrides
(tests pass their own file). Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from appliance.config.catalogue import Selection
from appliance.config.dashboard import DashboardSettings, PortalSettings, parse_dashboard, parse_portal
from appliance.config.devices import parse_devices
from appliance.config.dns import DnsSettings, parse_dns
from appliance.config.lists import (
    HEAD_OFFICE_PREFIX,
    FetchSettings,
    parse_catalogue,
    parse_fetch,
    parse_source,
)
from appliance.config.policy import PolicySettings, parse_policy
from appliance.config.proxy import ProxySettings, parse_proxy
from appliance.config.reader import ConfigError, Reader, empty_mapping
from appliance.config.reader import Mapping as _Mapping
from appliance.config.router import RouterSettings, parse_router
from appliance.config.store import StoreSettings, parse_store
from appliance.config.sync import SyncSettings, parse_sync
from filters.sources import Source
from profiles.identity import Device

ENV_CONFIG = "APPLIANCE_CONFIG"


ENV_DATA_DIR = "APPLIANCE_DATA_DIR"


SYSTEM_CONFIG = Path("/etc/appliance/appliance.yaml")


INDEX_NAME = "filters.idx"


@dataclass(frozen=True)
class Config:
    """The validated configuration. Paths are absolute."""

    origin: str
    data_dir: Path
    sources: tuple[Source, ...]
    fetch: FetchSettings
    policy: PolicySettings = field(default_factory=PolicySettings)
    dns: DnsSettings = field(default_factory=DnsSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    portal: PortalSettings = field(default_factory=PortalSettings)
    router: RouterSettings = field(default_factory=RouterSettings)
    devices: tuple[Device, ...] = ()
    device_lines: Mapping[str, int] = field(default_factory=dict)  # device name -> its line in the file
    # Head office's bundles; None: the lists are this file's own. With them, the set in force is added by
    # appliance.in_force.head_office: its lists before this file's, its category map, and these two.
    sync: SyncSettings | None = None
    set_dir: Path | None = None  # the head-office set in force (its bundle and index), if any yet
    set_note: str | None = None  # why that is not the set `current` names (it is damaged), if so
    own_sources: tuple[Source, ...] = ()  # this file's own sources (with a set, `sources` adds its lists)
    own_categories: bool = (
        False  # the file names policy.categories (a set's category map does not replace it)
    )
    catalogue: Selection = field(default_factory=Selection)  # what `lists.preset`/`lists.catalogue` take

    @property
    def index_path(self) -> Path:
        return (self.set_dir or self.data_dir) / "index" / INDEX_NAME

    @property
    def events_path(self) -> Path:
        """The SQLite file the query log (and later the event store) writes to."""
        return self.dns.events_path or self.data_dir / "appliance.sqlite"

    @property
    def ca_dir(self) -> Path:
        """The appliance's own certificate authority (made at the proxy's first start)."""
        return self.proxy.ca_dir or self.data_dir / "ca"

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
    """Read and validate a configuration file, the file alone: head office's set in force (with `sync:`)
    is added by `appliance.in_force.head_office`. Raises ConfigError naming file:line on any mistake."""
    r = Reader((path or default_config_path()).resolve())
    data = r.load(
        "the configuration", top="the configuration must be a mapping of keys (data_dir, lists, ...)"
    )
    assert data is not None  # a Reader without `errors` raises instead
    return _parse(data, r)


def _parse(data: _Mapping, r: Reader) -> Config:
    sections = {"data_dir", "lists", "policy", "dns", "proxy", "store", "dashboard", "portal", "router"}
    sections |= {"devices", "sync"}
    r.keys(data, sections, "the configuration")
    base = r.path.parent
    raw_dir = data.get("data_dir")
    if raw_dir is None:
        data_dir = Path(os.environ.get(ENV_DATA_DIR, "var")).resolve()
    elif isinstance(raw_dir, str) and raw_dir:
        data_dir = (base / os.path.expanduser(raw_dir)).resolve()
    else:
        raise ConfigError(f"{r.where(data, 'data_dir')}: data_dir must be a folder path")

    lists = data.get("lists")
    if lists is None:
        lists = empty_mapping(data.line)
    if not isinstance(lists, _Mapping):
        raise ConfigError(f"{r.where(data, 'lists')}: lists must be a mapping with a sources key")
    r.keys(lists, {"sources", "fetch", "preset", "catalogue"}, "lists")

    fetch = parse_fetch(lists.get("fetch"), r, lists)

    raw_sources = lists.get("sources") or []  # `sources:` with only comments under it is none
    if not isinstance(raw_sources, list):
        raise ConfigError(f"{r.where(lists, 'sources')}: lists.sources must be a list of sources")
    sources: list[Source] = []
    names: set[str] = set()
    for item in raw_sources:
        source = parse_source(item, r, base, lists)
        if source.name in names:
            raise ConfigError(f"{r.where(item)}: a second source named {source.name!r}: names must be unique")
        names.add(source.name)
        sources.append(source)
    selection, chosen = parse_catalogue(lists, r)
    for item, source in zip(raw_sources, sources, strict=True):
        if source.name in selection.entries:
            raise ConfigError(
                f"{r.where(item, 'name')}: source {source.name!r} has the name of a catalogue entry in "
                f"force ({selection.why(source.name)}): rename it, or switch the entry off (lists.catalogue)"
            )
    sources = [*chosen, *sources]
    policy = parse_policy(data.get("policy"), r, data)
    devices, device_lines = parse_devices(data.get("devices"), r, data)
    sync = parse_sync(data.get("sync"), r, data)
    for item, source in zip(raw_sources, sources[len(chosen) :], strict=True):
        if sync is not None and source.name.startswith(HEAD_OFFICE_PREFIX):
            raise ConfigError(
                f"{r.where(item, 'name')}: source {source.name!r}: names starting "
                f"{HEAD_OFFICE_PREFIX} are head office's lists"
            )
    raw_policy = data.get("policy")
    return Config(
        origin=str(r.path),
        data_dir=data_dir,
        sources=tuple(sources),
        fetch=fetch,
        policy=policy,
        own_categories=isinstance(raw_policy, _Mapping) and "categories" in raw_policy,
        sync=sync,
        own_sources=tuple(sources),
        catalogue=selection,
        dns=parse_dns(data.get("dns"), r, data),
        proxy=parse_proxy(data.get("proxy"), r, data),
        store=parse_store(data.get("store"), r, data),
        dashboard=parse_dashboard(data.get("dashboard"), r, data),
        portal=parse_portal(data.get("portal"), r, data),
        router=parse_router(data.get("router"), r, data),
        devices=devices,
        device_lines=device_lines,
    )
