"""A profile: what one group of children (or staff, or guests) may do, and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from profiles.categories import Severity
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


@dataclass(frozen=True)
class Profile:
    """One profile. Category names refer to the category map; `allow` and `block` are the profile's own
    entries: a domain (with its subdomains) or a `domain/path` prefix.

    `bypass` profiles skip every check but help services (a technician's device); `log_allowed` says
    whether allowed requests are kept as events or only counted; `blocked_answer` how DNS answers a block;
    `on_error` whether the proxy fails closed (block) or open (allow) when deciding fails.
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
