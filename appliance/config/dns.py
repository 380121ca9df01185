"""The DNS filter's settings (the `dns:` section of appliance.yaml; docs/dns.md lists every key)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.config.reader import ConfigError, Reader
from appliance.config.reader import Mapping as _Mapping
from appliance.net import split_host_port


@dataclass(frozen=True)
class CacheSettings:
    """The upstream answer cache: TTL floor and ceiling, negative answers, serve-stale window and failure
    recheck (RFC 8767), size."""

    min_ttl: int = 10
    max_ttl: int = 86_400
    negative_ttl: int = 60  # for a negative answer without an SOA record
    max_negative_ttl: int = 3_600
    stale_s: int = 3_600
    entries: int = 100_000
    # After a failed refresh of a name (or every upstream silent on a question), expired names with a
    # stale answer get it at once, and are asked upstream again in the background at most this often.
    failure_recheck_s: int = 30


@dataclass(frozen=True)
class BlockSettings:
    """How blocks are answered: TTL (short, so an unblock applies quickly) and the appliance's own
    addresses for `block-page` answers (an empty family gets NODATA)."""

    ttl: int = 10
    page_v4: tuple[str, ...] = ("127.0.0.1",)
    page_v6: tuple[str, ...] = ("::1",)


@dataclass(frozen=True)
class RateLimit:
    """Per device (never per network: a centre is one /24): a sustained rate and a burst. 0 = off."""

    per_second: float = 100.0
    burst: int = 1000


@dataclass(frozen=True)
class DnsSettings:
    listen: tuple[str, ...] = ("127.0.0.1:5353", "[::1]:5353")
    upstreams: tuple[str, ...] = ()  # empty: the machine's own resolvers from /etc/resolv.conf
    try_timeout_s: float = 0.8
    servfail_after_s: float = 1.8
    cache: CacheSettings = field(default_factory=CacheSettings)
    block: BlockSettings = field(default_factory=BlockSettings)
    rate_limit: RateLimit = field(default_factory=RateLimit)
    tcp_per_device: int = 16  # TCP connections open at once from one address (256 in all)
    leases: Path | None = None
    events_path: Path | None = None  # default: <data_dir>/appliance.sqlite


def address_list(node: _Mapping, key: str, r: Reader, what: str, *, ports: bool) -> tuple[str, ...] | None:
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{r.where(node, key)}: {what}.{key} must be a list of addresses")
    for item in value:
        try:
            host, _ = split_host_port(item, 53) if ports else (item, 53)
            ipaddress.ip_address(host)
        except ValueError as e:
            form = "like 192.168.1.1:53 or [fd00::1]:53" if ports else "like 192.168.1.1 or fd00::1"
            raise ConfigError(f"{r.where(node, key)}: {what}.{key}: {item!r} is not an address {form}") from e
    return tuple(value)


def parse_dns(raw: Any, r: Reader, data: _Mapping) -> DnsSettings:
    if raw is None:
        return DnsSettings()
    if not isinstance(raw, _Mapping):
        raise ConfigError(f"{r.where(data, 'dns')}: dns must be a mapping (listen, upstreams, ...)")
    keys = {"listen", "upstreams", "upstream_timeout_s", "servfail_after_s", "cache", "blocked_ttl"}
    keys |= {"block_page_addresses", "rate_limit", "dhcp_leases", "events_path", "tcp_connections_per_device"}
    r.keys(raw, keys, "dns")
    d = DnsSettings()
    listen = address_list(raw, "listen", r, "dns", ports=True) or d.listen
    upstreams = address_list(raw, "upstreams", r, "dns", ports=True) or d.upstreams
    page = address_list(raw, "block_page_addresses", r, "dns", ports=False)
    block = BlockSettings(ttl=int(r.number(raw, "blocked_ttl", d.block.ttl, 0, 3600, "dns")))
    if page is not None:
        v4 = tuple(a for a in page if ":" not in a)
        block = BlockSettings(block.ttl, v4, tuple(a for a in page if ":" in a))
    cache = d.cache
    raw_cache = raw.get("cache")
    if raw_cache is not None:
        if not isinstance(raw_cache, _Mapping):
            raise ConfigError(f"{r.where(raw, 'cache')}: dns.cache must be a mapping")
        fields = {"min_ttl": 86_400, "max_ttl": 604_800, "negative_ttl": 86_400, "max_negative_ttl": 86_400}
        fields |= {"serve_stale_s": 604_800, "entries": 10_000_000, "failure_recheck_s": 3_600}
        r.keys(raw_cache, set(fields), "dns.cache")
        names = {"serve_stale_s": "stale_s"}
        values = {
            names.get(k, k): int(r.number(raw_cache, k, getattr(cache, names.get(k, k)), 0, top, "dns.cache"))
            for k, top in fields.items()
        }
        cache = CacheSettings(**values)
    rate = d.rate_limit
    raw_rate = raw.get("rate_limit")
    if raw_rate is not None:
        if not isinstance(raw_rate, _Mapping):
            raise ConfigError(f"{r.where(raw, 'rate_limit')}: dns.rate_limit must be a mapping")
        r.keys(raw_rate, {"per_second", "burst"}, "dns.rate_limit")
        rate = RateLimit(
            r.number(raw_rate, "per_second", rate.per_second, 0, 1e9, "dns.rate_limit"),
            int(r.number(raw_rate, "burst", rate.burst, 1, 1e9, "dns.rate_limit")),
        )
    files = {}
    for key in ("dhcp_leases", "events_path"):
        value = raw.get(key)
        if value is not None:
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{r.where(raw, key)}: dns.{key} must be a file path")
            files[key] = (r.path.parent / os.path.expanduser(value)).resolve()
    return DnsSettings(
        listen=listen,
        upstreams=upstreams,
        try_timeout_s=r.number(raw, "upstream_timeout_s", d.try_timeout_s, 0.05, 10, "dns"),
        servfail_after_s=r.number(raw, "servfail_after_s", d.servfail_after_s, 0.1, 10, "dns"),
        cache=cache,
        block=block,
        rate_limit=rate,
        tcp_per_device=int(r.number(raw, "tcp_connections_per_device", d.tcp_per_device, 1, 65535, "dns")),
        leases=files.get("dhcp_leases"),
        events_path=files.get("events_path"),
    )
