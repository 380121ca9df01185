"""The DNS filter's settings (the `dns:` section of appliance.yaml; docs/dns.md lists every key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
