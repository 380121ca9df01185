"""Safe-search rules: which search-engine hosts are sent to their safe target, and which engines cannot
be forced safe (they are blocked when a profile has safe search on)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from profiles.verdict import SafeTarget


class YouTubeMode(StrEnum):
    """YouTube's restricted modes: strict hides more than moderate; off leaves YouTube as it is."""

    STRICT = "strict"
    MODERATE = "moderate"
    OFF = "off"


@dataclass(frozen=True)
class SafeSearchSetting:
    """A profile's safe search: on or off, and YouTube's mode."""

    enabled: bool = True
    youtube: YouTubeMode = YouTubeMode.STRICT


@dataclass(frozen=True)
class Engine:
    """A search engine: the hosts to rewrite and the safe target.

    `moderate` (YouTube only) is the target and headers for YouTube's moderate mode.
    """

    name: str
    hosts: frozenset[str]
    target: SafeTarget
    moderate: SafeTarget | None = None

    def target_for(self, setting: SafeSearchSetting) -> SafeTarget | None:
        """The target for a profile's setting, or None where that setting leaves the engine alone."""
        if not setting.enabled:
            return None
        if self.moderate is None:
            return self.target
        if setting.youtube is YouTubeMode.OFF:
            return None
        return self.moderate if setting.youtube is YouTubeMode.MODERATE else self.target


@dataclass(frozen=True)
class SafeSearchRules:
    """All engines, and the domains of engines that cannot be forced safe (with their subdomains)."""

    engines: tuple[Engine, ...] = ()
    unsupported: frozenset[str] = frozenset()
    _by_host: dict[str, Engine] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_host", {h: e for e in self.engines for h in e.hosts})

    def engine_for(self, host: str) -> Engine | None:
        """The engine whose rewrite applies to exactly this host (safe-search rewrites are per host)."""
        return self._by_host.get(host)

    def unsupported_domain(self, suffixes: Iterable[str]) -> str | None:
        """The listed unsupported-engine domain among a host's `suffixes` (itself, then its parents)."""
        return next((s for s in suffixes if s in self.unsupported), None)
