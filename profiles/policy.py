"""The policy in force: categories, profiles, safe search, watch lists, the centre's time zone, and the
compiled lists they are read against, prepared once so `decide` costs little more than the match.

A policy is built whole and checked whole; a reload builds a new one and swaps it in.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import IntEnum

from filters.index import FilterIndex, RawHit
from filters.sources import Rank
from filters.urls import PathReadings, canonical_host, canonical_path, read_path
from profiles.categories import Category, CategoryMap, Kind
from profiles.errors import PolicyError, UnknownProfile
from profiles.identity import GUEST
from profiles.profile import Mode, Profile
from profiles.safesearch import Engine, SafeSearchRules
from profiles.schedule import Outside
from profiles.search_terms import is_search_host
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict
from profiles.watch import WatchList

# Names that tell a device's software whether to get round the filter. Firefox turns its own DNS over
# HTTPS off when the canary has no answer (NXDOMAIN: an address is not enough); iCloud Private Relay
# likewise; designated-resolver discovery (RFC 9462) must find nothing.
NXDOMAIN_CANARIES = frozenset({"use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com"})
NODATA_CANARIES = frozenset({"resolver.arpa", "_dns.resolver.arpa"})
_HOST_CACHE_SIZE = 4096
_MEMO_SIZE = 8192
_MINUTE = timedelta(minutes=1)
_NEVER = datetime.min.replace(tzinfo=UTC)


class Special(IntEnum):
    """Hosts the decision treats before any list: never logged, never blocked, or never answered."""

    NONE = 0
    HELP = 1
    PORTAL = 2
    CANARY_NXDOMAIN = 3
    CANARY_NODATA = 4


class Effect(IntEnum):
    """What a list hit means under one profile."""

    IGNORE = 0
    ALWAYS_BLOCK = 1
    ALLOWLIST = 2
    BLOCK = 3
    FLAG = 4
    EXCEPTION = 5  # an allow entry of an `exceptions` list: takes the name out of its category


@dataclass(frozen=True)
class Override:
    """A profile's own allow or block entry that applies to a host: the whole domain (`prefix` empty),
    or a path prefix, canonical, with its readings (`filters.urls.read_path`)."""

    action: Action
    prefix: str
    rule: str
    path: PathReadings | None = None

    @property
    def specificity(self) -> int:
        return len(self.rule)


@dataclass(frozen=True)
class HostFacts:
    """What the policy (not the lists) says about one host, found once and remembered."""

    special: Special = Special.NONE
    special_rule: str = ""
    safe_engine: Engine | None = None
    unsupported: str | None = None
    search: bool = False  # a search engine whose searches are checked against watch lists
    overrides: Mapping[str, tuple[Override, ...]] = field(default_factory=dict)


NO_FACTS = HostFacts()


def host_suffixes(host: str) -> Iterator[str]:
    """`a.b.c`, then `b.c`, then `c`."""
    while True:
        yield host
        dot = host.find(".")
        if dot < 0:
            return
        host = host[dot + 1 :]


class ProfileRules:
    """One profile prepared against the compiled lists: what each source's hits mean, the ready-made
    verdicts of the common cases, and the schedule state of the current minute."""

    def __init__(self, profile: Profile, policy: Policy) -> None:
        self.profile = profile
        self.name = profile.name
        self.allowlist_only = profile.mode is Mode.ALLOWLIST_ONLY
        # Per source id, twice: a block-list entry at 2*sid, an allow entry (whitelist, exception) at 2*sid+1.
        effects: list[tuple[Effect, Category | None]] = []
        for info, rank in zip(policy.index.sources, policy.source_ranks, strict=True):
            category = policy.categories.for_source(info.name, info.category)
            effects.append((self._effect(category, listed_allow=False), category))
            effects.append((self._effect(category, listed_allow=True, rank=rank), category))
        self.effects = tuple(effects)
        self.watch_lists = tuple(policy.watch_lists[name] for name in profile.watch)
        self.zone = policy.zone
        allowed_log = profile.log_allowed
        self.allow = Verdict(Action.ALLOW, self.name, log=allowed_log)
        self.help = Verdict(
            Action.ALLOW,
            self.name,
            (Reason(Step.HELP_SERVICE, Action.ALLOW, "a help service: never logged"),),
            log=LogDetail.NONE,
        )
        self.portal = Verdict(
            Action.ALLOW,
            self.name,
            (Reason(Step.PORTAL, Action.ALLOW, "the centre's portal"),),
            log=allowed_log,
        )
        bypass = Reason(Step.STAFF_BYPASS, Action.ALLOW, f"profile {self.name!r} bypasses filtering")
        self.bypass = Verdict(Action.ALLOW, self.name, (bypass,), log=allowed_log) if profile.bypass else None
        self.scheduled = profile.schedule is not None
        self.downloads = profile.blocked_downloads
        # Verdicts by list hits, for requests nothing else in the policy is about (see `decide`).
        self.memo: dict[Hashable, Verdict] = {}
        self.by_identity: dict[int, tuple[tuple[RawHit, ...], Verdict]] = {}
        self._from = self._until = _NEVER
        self.open_from = self.open_until = _NEVER
        self._outside: Outside | None = None

    def remember_identity(self, raw: tuple[RawHit, ...], verdict: Verdict) -> None:
        if len(self.by_identity) >= _MEMO_SIZE:
            self.by_identity.clear()
        self.by_identity[id(raw)] = (raw, verdict)  # holding `raw` keeps its id from being reused

    def remember(self, key: Hashable, verdict: Verdict) -> None:
        if len(self.memo) >= _MEMO_SIZE:
            self.memo.clear()
        self.memo[key] = verdict

    def _effect(self, category: Category | None, *, listed_allow: bool, rank: Rank = Rank.SPECIFIC) -> Effect:
        if category is None:
            return Effect.IGNORE
        if listed_allow and rank is Rank.EXCEPTIONS and category.kind is Kind.RISK:
            # Our reviewed exceptions: the name is not what the other lists of this category say, for
            # every profile alike (`decide` takes those entries out; it allows nothing else).
            return Effect.EXCEPTION
        name, profile = category.name, self.profile
        if category.kind is Kind.ALLOWLIST or listed_allow:
            # A whitelist entry counts only for the categories the profile allows; an adblock exception
            # only cancels its own list's block, which the match has already done.
            return Effect.ALLOWLIST if name in profile.allowed_categories else Effect.IGNORE
        if category.always_blocked:
            return Effect.ALWAYS_BLOCK
        if name in profile.blocked_categories:
            return Effect.BLOCK
        if name in profile.flagged_categories:
            return Effect.FLAG
        if name in profile.allowed_categories:
            return Effect.ALLOWLIST
        return Effect.IGNORE

    def outside(self, now: datetime) -> Outside | None:
        """None inside the profile's windows (or without a schedule), else what happens outside them.

        Windows are whole minutes, so the answer is worked out once a minute.
        """
        rule = self.profile.schedule
        if rule is None:
            return None
        # Comparing aware times that share a tzinfo costs a tenth of now.timestamp().
        if not self._from <= now < self._until:
            self._outside = None if rule.is_open(now, self.zone) else rule.outside
            self._from = now.replace(second=0, microsecond=0)
            self._until = self._from + _MINUTE
            # `decide` skips the call altogether within a minute found open.
            self.open_from, self.open_until = (
                (self._from, self._until) if self._outside is None else (_NEVER, _NEVER)
            )
        return self._outside


@dataclass(frozen=True)
class Policy:
    """Everything `decide` reads. Raises PolicyError if a profile names what the policy does not have.

    `help_services` are domains never blocked and never logged (helplines); `portal_hosts` the
    appliance's own pages (sign-in, block page, certificate), reachable by everyone at any hour.
    `ranks` gives the rank of list sources by name (the catalogue's `rank`); any other is `specific`.
    """

    categories: CategoryMap
    profiles: Mapping[str, Profile]
    index: FilterIndex
    zone: tzinfo
    safe_search: SafeSearchRules = field(default_factory=SafeSearchRules)
    watch_lists: Mapping[str, WatchList] = field(default_factory=dict)
    help_services: frozenset[str] = frozenset()
    portal_hosts: frozenset[str] = frozenset()
    guest: str = "guest"
    ranks: Mapping[str, Rank] = field(default_factory=dict)
    # Read by `decide` directly: the prepared profiles, the memo of host facts by host, and the rank of
    # each source of the index by its id.
    rules: Mapping[str, ProfileRules] = field(init=False, repr=False, compare=False)
    source_ranks: tuple[Rank, ...] = field(init=False, repr=False, compare=False)
    facts: dict[str, HostFacts] = field(init=False, repr=False, compare=False)
    _overrides: dict[str, list[tuple[str, Override]]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check()
        overrides: dict[str, list[tuple[str, Override]]] = {}
        for profile in self.profiles.values():
            for action, entries in ((Action.ALLOW, profile.allow), (Action.BLOCK, profile.block)):
                for entry in entries:
                    # Matched as requests are, in canonical form (`/%62itesize` is `/bitesize`) and
                    # as servers read paths (`decide._own_entry`); the entry as written names the
                    # rule in reasons.
                    domain, slash, path = entry.partition("/")
                    prefix = canonical_path(slash + path) if slash else ""
                    override = Override(action, prefix, entry, read_path(prefix) if prefix else None)
                    overrides.setdefault(canonical_host(domain), []).append((profile.name, override))
        object.__setattr__(self, "_overrides", overrides)
        object.__setattr__(self, "facts", {})
        object.__setattr__(
            self, "source_ranks", tuple(self.ranks.get(s.name, Rank.SPECIFIC) for s in self.index.sources)
        )
        object.__setattr__(self, "rules", {name: ProfileRules(p, self) for name, p in self.profiles.items()})

    def _check(self) -> None:
        if self.guest not in self.profiles:
            raise PolicyError(f"there is no guest profile {self.guest!r}: devices nobody knows need one")
        if self.guest != GUEST and GUEST in self.profiles:
            raise PolicyError(
                f"the guest profile is {self.guest!r}, yet a profile is named {GUEST!r}: rename one of them"
            )
        for profile in self.profiles.values():
            named = (
                *profile.blocked_categories,
                *profile.flagged_categories,
                *profile.allowed_categories,
                *profile.phrases.limits,
            )
            for name in named:
                if name not in self.categories:
                    raise PolicyError(f"profile {profile.name!r}: unknown category {name!r}")
            for name in profile.watch:
                if name not in self.watch_lists:
                    raise PolicyError(f"profile {profile.name!r}: unknown watch list {name!r}")
            if profile.mode is Mode.ALLOWLIST_ONLY and not (profile.allowed_categories or profile.allow):
                raise PolicyError(f"profile {profile.name!r}: allowlist-only with nothing on the allowlist")

    def rules_for(self, profile: str) -> ProfileRules:
        """The prepared profile; `guest` (what `identify` gives nobody-knows-who) is the policy's guest."""
        try:
            return self.rules[profile]
        except KeyError:
            if profile == GUEST:
                return self.rules[self.guest]
            raise UnknownProfile(f"no profile {profile!r} in the policy in force") from None

    def host_facts(self, host: str) -> HostFacts:
        """What the policy says about `host` itself (not the lists), remembered per host."""
        facts = self.facts.get(host)
        if facts is None:
            facts = self._find_facts(host)
            if len(self.facts) >= _HOST_CACHE_SIZE:
                self.facts.clear()
            self.facts[host] = facts
        return facts

    def _find_facts(self, host: str) -> HostFacts:
        special, special_rule = Special.NONE, ""
        if host in NXDOMAIN_CANARIES:
            special, special_rule = Special.CANARY_NXDOMAIN, host
        elif host in NODATA_CANARIES:
            special, special_rule = Special.CANARY_NODATA, host
        overrides: dict[str, list[Override]] = {}
        for suffix in host_suffixes(host):
            if special is Special.NONE and suffix in self.help_services:
                special, special_rule = Special.HELP, suffix
            elif special is Special.NONE and suffix in self.portal_hosts:
                special, special_rule = Special.PORTAL, suffix
            for profile, override in self._overrides.get(suffix, ()):
                overrides.setdefault(profile, []).append(override)
        engine = self.safe_search.engine_for(host)
        unsupported = self.safe_search.unsupported_domain(host_suffixes(host))
        search = is_search_host(host)
        if (
            special is Special.NONE
            and engine is None
            and unsupported is None
            and not overrides
            and not search
        ):
            return NO_FACTS
        return HostFacts(
            special,
            special_rule,
            engine,
            unsupported,
            search,
            {p: tuple(sorted(o, key=lambda x: -x.specificity)) for p, o in overrides.items()},
        )
