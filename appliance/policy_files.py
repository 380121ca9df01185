"""Reading the policy files (categories, profiles, safe search, watch lists) into `profiles` values.

Every mistake found is reported, each as `file:line: what is wrong, and a hint`, and a policy with any
mistake is refused whole: the running policy stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.config import Config, PolicySettings
from appliance.config.catalogue import CatalogueError, load_catalogue
from appliance.config.reader import (
    Mapping,
    Reader,
    Sequence,
    empty_mapping,
)
from filters.index import FilterIndex
from filters.names import BadName, normalise_host
from filters.sources import Rank
from profiles.categories import Area, Category, CategoryMap, Kind, Risk, Severity
from profiles.errors import PolicyError
from profiles.pii import PiiKind
from profiles.policy import Policy
from profiles.profile import (
    BlockedAnswer,
    DirectPort,
    Mode,
    OnError,
    PersonalInfoRule,
    PhraseRule,
    Profile,
)
from profiles.safesearch import Engine, SafeSearchRules, SafeSearchSetting, YouTubeMode
from profiles.schedule import Outside, Schedule, ScheduleRule, Window, parse_clock, parse_days
from profiles.verdict import Action, LogDetail, SafeTarget
from profiles.watch import WatchList

E = TypeVar("E")


class PolicyFileErrors(PolicyError):
    """One or more mistakes in the policy files; `errors` holds each `file:line: ...` message."""

    def __init__(self, errors: list[str], categories: CategoryMap | None = None) -> None:
        super().__init__("\n".join(errors) if len(errors) > 1 else errors[0])
        self.errors = errors
        self.categories = categories  # the categories, if their own file was fine


@dataclass(frozen=True)
class PolicyFiles:
    """The policy files, read and checked, ready to be joined with a compiled index."""

    categories: CategoryMap
    profiles: dict[str, Profile]
    safe_search: SafeSearchRules
    watch_lists: dict[str, WatchList]
    zone: ZoneInfo
    settings: PolicySettings

    def bind(self, index: FilterIndex) -> Policy:
        """The policy in force over `index`, with the catalogue's ranks of its lists (`rank:`)."""
        s = self.settings
        return Policy(
            self.categories,
            self.profiles,
            index,
            self.zone,
            self.safe_search,
            self.watch_lists,
            frozenset(s.help_services),
            frozenset(s.portal_hosts),
            s.guest_profile,
            catalogue_ranks(),
        )


def catalogue_ranks() -> dict[str, Rank]:
    """The catalogue's ranks by entry name (the entries not ranked `specific`). The shipped catalogue
    is checked by every configuration that names a preset; should it not load, every list ranks
    alike (filtering goes on)."""
    try:
        return load_catalogue().ranks()
    except CatalogueError:
        return {}


def _enum_parser(enum: type[E]) -> Callable[[str], E]:
    return enum  # StrEnum(value) raises ValueError for an unknown value


def _known(enum: Any) -> str:
    return ", ".join(e.value for e in enum)


# ---- categories ----

_CATEGORY_KEYS = {
    "title",
    "kind",
    "area",
    "risk",
    "severity",
    "description",
    "sources",
    "labels",
    "always_blocked",
}


def _read_categories(path: Path, errors: list[str]) -> CategoryMap:
    r = Reader(path, errors)
    data = r.load()
    categories: dict[str, Category] = {}
    if data is None:
        return CategoryMap(categories)
    r.keys(data, {"categories"}, "the categories file")
    table = r.mapping(data, "categories", "the categories file")
    for name, node, what in r.entries(data, "categories", "category", _CATEGORY_KEYS):
        kind = r.choice(node, "kind", what, _enum_parser(Kind), Kind.RISK, _known(Kind))
        area = risk = None
        severity = Severity.NONE
        if kind is Kind.RISK:
            for key in ("area", "risk", "severity"):
                if key not in node:
                    r.error(
                        node, None, f"{what} needs {key!r} (its place in the three-Cs grid and how serious)"
                    )
            area = r.choice(node, "area", what, _enum_parser(Area), None, _known(Area))
            risk = r.choice(node, "risk", what, _enum_parser(Risk), None, _known(Risk))
            severity = r.choice(
                node, "severity", what, Severity.parse, Severity.MEDIUM, "low, medium, high, critical"
            )
        else:
            for key in ("area", "risk", "always_blocked"):
                if key in node:
                    r.error(node, key, f"{what} is an allowlist: {key!r} does not apply to it")
        categories[name] = Category(
            name=name,
            title=r.text(node, "title", what, required=True, default=name),
            kind=kind,
            area=area,
            risk=risk,
            severity=severity,
            description=r.text(node, "description", what),
            sources=tuple(n for n, _ in r.names(node, "sources", what)),
            labels=tuple(n for n, _ in r.names(node, "labels", what)),
            always_blocked=r.flag(node, "always_blocked", what),
        )
    _check_unique_feeds(r, table, categories)
    return CategoryMap(categories)


def _check_unique_feeds(r: Reader, table: Mapping | None, categories: dict[str, Category]) -> None:
    seen: dict[str, str] = {}
    for category in categories.values():
        feeds = [(s, "sources") for s in category.sources]
        feeds += [(label.casefold(), "labels") for label in category.labels]
        for feed, key in feeds:
            other = seen.setdefault(feed, category.name)
            node = table.get(category.name) if table is not None else None
            if other != category.name and isinstance(node, Mapping):
                r.error(
                    node,
                    key,
                    f"{feed!r} feeds both {other!r} and {category.name!r}: a list feeds one category",
                )


# ---- safe search and watch lists ----


def _read_safe_search(path: Path, errors: list[str]) -> SafeSearchRules:
    r = Reader(path, errors)
    data = r.load()
    if data is None:
        return SafeSearchRules()
    r.keys(data, {"engines", "unsupported"}, "the safe-search file")
    engines = []
    for name, node, what in r.entries(
        data, "engines", "engine", {"target", "params", "headers", "hosts", "moderate"}
    ):
        target = _safe_target(r, node, name, what)
        moderate_node = r.mapping(node, "moderate", what)
        moderate = _safe_target(r, moderate_node, name, f"{what} moderate") if moderate_node else None
        hosts = frozenset(_host(r, node, "hosts", h, line, what) for h, line in r.names(node, "hosts", what))
        if not hosts:
            r.error(node, None, f"{what} needs 'hosts': the search hosts to make safe")
        engines.append(Engine(name, hosts - {""}, target, moderate))
    unsupported = frozenset(
        _host(r, data, "unsupported", h, line, "unsupported")
        for h, line in r.names(data, "unsupported", "the file")
    )
    return SafeSearchRules(tuple(engines), unsupported - {""})


def _safe_target(r: Reader, node: Mapping, engine: str, what: str) -> SafeTarget:
    if moderate := node.get("moderate"):
        r.keys(moderate, {"target", "params", "headers"}, f"{what} moderate")
    pairs = {}
    for key in ("params", "headers"):
        table = r.mapping(node, key, what)
        pairs[key] = tuple((str(k), str(v)) for k, v in (table or {}).items())
    target = _host(
        r, node, "target", r.text(node, "target", what, required=True), node.line_of("target"), what
    )
    return SafeTarget(engine, target, pairs["params"], pairs["headers"])


def _host(r: Reader, node: Mapping, key: str, text: str, line: int, what: str) -> str:
    try:
        return normalise_host(text)
    except BadName as e:
        r.report(f"{r.path}:{line}: {what}: {key!r}: {text!r} is not a host name ({e})")
        return ""


def _read_watch_lists(path: Path, errors: list[str], categories: CategoryMap) -> dict[str, WatchList]:
    r = Reader(path, errors)
    data = r.load()
    out: dict[str, WatchList] = {}
    if data is None:
        return out
    r.keys(data, {"watch_lists"}, "the watch-list file")
    watch_keys = {"category", "severity", "action", "description", "terms"}
    for name, node, what in r.entries(data, "watch_lists", "watch list", watch_keys):
        category = r.text(node, "category", what, required=True)
        if category and category not in categories:
            r.error(node, "category", f"{what}: unknown category {category!r} (see the categories file)")
        action = r.choice(node, "action", what, _flag_or_block, Action.FLAG, "flag, block")
        severity = r.choice(
            node, "severity", what, Severity.parse, Severity.HIGH, "low, medium, high, critical"
        )
        terms = tuple(t for t, _ in r.names(node, "terms", what))
        if not terms:
            r.error(node, None, f"{what} needs 'terms': the words and phrases to watch for")
        out[name] = WatchList(name, category, severity, action, terms, r.text(node, "description", what))
    return out


def _flag_or_block(text: str) -> Action:
    action = Action(text)
    if action not in (Action.FLAG, Action.BLOCK):
        raise ValueError(text)
    return action


# ---- profiles ----

_PROFILE_KEYS = {
    "description",
    "reasoning",
    "mode",
    "bypass",
    "blocked_categories",
    "flagged_categories",
    "allowed_categories",
    "allow",
    "block",
    "safe_search",
    "schedule",
    "phrases",
    "watch",
    "personal_info",
    "intercept_tls",
    "blocked_downloads",
    "log_allowed",
    "blocked_answer",
    "on_error",
    "direct_ports",
}


def _read_profiles(
    path: Path, errors: list[str], categories: CategoryMap, watch_lists: dict[str, WatchList]
) -> dict[str, Profile]:
    r = Reader(path, errors)
    data = r.load()
    profiles: dict[str, Profile] = {}
    if data is None:
        return profiles
    r.keys(data, {"schedules", "profiles"}, "the profiles file")
    schedules = _read_schedules(r, r.mapping(data, "schedules", "the profiles file"))
    for name, node, _ in r.entries(data, "profiles", "profile", _PROFILE_KEYS):
        profiles[name] = _read_profile(r, name, node, categories, watch_lists, schedules)
    return profiles


def _read_schedules(r: Reader, node: Mapping | None) -> dict[str, Schedule]:
    out: dict[str, Schedule] = {}
    if node is None:
        return out
    for name, windows in node.items():
        what = f"schedule {name!r}"
        if not isinstance(windows, Sequence):
            r.error(
                node,
                name,
                f"{what} must be a list of windows like {{days: mon-fri, from: '15:00', to: '19:00'}}",
            )
            continue
        parsed = []
        for i, window in enumerate(windows):
            if not isinstance(window, Mapping):
                r.error(windows, i, f"{what}: each window is {{days: ..., from: 'HH:MM', to: 'HH:MM'}}")
                continue
            r.keys(window, {"days", "from", "to"}, f"a window of {what}")
            try:
                days = parse_days(str(window.get("days", "daily")))
                start = parse_clock(str(window.get("from", "")))
                end = parse_clock(str(window.get("to", "")))
            except ValueError as e:
                r.error(windows, i, f"{what}: {e}")
                continue
            if start == end:
                r.error(windows, i, f"{what}: a window from {window['from']} to {window['to']} is empty")
                continue
            parsed.append(Window(days, start, end % (24 * 60) if end == 24 * 60 and start == 0 else end))
        out[name] = Schedule(name, tuple(parsed))
    return out


def _read_profile(
    r: Reader,
    name: str,
    node: Mapping,
    categories: CategoryMap,
    watch_lists: dict[str, WatchList],
    schedules: dict[str, Schedule],
) -> Profile:
    what = f"profile {name!r}"

    def category_names(key: str, kinds: tuple[Kind, ...]) -> frozenset[str]:
        out = set()
        for category, line in r.names(node, key, what):
            if category not in categories:
                close = [c.name for c in categories.values() if c.name.startswith(category[:3])][:3]
                hint = f" (did you mean {', '.join(close)}?)" if close else " (see the categories file)"
                r.report(f"{r.path}:{line}: {what}: unknown category {category!r}{hint}")
            elif categories[category].kind not in kinds:
                r.report(
                    f"{r.path}:{line}: {what}: {key}: {category!r} is a {categories[category].kind} category"
                )
            else:
                out.add(category)
        return frozenset(out)

    flagged: dict[str, Severity] = {}
    raw_flagged = node.get("flagged_categories")
    if isinstance(raw_flagged, Mapping):
        for category, severity in raw_flagged.items():
            line = raw_flagged.line_of(category)
            if category not in categories:
                r.report(f"{r.path}:{line}: {what}: unknown category {category!r} (see the categories file)")
                continue
            try:
                flagged[category] = Severity.parse(str(severity))
            except ValueError:
                r.report(f"{r.path}:{line}: {what}: severity {severity!r}: use low, medium, high, critical")
    else:
        for category in category_names("flagged_categories", (Kind.RISK,)):
            flagged[category] = categories[category].severity

    mode = r.choice(node, "mode", what, _enum_parser(Mode), Mode.FILTERED, _known(Mode))
    allowed = category_names("allowed_categories", (Kind.ALLOWLIST, Kind.RISK))
    blocked = category_names("blocked_categories", (Kind.RISK,))
    for category in blocked & set(flagged):
        r.error(node, "flagged_categories", f"{what}: {category!r} is both blocked and flagged: choose one")
    allow = _entries(r, node, "allow", what)
    if mode is Mode.ALLOWLIST_ONLY and not allowed and not allow:
        r.error(node, "mode", f"{what}: allowlist-only needs allowed_categories or allow entries")

    watch = [w.name for w in r.references(node, "watch", what, watch_lists, "watch list")]

    return Profile(
        name=name,
        description=r.text(node, "description", what, required=True),
        reasoning=r.text(node, "reasoning", what),
        mode=mode,
        bypass=r.flag(node, "bypass", what),
        blocked_categories=blocked,
        flagged_categories=flagged,
        allowed_categories=allowed,
        allow=allow,
        block=_entries(r, node, "block", what),
        safe_search=_read_safe_setting(r, node, what),
        schedule=_read_schedule_rule(r, node, what, schedules),
        phrases=_read_phrases(r, node, what, categories),
        watch=tuple(watch),
        personal_info=_read_personal_info(r, node, what),
        intercept_tls=r.flag(node, "intercept_tls", what),
        blocked_downloads=frozenset(
            e.lower().lstrip(".") for e, _ in r.names(node, "blocked_downloads", what)
        ),
        log_allowed=r.choice(node, "log_allowed", what, _log_detail, LogDetail.COUNT, "count, event"),
        blocked_answer=r.choice(
            node,
            "blocked_answer",
            what,
            BlockedAnswer,
            BlockedAnswer.BLOCK_PAGE,
            "block-page, zero, nxdomain",
        ),
        on_error=r.choice(node, "on_error", what, OnError, OnError.BLOCK, "block, allow"),
        direct_ports=_direct_ports(r, node, what),
    )


def _direct_ports(r: Reader, node: Mapping, what: str) -> tuple[DirectPort, ...]:
    out = []
    for text, line in r.names(node, "direct_ports", what):
        try:
            out.append(DirectPort.parse(text))
        except ValueError as e:
            r.report(f"{r.path}:{line}: {what}: direct_ports: {e}")
    return tuple(out)


def _log_detail(text: str) -> LogDetail:
    detail = LogDetail(text)
    if detail is LogDetail.NONE:
        raise ValueError(text)
    return detail


def _entries(r: Reader, node: Mapping, key: str, what: str) -> tuple[str, ...]:
    out = []
    for entry, line in r.names(node, key, what):
        text = entry.removeprefix("http://").removeprefix("https://")
        domain, slash, path = text.partition("/")  # the path keeps its case: servers read it so
        try:
            out.append(normalise_host(domain) + slash + path)
        except BadName as e:
            r.report(f"{r.path}:{line}: {what}: {key}: {entry!r} is not a domain or domain/path ({e})")
    return tuple(out)


def _read_safe_setting(r: Reader, node: Mapping, what: str) -> SafeSearchSetting:
    value = node.get("safe_search")
    if value is None:
        return SafeSearchSetting()
    if isinstance(value, bool):
        return SafeSearchSetting(enabled=value)
    if not isinstance(value, Mapping):
        r.error(
            node, "safe_search", f"{what}: safe_search is {{enabled: true, youtube: strict}} or true/false"
        )
        return SafeSearchSetting()
    r.keys(value, {"enabled", "youtube"}, f"{what} safe_search")
    return SafeSearchSetting(
        enabled=r.flag(value, "enabled", what, default=True),
        youtube=r.choice(
            value, "youtube", what, _enum_parser(YouTubeMode), YouTubeMode.STRICT, _known(YouTubeMode)
        ),
    )


def _read_schedule_rule(
    r: Reader, node: Mapping, what: str, schedules: dict[str, Schedule]
) -> ScheduleRule | None:
    value = r.mapping(node, "schedule", what)
    if value is None:
        return None
    r.keys(value, {"windows", "outside"}, f"{what} schedule")
    chosen = r.references(value, "windows", what, schedules, "schedule")
    if not chosen and "windows" not in value:
        r.error(value, None, f"{what}: schedule needs 'windows': names from the file's `schedules`")
    outside = r.choice(value, "outside", what, _enum_parser(Outside), Outside.ALLOWLIST, _known(Outside))
    return ScheduleRule(tuple(chosen), outside)


def _read_phrases(r: Reader, node: Mapping, what: str, categories: CategoryMap) -> PhraseRule:
    value = r.mapping(node, "phrases", what)
    if value is None:
        return PhraseRule()
    r.keys(value, {"limits", "action"}, f"{what} phrases")
    limits: dict[str, int] = {}
    table = r.mapping(value, "limits", what) or empty_mapping()
    for category, limit in table.items():
        line = table.line_of(category)
        if category not in categories:
            r.report(f"{r.path}:{line}: {what}: phrases: unknown category {category!r}")
        elif not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            r.report(
                f"{r.path}:{line}: {what}: phrases: the limit for {category!r} must be a whole number > 0"
            )
        else:
            limits[category] = limit
    action = r.choice(value, "action", what, _flag_or_block, Action.BLOCK, "flag, block")
    return PhraseRule(limits, action)


def _read_personal_info(r: Reader, node: Mapping, what: str) -> PersonalInfoRule:
    value = r.mapping(node, "personal_info", what)
    if value is None:
        return PersonalInfoRule()
    r.keys(value, {"action", "kinds"}, f"{what} personal_info")
    action = r.choice(value, "action", what, _pii_action, Action.FLAG, "allow, flag, block")
    kinds = set()
    for kind, line in r.names(value, "kinds", what):
        try:
            kinds.add(PiiKind(kind.lower()))
        except ValueError:
            r.report(f"{r.path}:{line}: {what}: personal_info: {kind!r} is not one of {_known(PiiKind)}")
    return PersonalInfoRule(action, frozenset(kinds) if "kinds" in value else frozenset(PiiKind))


def _pii_action(text: str) -> Action:
    action = Action(text)
    if action is Action.REWRITE:
        raise ValueError(text)
    return action


# ---- the whole policy ----


def read_policy_files(settings: PolicySettings) -> PolicyFiles:
    """Read and check every policy file. Raises PolicyFileErrors listing every mistake found."""
    errors: list[str] = []
    categories = _read_categories(settings.categories, errors)
    categories_broken = bool(errors)
    safe_search = _read_safe_search(settings.safe_search, errors)
    before = len(errors)
    watch_lists = _read_watch_lists(settings.watch_lists, errors, categories)
    watch_broken = len(errors) > before
    profiles = _read_profiles(settings.profiles, errors, categories, watch_lists)
    if categories_broken or watch_broken:
        # A file that could not be read makes every name in it look unknown: report the cause only.
        echoes: tuple[str, ...] = ("unknown category", "allowlist-only needs") if categories_broken else ()
        echoes += ("unknown watch list",) if watch_broken else ()
        errors[:] = [e for e in errors if not any(echo in e for echo in echoes)]
        errors.append("(names of categories and watch lists are checked again once those files are fixed)")
    if settings.guest_profile != "guest" and "guest" in profiles:
        errors.append(
            f"{settings.profiles}: policy.guest_profile is {settings.guest_profile!r}, yet a profile is "
            "named 'guest': rename one of them, so that devices nobody knows get the one you mean"
        )
    if profiles and settings.guest_profile not in profiles:
        errors.append(
            f"{settings.profiles}: no profile {settings.guest_profile!r}: devices nobody knows use it "
            "(add it, or set policy.guest_profile in the configuration)"
        )
    try:
        zone = ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"policy.timezone: {settings.timezone!r} is not a time zone name like Europe/London")
        zone = ZoneInfo("UTC")
    if errors:
        raise PolicyFileErrors(errors, None if categories_broken else categories)
    return PolicyFiles(categories, profiles, safe_search, watch_lists, zone, settings)


def unmapped_sources(config: Config, categories: CategoryMap) -> list[str]:
    """A message for each configured list source whose entries no category takes (they would be ignored)."""
    return [
        f"{config.origin}: source {s.name!r}: category {s.category!r} is not a category or label in "
        f"the categories file, so no profile would use its entries (add it to a category's labels)"
        for s in config.sources
        if categories.for_source(s.name, s.category) is None
    ]


def load_policy(config: Config, index: FilterIndex) -> Policy:
    """The policy in force: the configuration's policy files over the compiled index."""
    return read_policy_files(config.policy).bind(index)
