"""The appliance's configuration file (YAML): loading, validation with `file:line` errors, defaults.

Three layers, as Flask's tutorial app has them: defaults in code, one deployment file, test overrides
(tests pass their own file). Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from appliance.archives import member_path
from appliance.bundles.sets import named, pointed
from appliance.catalogue import Catalogue, CatalogueError, Selection, load_catalogue, select, switches_of
from appliance.catalogue import read_switches as _read_switches
from appliance.dashboard_settings import Contact, DashboardSettings, PortalSettings
from appliance.dns.settings import BlockSettings, CacheSettings, DnsSettings, RateLimit
from appliance.net import split_host_port
from appliance.pages import Helpline
from appliance.proxy.settings import ProxyMode, ProxySettings
from appliance.router_settings import RouterSettings
from appliance.store.settings import StoreSettings
from appliance.sync_settings import DEFAULT_TRUSTED_ROOT, SyncSettings
from appliance.yaml_lines import Mapping as _Mapping
from appliance.yaml_lines import YamlError, empty_mapping, load_yaml, unknown_key_message
from filters.errors import ApplianceError
from filters.names import BadName, is_address, normalise_host
from filters.sources import Format, Source
from profiles.identity import Device, normalise_mac
from profiles.profile import Profile

ENV_CONFIG = "APPLIANCE_CONFIG"
ENV_DATA_DIR = "APPLIANCE_DATA_DIR"
SYSTEM_CONFIG = Path("/etc/appliance/appliance.yaml")
INDEX_NAME = "filters.idx"


class ConfigError(ApplianceError):
    """The configuration file is wrong; the message starts with `file:line:` and says how to fix it."""


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
    dns: DnsSettings = field(default_factory=DnsSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    portal: PortalSettings = field(default_factory=PortalSettings)
    router: RouterSettings = field(default_factory=RouterSettings)
    devices: tuple[Device, ...] = ()
    device_lines: Mapping[str, int] = field(default_factory=dict)  # device name -> its line in the file
    sync: SyncSettings | None = None  # head office's bundles; None: the lists are this file's own
    set_dir: Path | None = None  # the head-office set in force (its bundle and index), if any yet
    set_note: str | None = None  # why that is not the set `current` names (it is damaged), if so
    own_sources: tuple[Source, ...] = ()  # this file's own sources (with a set, `sources` adds its lists)
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


def load_config(path: Path | None = None, *, set_dir: Path | None = None) -> Config:
    """Read and validate a configuration file. Raises ConfigError naming file:line on any mistake.
    `set_dir`: a head-office set to read instead of the one in force (a sync checking a new set)."""
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
    return _parse(data, path, set_dir)


def _where(path: Path, mapping: _Mapping, key: str | None = None) -> str:
    line = mapping.key_lines.get(key, mapping.line) if key else mapping.line
    return f"{path}:{line}"


def _unknown_keys(path: Path, mapping: _Mapping, allowed: set[str], what: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise ConfigError(f"{_where(path, mapping, key)}: {unknown_key_message(key, allowed, what)}")


def _parse(data: _Mapping, path: Path, set_override: Path | None = None) -> Config:
    sections = {"data_dir", "lists", "policy", "dns", "proxy", "store", "dashboard", "portal", "router"}
    sections |= {"devices", "sync"}
    _unknown_keys(path, data, sections, "the configuration")
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
    _unknown_keys(path, lists, {"sources", "fetch", "preset", "catalogue"}, "lists")

    fetch = _parse_fetch(lists.get("fetch"), path, lists)

    raw_sources = lists.get("sources") or []  # `sources:` with only comments under it is none
    if not isinstance(raw_sources, list):
        raise ConfigError(f"{_where(path, lists, 'sources')}: lists.sources must be a list of sources")
    sources: list[Source] = []
    names: set[str] = set()
    for item in raw_sources:
        source = parse_source(item, path, base, lists)
        if source.name in names:
            raise ConfigError(
                f"{_where(path, item)}: a second source named {source.name!r}: names must be unique"
            )
        names.add(source.name)
        sources.append(source)
    selection, chosen = _parse_catalogue(lists, path)
    for item, source in zip(raw_sources, sources, strict=True):
        if source.name in selection.entries:
            raise ConfigError(
                f"{_where(path, item, 'name')}: source {source.name!r} has the name of a catalogue entry in "
                f"force ({selection.why(source.name)}): rename it, or switch the entry off (lists.catalogue)"
            )
    sources = [*chosen, *sources]
    policy = _parse_policy(data.get("policy"), path, data)
    devices, device_lines = _parse_devices(data.get("devices"), path, data)
    sync = _parse_sync(data.get("sync"), path, data)
    for item, source in zip(raw_sources, sources[len(chosen) :], strict=True):
        if sync is not None and source.name.startswith(HEAD_OFFICE_PREFIX):
            raise ConfigError(
                f"{_where(path, item, 'name')}: source {source.name!r}: names starting "
                f"{HEAD_OFFICE_PREFIX} are head office's lists"
            )
    set_dir: Path | None = None
    bundled: tuple[Source, ...] = ()
    set_note = None
    if sync is not None and set_override is not None:
        set_dir = set_override
        bundled, policy = _set_in_force(set_override, policy, data.get("policy"))
    elif sync is not None:
        set_dir, bundled, policy, set_note = _usable_set(data_dir, policy, data.get("policy"))
    return Config(
        origin=str(path),
        data_dir=data_dir,
        sources=(*bundled, *sources),
        fetch=fetch,
        policy=policy,
        sync=sync,
        set_dir=set_dir,
        set_note=set_note,
        own_sources=tuple(sources),
        catalogue=selection,
        dns=_parse_dns(data.get("dns"), path, data),
        proxy=_parse_proxy(data.get("proxy"), path, data),
        store=_parse_store(data.get("store"), path, data),
        dashboard=_parse_dashboard(data.get("dashboard"), path, data),
        portal=_parse_portal(data.get("portal"), path, data),
        router=_parse_router(data.get("router"), path, data),
        devices=devices,
        device_lines=device_lines,
    )


HEAD_OFFICE_PREFIX = "hq."  # a head-office list's source name: hq.<its name in the bundle>


def _parse_catalogue(lists: _Mapping, path: Path) -> tuple[Selection, list[Source]]:
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
        raise ConfigError(
            f"{_where(path, lists, 'preset')}: lists.preset {preset!r} is not a preset ({known})"
        )
    raw = lists.get("catalogue")
    switches: dict[str, bool] = {}
    unknown: tuple[str, ...] = ()
    switches_file = None
    try:
        if isinstance(raw, _Mapping):
            switches, unknown = switches_of(raw, path, catalogue)
        elif isinstance(raw, list):
            switches, unknown = _listed(raw, path, lists, catalogue)
        elif isinstance(raw, str) and raw.strip():
            switches_file = (path.parent / os.path.expanduser(raw.strip())).resolve()
            switches, unknown = _read_switches(switches_file, catalogue)
        elif raw is not None:
            raise ConfigError(
                f"{_where(path, lists, 'catalogue')}: lists.catalogue is a mapping of entries to on or off "
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
    raw: list[Any], path: Path, lists: _Mapping, catalogue: Catalogue
) -> tuple[dict[str, bool], tuple[str, ...]]:
    """`catalogue: [a, b]`: these entries switched on."""
    lines = getattr(raw, "item_lines", [lists.line_of("catalogue")] * len(raw))
    mapping = empty_mapping(lists.line_of("catalogue"))
    for name, line in zip(raw, lines, strict=True):
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{path}:{line}: lists.catalogue: {name!r} is not a catalogue entry name")
        mapping[name.strip()] = "on"
        mapping.key_lines[name.strip()] = line
    return switches_of(mapping, path, catalogue)


def _usable_set(
    data_dir: Path, policy: PolicySettings, raw_policy: Any
) -> tuple[Path | None, tuple[Source, ...], PolicySettings, str | None]:
    """The set to run: the one `current` names, else (damaged, half gone) the one before it, else the
    file's own lists; with a note saying why, when it is not `current`'s. Never raises for a damaged set:
    filtering must start whatever happened to the disk; `appliance sync` repairs it."""
    notes = []
    for which in ("current", "previous"):
        name = named(data_dir, which)
        folder = pointed(data_dir, which)
        if folder is None:
            if name:
                notes.append(f"set {name} ({which}) is damaged or missing")
            continue
        try:
            bundled, with_set = _set_in_force(folder, policy, raw_policy)
        except ConfigError as e:
            notes.append(f"set {folder.name} ({which}) cannot be read: {e}")
            continue
        return folder, bundled, with_set, "; ".join(notes) or None
    return None, (), policy, "; ".join(notes) or None


def _set_in_force(
    set_dir: Path | None, policy: PolicySettings, raw_policy: Any
) -> tuple[tuple[Source, ...], PolicySettings]:
    """The lists of the head-office set `set_dir` (if a sync has installed one), and the policy with its
    category map (a centre's own `policy.categories` still wins)."""
    if set_dir is None:
        return (), policy
    # Imported here: the bundle's description is read with this module's source checks.
    from appliance.bundles.spec import read_spec

    spec = read_spec(set_dir / "bundle", prefix=HEAD_OFFICE_PREFIX)
    if spec.categories is not None and not (isinstance(raw_policy, _Mapping) and "categories" in raw_policy):
        policy = replace(policy, categories=spec.categories)
    return spec.sources, policy


def _parse_sync(raw: Any, path: Path, data: _Mapping) -> SyncSettings | None:
    keys = {"url", "trusted_root", "ring", "jitter_minutes", "timeout_s", "deadline_s"}
    keys |= {"health_timeout_s", "check_dns"}
    node = _section(raw, path, data, "sync", keys)
    if node is None:
        return None
    url = node.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"{_where(path, node, 'url')}: sync.url must be head office's http(s):// address")
    ring = _text(node, "ring", path, "sync", "stable")
    if not ring or not all(c.isalnum() or c in "-_" for c in ring):
        raise ConfigError(f"{_where(path, node, 'ring')}: sync.ring: use letters, digits, - and _")
    root = node.get("trusted_root", str(DEFAULT_TRUSTED_ROOT))
    if not isinstance(root, str) or not root:
        raise ConfigError(f"{_where(path, node, 'trusted_root')}: sync.trusted_root must be a file path")
    return SyncSettings(
        url=url.rstrip("/"),
        trusted_root=(path.parent / os.path.expanduser(root)).resolve(),
        ring=ring,
        jitter_minutes=_number(node, "jitter_minutes", path, 60, 0, 24 * 60, "sync"),
        timeout_s=_number(node, "timeout_s", path, 60, 1, 3600, "sync"),
        deadline_s=_number(node, "deadline_s", path, 900, 1, 24 * 3600, "sync"),
        health_timeout_s=_number(node, "health_timeout_s", path, 30, 1, 600, "sync"),
        check_dns=_flag(node, "check_dns", path, "sync", True),
    )


def _number(
    node: _Mapping, key: str, path: Path, default: float, low: float, high: float, what: str
) -> float:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{_where(path, node, key)}: {what}.{key} must be a number from {low} to {high}")
    return value


def _addresses(node: _Mapping, key: str, path: Path, what: str, *, ports: bool) -> tuple[str, ...] | None:
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{_where(path, node, key)}: {what}.{key} must be a list of addresses")
    for item in value:
        try:
            host, _ = split_host_port(item, 53) if ports else (item, 53)
            ipaddress.ip_address(host)
        except ValueError as e:
            form = "like 192.168.1.1:53 or [fd00::1]:53" if ports else "like 192.168.1.1 or fd00::1"
            raise ConfigError(
                f"{_where(path, node, key)}: {what}.{key}: {item!r} is not an address {form}"
            ) from e
    return tuple(value)


def _parse_dns(raw: Any, path: Path, data: _Mapping) -> DnsSettings:
    if raw is None:
        return DnsSettings()
    if not isinstance(raw, _Mapping):
        raise ConfigError(f"{_where(path, data, 'dns')}: dns must be a mapping (listen, upstreams, ...)")
    keys = {"listen", "upstreams", "upstream_timeout_s", "servfail_after_s", "cache", "blocked_ttl"}
    keys |= {"block_page_addresses", "rate_limit", "dhcp_leases", "events_path", "tcp_connections_per_device"}
    _unknown_keys(path, raw, keys, "dns")
    d = DnsSettings()
    listen = _addresses(raw, "listen", path, "dns", ports=True) or d.listen
    upstreams = _addresses(raw, "upstreams", path, "dns", ports=True) or d.upstreams
    page = _addresses(raw, "block_page_addresses", path, "dns", ports=False)
    block = BlockSettings(ttl=int(_number(raw, "blocked_ttl", path, d.block.ttl, 0, 3600, "dns")))
    if page is not None:
        v4 = tuple(a for a in page if ":" not in a)
        block = BlockSettings(block.ttl, v4, tuple(a for a in page if ":" in a))
    cache = d.cache
    raw_cache = raw.get("cache")
    if raw_cache is not None:
        if not isinstance(raw_cache, _Mapping):
            raise ConfigError(f"{_where(path, raw, 'cache')}: dns.cache must be a mapping")
        fields = {"min_ttl": 86_400, "max_ttl": 604_800, "negative_ttl": 86_400, "max_negative_ttl": 86_400}
        fields |= {"serve_stale_s": 604_800, "entries": 10_000_000, "failure_recheck_s": 3_600}
        _unknown_keys(path, raw_cache, set(fields), "dns.cache")
        names = {"serve_stale_s": "stale_s"}
        values = {
            names.get(k, k): int(
                _number(raw_cache, k, path, getattr(cache, names.get(k, k)), 0, top, "dns.cache")
            )
            for k, top in fields.items()
        }
        cache = CacheSettings(**values)
    rate = d.rate_limit
    raw_rate = raw.get("rate_limit")
    if raw_rate is not None:
        if not isinstance(raw_rate, _Mapping):
            raise ConfigError(f"{_where(path, raw, 'rate_limit')}: dns.rate_limit must be a mapping")
        _unknown_keys(path, raw_rate, {"per_second", "burst"}, "dns.rate_limit")
        rate = RateLimit(
            _number(raw_rate, "per_second", path, rate.per_second, 0, 1e9, "dns.rate_limit"),
            int(_number(raw_rate, "burst", path, rate.burst, 1, 1e9, "dns.rate_limit")),
        )
    files = {}
    for key in ("dhcp_leases", "events_path"):
        value = raw.get(key)
        if value is not None:
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{_where(path, raw, key)}: dns.{key} must be a file path")
            files[key] = (path.parent / os.path.expanduser(value)).resolve()
    return DnsSettings(
        listen=listen,
        upstreams=upstreams,
        try_timeout_s=_number(raw, "upstream_timeout_s", path, d.try_timeout_s, 0.05, 10, "dns"),
        servfail_after_s=_number(raw, "servfail_after_s", path, d.servfail_after_s, 0.1, 10, "dns"),
        cache=cache,
        block=block,
        rate_limit=rate,
        tcp_per_device=int(
            _number(raw, "tcp_connections_per_device", path, d.tcp_per_device, 1, 65535, "dns")
        ),
        leases=files.get("dhcp_leases"),
        events_path=files.get("events_path"),
    )


_RAW_SERVICES = "proxy.raw_services must be a list of host:port (e.g. mail.example.org:143)"
_REACHABLE = "proxy.reachable_networks must be a list of networks (e.g. 192.168.50.20/32)"


def _parse_proxy(raw: Any, path: Path, data: _Mapping) -> ProxySettings:
    if raw is None:
        return ProxySettings()
    if not isinstance(raw, _Mapping):
        raise ConfigError(f"{_where(path, data, 'proxy')}: proxy must be a mapping (listen, mode, ...)")
    keys = {"listen", "mode", "workers", "page_limit_kb", "upload_limit_kb", "ca_dir", "centre", "helpline"}
    keys |= {"upstream_trusted_ca", "reachable_local_ports", "connections_per_device", "head_timeout_s"}
    keys |= {"raw_services", "reachable_networks"}
    _unknown_keys(path, raw, keys, "proxy")
    d = ProxySettings()
    listen = raw.get("listen", d.listen)
    try:
        host, _ = split_host_port(listen, 8080) if isinstance(listen, str) else ("", 0)
        ipaddress.ip_address(host)
    except ValueError as e:
        raise ConfigError(
            f"{_where(path, raw, 'listen')}: proxy.listen: {listen!r} is not an address like 127.0.0.1:8080"
        ) from e
    mode = raw.get("mode", str(d.mode))
    if mode not in {str(m) for m in ProxyMode}:
        raise ConfigError(f"{_where(path, raw, 'mode')}: proxy.mode must be regular or transparent")
    ca_dir = raw.get("ca_dir")
    if ca_dir is not None and (not isinstance(ca_dir, str) or not ca_dir.strip()):
        raise ConfigError(f"{_where(path, raw, 'ca_dir')}: proxy.ca_dir must be a folder path")
    trusted = raw.get("upstream_trusted_ca")
    if trusted is not None and (not isinstance(trusted, str) or not trusted.strip()):
        raise ConfigError(
            f"{_where(path, raw, 'upstream_trusted_ca')}: proxy.upstream_trusted_ca must be a PEM file path"
        )
    centre = raw.get("centre", d.centre)
    if not isinstance(centre, str):
        raise ConfigError(f"{_where(path, raw, 'centre')}: proxy.centre must be the centre's name")
    helpline = d.helpline
    raw_help = raw.get("helpline")
    if raw_help is not None:
        if not isinstance(raw_help, _Mapping) or not isinstance(raw_help.get("name"), str):
            raise ConfigError(
                f"{_where(path, raw, 'helpline')}: proxy.helpline must be a mapping with a name"
                " (and phone, url, text)"
            )
        _unknown_keys(path, raw_help, {"name", "phone", "url", "text"}, "proxy.helpline")
        parts = {k: raw_help.get(k, "") for k in ("name", "phone", "url", "text")}
        for k, v in parts.items():
            if not isinstance(v, str):
                raise ConfigError(f"{_where(path, raw_help, k)}: proxy.helpline.{k} must be text")
        if parts["url"] and not str(parts["url"]).startswith(("https://", "http://")):
            raise ConfigError(f"{_where(path, raw_help, 'url')}: proxy.helpline.url must start with https://")
        helpline = Helpline(**parts)
    ports = raw.get("reachable_local_ports", [])
    if not isinstance(ports, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports
    ):
        raise ConfigError(
            f"{_where(path, raw, 'reachable_local_ports')}: proxy.reachable_local_ports must be a list of"
            " port numbers"
        )
    services = raw.get("raw_services", [])
    if not isinstance(services, list):
        raise ConfigError(f"{_where(path, raw, 'raw_services')}: {_RAW_SERVICES}")
    raw_services: list[tuple[str, int]] = []
    for i, text in enumerate(services):
        line = getattr(services, "item_lines", [])[i : i + 1] or [raw.line_of("raw_services")]
        try:
            host, port = split_host_port(text, 0) if isinstance(text, str) else ("", 0)
            host = host if is_address(host) else normalise_host(host)
        except (ValueError, BadName) as e:
            raise ConfigError(f"{path}:{line[0]}: {_RAW_SERVICES}: {text!r}: {e}") from e
        if not 0 < port < 65536:
            raise ConfigError(f"{path}:{line[0]}: {_RAW_SERVICES}: {text!r} has no port")
        raw_services.append((host, port))
    networks = raw.get("reachable_networks", [])
    if not isinstance(networks, list):
        raise ConfigError(f"{_where(path, raw, 'reachable_networks')}: {_REACHABLE}")
    for i, text in enumerate(networks):
        line = getattr(networks, "item_lines", [])[i : i + 1] or [raw.line_of("reachable_networks")]
        try:
            ipaddress.ip_network(str(text), strict=False)
        except ValueError as e:
            raise ConfigError(f"{path}:{line[0]}: {_REACHABLE}: {text!r}: {e}") from e
    return ProxySettings(
        reachable_networks=tuple(str(n) for n in networks),
        reachable_local_ports=tuple(ports),
        connections_per_device=int(
            _number(raw, "connections_per_device", path, d.connections_per_device, 1, 100_000, "proxy")
        ),
        head_timeout_s=float(_number(raw, "head_timeout_s", path, d.head_timeout_s, 1, 3600, "proxy")),
        raw_services=tuple(raw_services),
        listen=listen,
        mode=ProxyMode(mode),
        workers=int(_number(raw, "workers", path, d.workers, 0, 64, "proxy")),
        page_limit_kb=int(_number(raw, "page_limit_kb", path, d.page_limit_kb, 0, 65_536, "proxy")),
        upload_limit_kb=int(_number(raw, "upload_limit_kb", path, d.upload_limit_kb, 0, 65_536, "proxy")),
        ca_dir=(path.parent / os.path.expanduser(ca_dir)).resolve() if ca_dir else None,
        centre=centre,
        helpline=helpline,
        upstream_trusted_ca=(path.parent / os.path.expanduser(trusted)).resolve() if trusted else None,
    )


def _section(raw: Any, path: Path, data: _Mapping, name: str, keys: set[str]) -> _Mapping | None:
    if raw is None:
        return None
    if not isinstance(raw, _Mapping):
        raise ConfigError(f"{_where(path, data, name)}: {name} must be a mapping ({', '.join(sorted(keys))})")
    _unknown_keys(path, raw, keys, name)
    return raw


def _parse_store(raw: Any, path: Path, data: _Mapping) -> StoreSettings:
    d = StoreSettings()
    node = _section(raw, path, data, "store", set(d.__dict__))
    if node is None:
        return d
    values = {k: int(_number(node, k, path, v, 1, 36_500, "store")) for k, v in d.__dict__.items()}
    return StoreSettings(**values)


def _networks(node: _Mapping, key: str, path: Path, what: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = node.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{_where(path, node, key)}: {what}.{key} must be a list of networks")
    out = []
    for item in value:
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as e:
            raise ConfigError(
                f"{_where(path, node, key)}: {what}.{key}: {item!r} is not a network like 192.168.10.0/24"
            ) from e
    return tuple(out)


def _text(node: _Mapping, key: str, path: Path, what: str, default: str) -> str:
    value = node.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{_where(path, node, key)}: {what}.{key} must be text")
    return value


def _flag(node: _Mapping, key: str, path: Path, what: str, default: bool) -> bool:
    value = node.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{_where(path, node, key)}: {what}.{key} must be true or false")
    return value


def _parse_dashboard(raw: Any, path: Path, data: _Mapping) -> DashboardSettings:
    d = DashboardSettings()
    keys = {"listen", "admin_networks", "secure_cookies", "idle_minutes", "session_hours", "escalation"}
    keys |= {"arp_sweep", "staff_listen", "staff_tls", "portal_tls_listen", "tls_names"}
    node = _section(raw, path, data, "dashboard", keys)
    if node is None:
        return d
    addresses = {}
    for key in ("listen", "staff_listen", "portal_tls_listen"):
        if key not in node and key != "listen":
            continue
        addresses[key] = value = _text(node, key, path, "dashboard", d.listen)
        try:
            host, _ = split_host_port(value, 8000)
            ipaddress.ip_address(host)
        except ValueError as e:
            raise ConfigError(
                f"{_where(path, node, key)}: dashboard.{key}: {value!r} is not an address like 0.0.0.0:80"
            ) from e
    listen = addresses.get("listen", d.listen)
    staff_listen = addresses.get("staff_listen")
    portal_tls = addresses.get("portal_tls_listen")
    ports = {"listen": split_host_port(listen, 8000)[1]}
    for key, given in (("staff_listen", staff_listen), ("portal_tls_listen", portal_tls)):
        if given is None:
            continue
        port = split_host_port(given, 8000)[1]
        if port in ports.values():
            raise ConfigError(
                f"{_where(path, node, key)}: dashboard.{key} needs a port of its own (not "
                f"dashboard.{next(k for k, p in ports.items() if p == port)}'s)"
            )
        ports[key] = port
    staff_tls = _flag(node, "staff_tls", path, "dashboard", staff_listen is not None)
    if staff_tls and staff_listen is None:
        raise ConfigError(
            f"{_where(path, node, 'staff_tls')}: dashboard.staff_tls needs dashboard.staff_listen (the staff "
            "pages' own port): the children's port stays plain HTTP, for devices that do not trust the "
            "appliance's certificate"
        )
    tls_names = node.get("tls_names", [])
    if not isinstance(tls_names, list) or not all(isinstance(n, str) and n.strip() for n in tls_names):
        raise ConfigError(
            f"{_where(path, node, 'tls_names')}: dashboard.tls_names must be a list of names or addresses"
        )
    contacts = []
    raw_contacts = node.get("escalation", [])
    if not isinstance(raw_contacts, list):
        raise ConfigError(
            f"{_where(path, node, 'escalation')}: dashboard.escalation must be a list of contacts"
        )
    for item in raw_contacts:
        if not isinstance(item, _Mapping) or not isinstance(item.get("name"), str):
            raise ConfigError(
                f"{_where(path, node, 'escalation')}: each escalation contact is a mapping with a name"
                " (and role, phone, email)"
            )
        _unknown_keys(path, item, {"name", "role", "phone", "email"}, "an escalation contact")
        contacts.append(
            Contact(**{k: _text(item, k, path, "escalation", "") for k in ("name", "role", "phone", "email")})
        )
    sweep = None
    raw_sweep = node.get("arp_sweep")
    if raw_sweep is not None:
        if not isinstance(raw_sweep, _Mapping):
            raise ConfigError(
                f"{_where(path, node, 'arp_sweep')}: dashboard.arp_sweep is a mapping: interface, network"
            )
        _unknown_keys(path, raw_sweep, {"interface", "network"}, "dashboard.arp_sweep")
        interface = _text(raw_sweep, "interface", path, "dashboard.arp_sweep", "")
        network = _text(raw_sweep, "network", path, "dashboard.arp_sweep", "")
        try:
            network = str(ipaddress.ip_network(network, strict=False))
        except ValueError as e:
            raise ConfigError(
                f"{_where(path, raw_sweep, 'network')}: dashboard.arp_sweep.network: {network!r} is not a"
                " network like 192.168.50.0/24"
            ) from e
        if not interface:
            raise ConfigError(
                f"{_where(path, raw_sweep)}: dashboard.arp_sweep needs an interface (like eth1)"
            )
        sweep = (interface, network)
    return DashboardSettings(
        arp_sweep=sweep,
        listen=listen,
        staff_listen=staff_listen,
        admin_networks=_networks(node, "admin_networks", path, "dashboard", d.admin_networks),
        staff_tls=staff_tls,
        portal_tls_listen=portal_tls,
        tls_names=tuple(n.strip() for n in tls_names),
        secure_cookies=_flag(node, "secure_cookies", path, "dashboard", d.secure_cookies),
        idle_minutes=int(_number(node, "idle_minutes", path, d.idle_minutes, 1, 24 * 60, "dashboard")),
        session_hours=int(_number(node, "session_hours", path, d.session_hours, 1, 24, "dashboard")),
        escalation=tuple(contacts),
    )


def _parse_portal(raw: Any, path: Path, data: _Mapping) -> PortalSettings:
    d = PortalSettings()
    keys = {"closing_time", "idle_minutes", "rules", "show_names", "staff_profile"}
    node = _section(raw, path, data, "portal", keys)
    if node is None:
        return d
    closing = _text(node, "closing_time", path, "portal", d.closing_time)
    hour, _, minute = closing.partition(":")
    valid = hour.isdigit() and minute.isdigit() and len(minute) == 2 and int(minute) < 60
    if not (valid and (int(hour) < 24 or (int(hour) == 24 and int(minute) == 0))):
        raise ConfigError(
            f"{_where(path, node, 'closing_time')}: portal.closing_time must be a time like 19:30"
            " (24:00 is midnight)"
        )
    rules = node.get("rules")
    if rules is not None and (not isinstance(rules, str) or not rules.strip()):
        raise ConfigError(f"{_where(path, node, 'rules')}: portal.rules must be a text file path")
    return PortalSettings(
        closing_time=closing,
        idle_minutes=int(_number(node, "idle_minutes", path, d.idle_minutes, 1, 24 * 60, "portal")),
        rules=(path.parent / os.path.expanduser(rules)).resolve() if rules else None,
        show_names=_flag(node, "show_names", path, "portal", d.show_names),
        staff_profile=_text(node, "staff_profile", path, "portal", d.staff_profile).strip()
        or d.staff_profile,
    )


def _parse_router(raw: Any, path: Path, data: _Mapping) -> RouterSettings:
    d = RouterSettings()
    keys = {"lan_interface", "wan_interface", "staff_interface", "staff_networks", "blocked_resolvers"}
    node = _section(raw, path, data, "router", keys)
    if node is None:
        return d
    interfaces: dict[str, str] = {}
    for key in ("lan_interface", "wan_interface", "staff_interface"):
        if key == "staff_interface" and node.get(key) is None:
            continue
        name = _text(node, key, path, "router", getattr(d, key))
        if not name or len(name) > 15 or not all(c.isalnum() or c in "-_." for c in name):
            raise ConfigError(f"{_where(path, node, key)}: router.{key}: {name!r} is not an interface name")
        if name in interfaces.values():
            raise ConfigError(
                f"{_where(path, node, key)}: router.{key}: {name!r} is already the "
                f"{next(k for k, v in interfaces.items() if v == name)}: each network needs its own "
                "interface (a VLAN like eth1.60 on the same cable will do)"
            )
        interfaces[key] = name
    staff_networks = _networks(node, "staff_networks", path, "router", d.staff_networks)
    if staff_networks and "staff_interface" not in interfaces:
        raise ConfigError(
            f"{_where(path, node, 'staff_networks')}: router.staff_networks needs router.staff_interface: "
            "the staff network's own interface (a VLAN like eth1.60, or a second port). On the children's "
            "interface an address tells nothing: any device can set a staff-range one"
        )
    return RouterSettings(
        staff_networks=staff_networks,
        blocked_resolvers=_networks(node, "blocked_resolvers", path, "router", d.blocked_resolvers),
        **interfaces,
    )


def _parse_devices(raw: Any, path: Path, data: _Mapping) -> tuple[tuple[Device, ...], dict[str, int]]:
    if raw is None:
        return (), {}
    if not isinstance(raw, list):
        raise ConfigError(f"{_where(path, data, 'devices')}: devices must be a list of devices")
    devices, lines = [], {}
    for item in raw:
        if not isinstance(item, _Mapping):
            raise ConfigError(
                f"{_where(path, data, 'devices')}: each device must be a mapping (name, profile, ...)"
            )
        _unknown_keys(path, item, {"name", "profile", "mac", "network", "managed"}, "a device")
        name, profile = item.get("name"), item.get("profile")
        if (
            not isinstance(name, str)
            or not name.strip()
            or not isinstance(profile, str)
            or not profile.strip()
        ):
            raise ConfigError(f"{_where(path, item)}: a device needs a name and a profile")
        name = name.strip()
        if name in lines:
            raise ConfigError(f"{_where(path, item, 'name')}: a second device named {name!r}")
        lines[name] = item.line
        mac, network, managed = item.get("mac"), item.get("network"), item.get("managed", False)
        if (mac is None) == (network is None):
            raise ConfigError(f"{_where(path, item)}: device {name!r}: give exactly one of mac or network")
        if mac is not None:
            try:
                mac = normalise_mac(str(mac))
            except ValueError as e:
                raise ConfigError(f"{_where(path, item, 'mac')}: device {name!r}: {e}") from e
        if network is not None:
            try:
                network = str(ipaddress.ip_network(str(network), strict=False))
            except ValueError as e:
                raise ConfigError(
                    f"{_where(path, item, 'network')}: device {name!r}: {network!r} is not an address or "
                    "network (like 192.168.1.20 or 192.168.1.0/28)"
                ) from e
        if not isinstance(managed, bool):
            raise ConfigError(f"{_where(path, item, 'managed')}: device {name!r}: managed is true or false")
        devices.append(Device(name, profile.strip(), mac, network, managed))
    return tuple(devices), lines


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


_MB = 1024 * 1024


def _parse_fetch(raw: Any, path: Path, lists: _Mapping) -> FetchSettings:
    """`lists.fetch`: how downloads spare the link, and how far an archive may unpack."""
    d = FetchSettings()
    keys = {"timeout_s", "connect_timeout_s", "max_mb", "attempts", "backoff_s", "mirror"}
    keys |= {"max_unpacked_mb", "max_ratio"}
    node = _section(raw, path, lists, "lists.fetch", keys)
    if node is None:
        return d

    def whole(key: str, default: int, low: int, high: int) -> int:
        value = node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(
                f"{_where(path, node, key)}: lists.fetch.{key} must be a whole number from {low} to {high}"
            )
        return value

    mirror = node.get("mirror")
    if mirror is not None and (not isinstance(mirror, str) or not mirror.startswith(("http://", "https://"))):
        raise ConfigError(
            f"{_where(path, node, 'mirror')}: lists.fetch.mirror must be an http:// or https:// base URL"
        )
    return FetchSettings(
        timeout_s=float(_number(node, "timeout_s", path, d.timeout_s, 0.1, 600, "lists.fetch")),
        connect_timeout_s=float(
            _number(node, "connect_timeout_s", path, d.connect_timeout_s, 0.1, 600, "lists.fetch")
        ),
        max_bytes=whole("max_mb", d.max_bytes // _MB, 1, 4096) * _MB,
        attempts=whole("attempts", d.attempts, 1, 10),
        backoff_s=float(_number(node, "backoff_s", path, d.backoff_s, 0, 300, "lists.fetch")),
        mirror=mirror.rstrip("/") if mirror else None,
        max_unpacked_bytes=whole("max_unpacked_mb", d.max_unpacked_bytes // _MB, 1, 16384) * _MB,
        max_ratio=whole("max_ratio", d.max_ratio, 2, 100_000),
    )


def parse_source(item: Any, path: Path, base: Path, parent: _Mapping) -> Source:
    """One list source of a `sources:` list (paths relative to `base`). Raises ConfigError with file:line."""
    if not isinstance(item, _Mapping):
        raise ConfigError(
            f"{_where(path, parent, 'sources')}: each source must be a mapping (name, format, ...)"
        )
    _unknown_keys(path, item, {"name", "format", "category", "path", "url", "members"}, "a source")
    for key in ("name", "format", "category"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{_where(path, item)}: source is missing {key!r} (a non-empty text)")
    name = item["name"].strip()
    # Not starting with ".": the name is a file name under data_dir/lists, beside hidden working files.
    if not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ConfigError(
            f"{_where(path, item, 'name')}: source name {name!r}: use letters, digits, - _ . only "
            "(not first: .)"
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
        location = url
    else:
        raw = item["path"]
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"{_where(path, item, 'path')}: source {name!r}: path must be a file or folder")
        location = str((base / os.path.expanduser(raw)).resolve())
    source = Source(name=name, format=fmt, category=item["category"].strip(), location=location)
    if fmt is Format.UT1 and source.archive in (None, ".gz") and has_url:
        raise ConfigError(
            f"{_where(path, item, 'url')}: source {name!r}: ut1 sources are folders (use path) or "
            "category archives (a url ending .tar.gz, .tgz or .zip)"
        )
    if fmt is Format.UT1 and source.archive == ".gz":
        raise ConfigError(
            f"{_where(path, item, 'path')}: source {name!r}: a .gz holds one file, not a ut1 category "
            "folder: use its .tar.gz, .tgz or .zip"
        )
    return replace(source, members=_members(item, path, source))


def _members(item: _Mapping, path: Path, source: Source) -> tuple[str, ...]:
    """A source's `members:` (the files, or for ut1 the folders, of an archive to take), normalised."""
    raw = item.get("members")
    if raw is None:
        return ()
    where = f"{_where(path, item, 'members')}: source {source.name!r}"
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


def device_problems(config: Config, profiles: Mapping[str, Profile]) -> list[str]:
    """`file:line` errors for devices whose profile is not among `profiles`, and for devices given the
    staff profile by what a child's device could claim (`staff_device_problem`)."""
    out = []
    for d in config.devices:
        where = f"{config.origin}:{config.device_lines.get(d.name, 1)}: device {d.name!r}"
        if d.profile not in profiles:
            out.append(f"{where}: no profile {d.profile!r} (profiles: {', '.join(sorted(profiles))})")
            continue
        problem = staff_device_problem(d, profiles[d.profile], config)
        if problem:
            out.append(f"{where}: {problem}")
    named = config.portal.staff_profile != PortalSettings().staff_profile  # the default may be absent
    if profiles and named and config.portal.staff_profile not in profiles:
        out.append(
            f"{config.origin}: portal.staff_profile: no profile {config.portal.staff_profile!r} "
            f"(profiles: {', '.join(sorted(profiles))})"
        )
    return out


def staff_device_problem(device: Device, profile: Profile, config: Config) -> str | None:
    """Why `device` may not have `profile`, if that is the staff profile (`portal.staff_profile`) or one
    that skips filtering (`bypass`), given by what any device can claim: a MAC (copied in a minute), or,
    in router mode, an address outside the staff interface's networks (on the children's interface any
    device can set any address; on the staff interface the router drops sources that do not belong).
    Staff on the children's network sign in at the portal instead."""
    if not (profile.bypass or profile.name == config.portal.staff_profile):
        return None
    if device.mac is not None:
        return (
            f"profile {profile.name!r} cannot be given by MAC address (any device can copy one): name the "
            "device by its address on the staff network, or let staff sign in at the portal on it"
        )
    if config.proxy.mode is not ProxyMode.TRANSPARENT:
        return None  # not the router: addresses are the centre's own network's business
    staff = [ipaddress.ip_network(n) for n in config.router.staff_networks]
    network = ipaddress.ip_network(device.network or "", strict=False)
    if not any(network.version == s.version and network.subnet_of(s) for s in staff):  # type: ignore[arg-type]
        within = (
            f"is not within router.staff_networks ({', '.join(config.router.staff_networks)})"
            if staff
            else "cannot be on the staff interface: router.staff_networks is not set"
        )
        return (
            f"profile {profile.name!r} in router mode is only for the staff interface's addresses: "
            f"{device.network} {within}; staff on the children's network sign in at the portal"
        )
    return None
