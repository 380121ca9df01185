"""A profile: what one group of children (or staff, or guests) may do, and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from profiles.categories import Severity
from profiles.controls import Budget
from profiles.pii import PiiKind
from profiles.safesearch import SafeSearchSetting
from profiles.schedule import ScheduleRule
from profiles.verdict import Action, LogDetail


class Mode(StrEnum):
    """`filtered`: everything is allowed but the blocked categories (a blacklist, for older children);
    `allowlist-only`: nothing is allowed but the allowlist (a whitelist, for the youngest)."""

    FILTERED = "filtered"
    ALLOWLIST_ONLY = "allowlist-only"


class BlockedAnswer(StrEnum):
    """What the DNS filter answers for a blocked name: `block-page` (the appliance's own address, so a
    browser reaches the block page), `zero` (0.0.0.0 and ::, nothing at all), or `nxdomain` (no such name)."""

    BLOCK_PAGE = "block-page"
    ZERO = "zero"
    NXDOMAIN = "nxdomain"


class OnError(StrEnum):
    """What the proxy does when deciding fails (a policy or scorer error): `block` shows the "temporarily
    unavailable" page (fail closed, for children), `allow` lets the request through (staff)."""

    BLOCK = "block"
    ALLOW = "allow"


@dataclass(frozen=True)
class PersonalInfoRule:
    """What happens when a child sends personal information: `allow` (off), `flag`, or `block`."""

    action: Action = Action.FLAG
    kinds: frozenset[PiiKind] = frozenset(PiiKind)


@dataclass(frozen=True)
class PhraseRule:
    """Page scoring: a page whose weighted phrase score for a category reaches its limit is acted on."""

    limits: Mapping[str, int] = field(default_factory=dict)
    action: Action = Action.BLOCK


# Ports that never go straight out, whatever a profile says: DNS is answered by the appliance, web traffic
# goes through the proxy, DNS over TLS/QUIC and QUIC are refused (the router's rules do all of these first).
RESERVED_PORTS = {"tcp": (53, 80, 443, 853), "udp": (53, 443, 853)}


@dataclass(frozen=True)
class DirectPort:
    """A port (or range) a profile's named devices may reach on the Internet directly, not through the
    proxy: `tcp/5222`, `udp/3478`, `tcp/6000-6010`. Undecided and unlogged by the filter: only for
    services the centre has approved (a video-call app, a game the centre runs)."""

    protocol: str  # tcp or udp
    first: int
    last: int

    def __str__(self) -> str:
        ports = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{self.protocol}/{ports}"

    @classmethod
    def parse(cls, text: str) -> DirectPort:
        """`tcp/5222`, `udp/3478` or `tcp/6000-6010`; ValueError saying what is wrong otherwise."""
        protocol, slash, ports = text.strip().lower().partition("/")
        if protocol not in RESERVED_PORTS or not slash:
            raise ValueError(f"{text!r} is not like tcp/5222, udp/3478 or tcp/6000-6010")
        first, dash, last = ports.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"{text!r} is not like tcp/5222, udp/3478 or tcp/6000-6010")
        low, high = int(first), int(last) if dash else int(first)
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"{text!r}: ports are 1 to 65535, the lower first")
        reserved = [p for p in RESERVED_PORTS[protocol] if low <= p <= high]
        if reserved:
            raise ValueError(
                f"{text!r}: {protocol}/{reserved[0]} never goes out directly (DNS is answered by the "
                "appliance, web traffic goes through the proxy, DNS over TLS and QUIC are refused)"
            )
        return cls(protocol, low, high)


@dataclass(frozen=True)
class Profile:
    """One profile. Category names refer to the category map; `allow` and `block` are the profile's own
    entries: a domain (with its subdomains) or a `domain/path` prefix.

    `bypass` profiles skip every check but help services (a technician's device); `log_allowed` says
    whether allowed requests are kept as events or only counted; `blocked_answer` how DNS answers a block;
    `on_error` whether the proxy fails closed (block) or open (allow) when deciding fails;
    `direct_ports` what the devices the configuration names with this profile may reach on the Internet
    without the proxy (router mode; everything else from the children's network that the proxy does not
    carry is dropped).
    """

    name: str
    description: str
    reasoning: str = ""
    mode: Mode = Mode.FILTERED
    bypass: bool = False
    blocked_categories: frozenset[str] = frozenset()
    flagged_categories: Mapping[str, Severity] = field(default_factory=dict)
    allowed_categories: frozenset[str] = frozenset()
    allow: tuple[str, ...] = ()
    block: tuple[str, ...] = ()
    safe_search: SafeSearchSetting = field(default_factory=SafeSearchSetting)
    schedule: ScheduleRule | None = None
    phrases: PhraseRule = field(default_factory=PhraseRule)
    watch: tuple[str, ...] = ()
    personal_info: PersonalInfoRule = field(default_factory=PersonalInfoRule)
    intercept_tls: bool = False
    blocked_downloads: frozenset[str] = frozenset()
    log_allowed: LogDetail = LogDetail.COUNT
    blocked_answer: BlockedAnswer = BlockedAnswer.BLOCK_PAGE
    on_error: OnError = OnError.BLOCK
    direct_ports: tuple[DirectPort, ...] = ()
    budget: Budget | None = None  # daily minutes of internet and per category, for its signed-in children
