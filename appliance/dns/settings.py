"""The DNS filter's settings (the `dns:` section of appliance.yaml; docs/dns.md lists every key)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

RESOLV_CONF = Path("/etc/resolv.conf")


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


def system_resolvers(path: Path = RESOLV_CONF, exclude: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The `nameserver` addresses of resolv.conf, less `exclude` (our own listening addresses, which
    would send our questions back to us)."""
    found = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ()
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                address = ipaddress.ip_address(fields[1].split("%")[0])
            except ValueError:
                continue
            if str(address) not in exclude:
                found.append(str(address))
    return tuple(found)


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """`host:port`, `[v6]:port`, a bare IPv4 or IPv6 address; ValueError if the port is bad."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
    elif text.count(":") == 1:
        host, _, raw = text.partition(":")
        port = int(raw)
    else:
        host, port = text, default_port
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    return host, port
