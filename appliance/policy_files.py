"""Reading the policy files (categories, profiles, safe search, watch lists, alerts) into `profiles` values.

Every mistake found is reported, each as `file:line: what is wrong, and a hint`, and a policy with any
mistake is refused whole: the running policy stays.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
from profiles.alerts import (
    ON_DUTY,
    AlertKind,
    AlertPolicy,
    AlertRule,
    Channel,
    Contact,
    Digest,
    LadderStep,
    Repeats,
    Share,
    Shift,
)
from profiles.categories import Area, Category, CategoryMap, Kind, Risk, Severity
from profiles.controls import Budget
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
    alerts: AlertPolicy = field(default_factory=AlertPolicy)

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
    "budget",
}
DAY_MINUTES = 24 * 60  # the most a daily budget can hold


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
        budget=_read_budget(r, node, what, categories),
    )


def _read_budget(r: Reader, node: Mapping, what: str, categories: CategoryMap) -> Budget | None:
    """`budget: {minutes: 120, categories: {games: 30}}`: daily minutes of internet and per category for
    the profile's signed-in children, both optional; None without one."""
    value = r.mapping(node, "budget", what)
    if value is None:
        return None
    r.keys(value, {"minutes", "categories"}, f"{what} budget")
    minutes: int | None = None
    if value.get("minutes") is not None:
        minutes = _day_minutes(value["minutes"])
        if minutes is None:
            r.error(
                value, "minutes", f"{what}: budget: minutes must be a whole number from 1 to {DAY_MINUTES}"
            )
    limits: dict[str, int] = {}
    table = r.mapping(value, "categories", f"{what}: budget") or empty_mapping()
    for category, limit in table.items():
        line = table.line_of(category)
        if category not in categories:
            r.report(
                f"{r.path}:{line}: {what}: budget: unknown category {category!r} (see the categories file)"
            )
        elif (checked := _day_minutes(limit)) is None:
            r.report(
                f"{r.path}:{line}: {what}: budget: the minutes for {category!r} must be a whole number "
                f"from 1 to {DAY_MINUTES}"
            )
        else:
            limits[category] = checked
    budget = Budget(minutes, limits)
    return None if budget.empty else budget


def _day_minutes(value: object) -> int | None:
    """`value` as minutes of one day (1 to DAY_MINUTES), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= DAY_MINUTES:
        return None
    return value


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


# ---- alerts ----

_ALERT_KEYS = {
    "centre",
    "link_base",
    "link_ttl_hours",
    "throttle_minutes",
    "rules",
    "contacts",
    "rota",
    "out_of_hours",
    "ladder",
    "digest",
    "share",
}
_RULE_KEYS = {"name", "severity", "when", "repeats", "enabled", "open_incident"}
_WHEN_KEYS = {"category", "watch_list", "personal_info", "child_report", "bypass", "severity"}
_ALERT_SEVERITIES = "medium, high, critical"
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)

# Whether Apprise knows a channel's URL (instantiated, never sent): None when it does, else why not.
ChannelCheck = Callable[[str], str | None]


def apprise_check(url: str) -> str | None:
    """Apprise's own reading of a channel URL, without sending anything: None when it knows the URL.
    Apprise is imported here only (tens of megabytes): the alerter and `appliance check` ask for it, the
    DNS filter and the proxy do not."""
    import apprise

    if apprise.Apprise.instantiate(url, suppress_exceptions=True) is None:
        return "Apprise does not know this URL"
    return None


def _alert_severity(text: str) -> Severity:
    severity = Severity.parse(text)
    if severity < Severity.MEDIUM:
        raise ValueError(text)
    return severity


def _minutes(r: Reader, node: Mapping, key: str, what: str, default: float, low: float = 0.0) -> float:
    """A number of minutes (or hours) >= `low`, as written."""
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        r.error(node, key, f"{what}: {key!r} must be a number of at least {low:g}")
        return default
    return float(value)


def _read_alerts(
    path: Path,
    errors: list[str],
    categories: CategoryMap,
    watch_lists: dict[str, WatchList],
    channel_check: ChannelCheck | None,
) -> AlertPolicy:
    r = Reader(path, errors)
    data = r.load()
    if data is None:
        return AlertPolicy()
    r.keys(data, _ALERT_KEYS, "the alerts file")
    what = "the alerts file"
    contacts = _read_contacts(r, data, channel_check)
    known = {c.name for c in contacts}

    def contact(node: Mapping, key: str, where: str, *, on_duty: bool = False) -> str:
        name = r.text(node, key, where, required=True)
        if name and name not in known and not (on_duty and name == ON_DUTY):
            names = ", ".join(sorted(known) + ([ON_DUTY] if on_duty else [])) or "none written yet"
            r.error(node, key, f"{where}: unknown contact {name!r} (known: {names}; see 'contacts')")
        return name

    rota: list[Shift] = []
    for i, node in _items(r, data, "rota", "a shift", {"contact", "days", "hours"}):
        where = f"shift {i + 1} of the rota"
        name = contact(node, "contact", where)
        days = _days(r, node, where)
        hours = r.text(node, "hours", where, required=True)
        start, dash, end = hours.partition("-")
        try:
            if not dash:
                raise ValueError(f"{hours!r} is not hours like 09:00-18:00")
            first, last = parse_clock(start), parse_clock(end)
            if first == last:
                raise ValueError(f"{hours!r} is an empty shift")
        except ValueError as e:
            r.error(node, "hours", f"{where}: {e}")
            continue
        rota.append(Shift(name, days, first, last))

    out_of_hours = contact(data, "out_of_hours", what) if "out_of_hours" in data else ""

    ladder: list[LadderStep] = []
    for i, node in _items(r, data, "ladder", "a step", {"after_minutes", "notify", "min_severity"}):
        where = f"step {i + 1} of the ladder"
        after = _minutes(r, node, "after_minutes", where, 0.0)
        ladder.append(
            LadderStep(
                after_s=after * 60,
                notify=contact(node, "notify", where, on_duty=True),
                min_severity=r.choice(
                    node, "min_severity", where, _alert_severity, Severity.HIGH, _ALERT_SEVERITIES
                ),
            )
        )
    if [s.after_s for s in ladder] != sorted(s.after_s for s in ladder):
        r.error(data, "ladder", "the ladder's steps must go in order of after_minutes")

    digest = None
    digest_node = r.mapping(data, "digest", what)
    if digest_node is not None:
        node = digest_node
        r.keys(node, {"to", "every", "at", "day"}, "the digest")
        every = r.choice(node, "every", "the digest", _day_or_week, "day", "day, week")
        at = r.text(node, "at", "the digest", default="08:00")
        try:
            minute = parse_clock(at) % (24 * 60)
        except ValueError as e:
            r.error(node, "at", f"the digest: {e}")
            minute = 8 * 60
        weekday = None
        if every == "week":
            day = r.text(node, "day", "the digest", default="mon").lower()
            if day not in _WEEKDAYS:
                r.error(node, "day", f"the digest: day {day!r}: use one of {', '.join(_WEEKDAYS)}")
            else:
                weekday = _WEEKDAYS.index(day)
        elif "day" in node:
            r.error(node, "day", "the digest: 'day' is for a weekly digest (every: week)")
        digest = Digest(contact(node, "to", "the digest"), minute, weekday)

    share = Share()
    share_node = r.mapping(data, "share", what)
    if share_node is not None:
        node = share_node
        r.keys(node, {"child_name", "site", "search_terms"}, "share")
        share = Share(
            child_name=r.flag(node, "child_name", "share"),
            site=r.flag(node, "site", "share"),
            search_terms=r.flag(node, "search_terms", "share"),
        )

    link_base = r.text(data, "link_base", what).rstrip("/")
    if link_base and not re.match(r"^https?://[^/\s]+", link_base):
        r.error(data, "link_base", "link_base must be the dashboard's address, like https://appliance.lan")
    return AlertPolicy(
        rules=_read_rules(r, data, categories, watch_lists),
        throttle_s=_minutes(r, data, "throttle_minutes", what, 30.0) * 60,
        contacts=contacts,
        rota=tuple(rota),
        out_of_hours=out_of_hours,
        ladder=tuple(ladder),
        digest=digest,
        share=share,
        centre=r.text(data, "centre", what),
        link_base=link_base,
        link_ttl_s=_minutes(r, data, "link_ttl_hours", what, 168.0, low=1.0) * 3600,
    )


def _day_or_week(text: str) -> str:
    if text not in ("day", "week"):
        raise ValueError(text)
    return text


def _items(
    r: Reader, data: Mapping, key: str, label: str, allowed: set[str]
) -> Iterator[tuple[int, Mapping]]:
    """The mappings of the list `key` (each with only `allowed` keys), with their places."""
    value = data.get(key)
    if value is None:
        return
    if not isinstance(value, Sequence):
        r.error(data, key, f"{key!r} must be a list (each item on a line starting with '- ')")
        return
    for i, node in enumerate(value):
        if not isinstance(node, Mapping):
            r.error(value, i, f"{key}: {label} must be a mapping ({', '.join(sorted(allowed))})")
            continue
        r.keys(node, allowed, f"{label} of {key!r}")
        yield i, node


def _days(r: Reader, node: Mapping, where: str) -> frozenset[int]:
    value = node.get("days", "daily")
    parts = value if isinstance(value, list) else [value]
    days: set[int] = set()
    for part in parts:
        try:
            days |= parse_days(str(part))
        except ValueError as e:
            r.error(node, "days", f"{where}: {e}")
    return frozenset(days)


def _read_contacts(r: Reader, data: Mapping, channel_check: ChannelCheck | None) -> tuple[Contact, ...]:
    table = r.mapping(data, "contacts", "the alerts file") or empty_mapping()
    out: list[Contact] = []
    for name, node in table.items():
        what = f"contact {name!r}"
        if name == ON_DUTY:
            r.error(
                table, name, f"{what}: {ON_DUTY!r} means whoever the rota has on duty: choose another name"
            )
        if not isinstance(node, Mapping):
            r.error(table, name, f"{what} must be a mapping (name, channels)")
            continue
        r.keys(node, {"name", "channels"}, what)
        channels: list[Channel] = []
        urls = r.mapping(node, "channels", what, required=True) or empty_mapping()
        for channel, url in urls.items():
            if not isinstance(url, str) or not _URL_SCHEME.match(url.strip()):
                r.error(
                    urls,
                    channel,
                    f"{what}: channel {channel!r} must be a notification URL like ntfys://host/topic or "
                    "mailtos://user:password@host (see Apprise's list of services)",
                )
                continue
            why = channel_check(url.strip()) if channel_check is not None else None
            if why is not None:
                # Never the URL itself in a message: it may hold a password.
                scheme = url.strip().split("://", 1)[0]
                r.error(
                    urls,
                    channel,
                    f"{what}: channel {channel!r} ({scheme}://...): {why}; check it against Apprise's "
                    "list of services (https://github.com/caronc/apprise/wiki)",
                )
                continue
            channels.append(Channel(str(channel), url.strip()))
        if "channels" in node and not urls:
            r.error(node, "channels", f"{what} needs at least one channel")
        out.append(Contact(name, tuple(channels), r.text(node, "name", what) or name))
    return tuple(out)


def _read_rules(
    r: Reader, data: Mapping, categories: CategoryMap, watch_lists: dict[str, WatchList]
) -> tuple[AlertRule, ...]:
    rules: list[AlertRule] = []
    seen: dict[str, int] = {}
    for i, node in _items(r, data, "rules", "a rule", _RULE_KEYS):
        name = r.text(node, "name", f"rule {i + 1}", required=True)
        what = f"rule {name!r}" if name else f"rule {i + 1}"
        line = node.line_of("name")
        if name in seen:
            r.error(node, "name", f"{what} appears twice (first on line {seen[name]}): rule names are unique")
        seen.setdefault(name, line)
        if "severity" not in node:
            r.error(node, None, f"{what} needs 'severity' ({_ALERT_SEVERITIES})")
        severity = r.choice(node, "severity", what, _alert_severity, Severity.HIGH, _ALERT_SEVERITIES)
        when = r.mapping(node, "when", what, required=True)
        kind = AlertKind.CATEGORY
        names: tuple[str, ...] = ()
        severities: tuple[Severity, ...] = ()
        if when is not None:
            r.keys(when, _WHEN_KEYS, f"{what}: when")
            given = [k for k in when if k in _WHEN_KEYS]
            if len(given) != 1:
                r.error(
                    node,
                    "when",
                    f"{what}: 'when' names exactly one of {', '.join(sorted(_WHEN_KEYS))}"
                    f" (it names {', '.join(given) or 'none'}): write one rule for each",
                )
            elif given[0] == "category":
                names = tuple(
                    c.name
                    for c in r.references(when, "category", what, dict(categories.categories), "category")
                )
                if not when.get("category"):
                    r.error(when, "category", f"{what}: 'category' needs a list of categories")
            elif given[0] == "watch_list":
                kind = AlertKind.WATCH_LIST
                names = tuple(
                    w.name for w in r.references(when, "watch_list", what, watch_lists, "watch list")
                )
                if not when.get("watch_list"):
                    r.error(when, "watch_list", f"{what}: 'watch_list' needs a list of watch lists")
            elif given[0] == "severity":
                value = when["severity"]
                for text in value if isinstance(value, list) else [value]:
                    try:
                        severities += (_alert_severity(str(text).strip().lower()),)
                    except ValueError:
                        r.error(when, "severity", f"{what}: severity {text!r}: use {_ALERT_SEVERITIES}")
            else:
                kind = AlertKind(given[0].replace("_", "-"))
                if when.get(given[0]) is not True:
                    r.error(when, given[0], f"{what}: {given[0]!r} is true (false: leave the rule out)")
        repeats = None
        node_repeats = r.mapping(node, "repeats", what)
        if node_repeats is not None:
            r.keys(node_repeats, {"count", "within_minutes"}, f"{what}: repeats")
            count = node_repeats.get("count")
            if isinstance(count, bool) or not isinstance(count, int) or count < 2:
                r.error(
                    node_repeats, "count", f"{what}: repeats: 'count' must be a whole number of 2 or more"
                )
                count = 2
            within = _minutes(r, node_repeats, "within_minutes", f"{what}: repeats", 10.0, low=1.0)
            repeats = Repeats(count, within * 60)
        rules.append(
            AlertRule(
                name=name,
                kind=kind,
                severity=severity,
                names=names,
                repeats=repeats,
                enabled=r.flag(node, "enabled", what, default=True),
                source=f"{r.path}:{node.line}",
                open_incident=r.flag(node, "open_incident", what, default=severity is Severity.CRITICAL),
                event_severities=severities,
            )
        )
    return tuple(rules)


# ---- the whole policy ----


def read_policy_files(settings: PolicySettings, *, channel_check: ChannelCheck | None = None) -> PolicyFiles:
    """Read and check every policy file. Raises PolicyFileErrors listing every mistake found.

    alerts.yaml's channel URLs are checked for their form; with `channel_check` (`apprise_check`: the
    alerter, `appliance check`) also that Apprise knows each."""
    errors: list[str] = []
    categories = _read_categories(settings.categories, errors)
    categories_broken = bool(errors)
    safe_search = _read_safe_search(settings.safe_search, errors)
    before = len(errors)
    watch_lists = _read_watch_lists(settings.watch_lists, errors, categories)
    watch_broken = len(errors) > before
    profiles = _read_profiles(settings.profiles, errors, categories, watch_lists)
    alerts = _read_alerts(settings.alerts, errors, categories, watch_lists, channel_check)
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
    return PolicyFiles(categories, profiles, safe_search, watch_lists, zone, settings, alerts)


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
