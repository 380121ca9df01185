"""Which alerts.yaml rules one notable event matches (docs/alerts.md, "What raises an alert").

An event's facts are read from its reasons (the event log's JSON, `Reason.as_json`): a watch-list hit
(step `watch-list`, the list named in its detail), personal information sent (`personal-info`), a
child's "report a problem" (`child-report`), trying to get round the filter (a DNS canary
`bypass-canary`, a connection that named one site and went to another or that no list can judge
`bypass-attempt`, or a site of the `filter-bypass` category: VPNs, proxies, private DNS), and the
categories of what blocked or flagged it. Pure: no clock (times are arguments), no I/O.

One event raises at most one alert: of the rules it matches, the most severe one that fires (ties: the
first in the file), so a self-harm search is one critical alert, not one per rule that names it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from profiles.alerts import AlertKind, AlertRule
from profiles.categories import Severity
from profiles.verdict import Step

BYPASS_CATEGORY = "filter-bypass"  # VPNs, proxies and private DNS (categories.yaml)
BYPASS_CATEGORIES = frozenset({BYPASS_CATEGORY})
_BYPASS_STEPS = frozenset({str(Step.BYPASS_CANARY), str(Step.BYPASS_ATTEMPT)})
_NOT_A_CONCERN = frozenset({"allow", "rewrite"})  # reasons that let a request through name no risk
# `decide` names the list in the reason's detail: "searched on Google for words on the 'self-harm' watch
# list" (the name as Python's repr writes it).
_WATCH_LIST = re.compile(r"""the (?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)") watch list""")
# The kind an alert is filed under when a rule names no kind (a rule by severity): the most telling.
_PRIMARY = (
    AlertKind.CHILD_REPORT,
    AlertKind.WATCH_LIST,
    AlertKind.PERSONAL_INFO,
    AlertKind.BYPASS,
    AlertKind.CATEGORY,
)


@dataclass(frozen=True)
class EventFacts:
    """What the rules look at in one event: its kinds, the categories of what blocked or flagged it
    (first first), the watch lists hit, its severity, who (pseudonymous subject), under which profile,
    and when."""

    kinds: frozenset[AlertKind]
    categories: tuple[str, ...]
    watch_lists: tuple[str, ...]
    severity: Severity
    subject: str
    profile: str
    ts: float

    @property
    def category(self) -> str:
        return self.categories[0] if self.categories else ""


def watch_list_of(reason: Mapping[str, Any]) -> str:
    """The watch list a `watch-list` reason names ('' when it names none)."""
    if str(reason.get("source") or ""):
        return str(reason["source"])
    found = _WATCH_LIST.search(str(reason.get("detail", "")))
    if found is None:
        return ""
    return (found.group(1) if found.group(1) is not None else found.group(2)).replace("\\", "")


def facts_of(
    reasons: Sequence[Mapping[str, Any]],
    *,
    severity: Severity | str,
    subject: str,
    profile: str,
    ts: float,
) -> EventFacts:
    """The facts of one event from its reasons (the event log's JSON list) and its row's columns."""
    kinds: set[AlertKind] = set()
    categories: list[str] = []
    watch: list[str] = []
    for reason in reasons:
        step = str(reason.get("step", ""))
        effect = str(reason.get("effect", ""))
        category = str(reason.get("category") or "")
        if step == Step.WATCH_LIST:
            kinds.add(AlertKind.WATCH_LIST)
            name = watch_list_of(reason)
            if name and name not in watch:
                watch.append(name)
        elif step == Step.PERSONAL_INFO:
            kinds.add(AlertKind.PERSONAL_INFO)
        elif step == Step.CHILD_REPORT:
            kinds.add(AlertKind.CHILD_REPORT)
        if step in _BYPASS_STEPS or (category in BYPASS_CATEGORIES and effect not in _NOT_A_CONCERN):
            kinds.add(AlertKind.BYPASS)
        if category and effect not in _NOT_A_CONCERN and category not in categories:
            categories.append(category)
            kinds.add(AlertKind.CATEGORY)
    if isinstance(severity, str):
        try:
            severity = Severity.parse(severity) if severity else Severity.NONE
        except ValueError:
            severity = Severity.NONE
    return EventFacts(frozenset(kinds), tuple(categories), tuple(watch), severity, subject, profile, ts)


def matches(rule: AlertRule, facts: EventFacts) -> bool:
    """Whether `rule` (enabled or not) names this event; its `repeats` aside."""
    if rule.event_severities:
        return facts.severity in rule.event_severities
    if rule.kind not in facts.kinds:
        return False
    if rule.kind is AlertKind.CATEGORY:
        return not rule.names or any(c in rule.names for c in facts.categories)
    if rule.kind is AlertKind.WATCH_LIST:
        return not rule.names or any(w in rule.names for w in facts.watch_lists)
    return True


def matching(rules: Iterable[AlertRule], facts: EventFacts) -> list[AlertRule]:
    """The enabled rules that name this event, most severe first (ties: in the file's order): the
    first that fires (its repeats seen, or an alert of it open) raises the event's one alert."""
    found = [(i, r) for i, r in enumerate(rules) if r.enabled and matches(r, facts)]
    return [r for _, r in sorted(found, key=lambda pair: (-pair[1].severity, pair[0]))]


def repeated(rule: AlertRule, times: Iterable[float], ts: float) -> bool:
    """Whether the rule fires at `ts` given the times of the subject's events it names (this one among
    them): always for a rule without `repeats`, else once `count` of them fall within `within_s` up to
    `ts`."""
    if rule.repeats is None:
        return True
    since = ts - rule.repeats.within_s
    return sum(1 for t in times if since <= t <= ts) >= rule.repeats.count


def alert_kind(rule: AlertRule, facts: EventFacts) -> AlertKind:
    """What the alert is about: the rule's kind, or for a rule by severity the event's most telling."""
    if not rule.event_severities:
        return rule.kind
    return next((k for k in _PRIMARY if k in facts.kinds), AlertKind.CATEGORY)


def alert_category(rule: AlertRule, facts: EventFacts) -> str:
    """The category the alert is filed under: the one the rule named, else the event's; trying to get
    round the filter is `filter-bypass` (a DNS canary, a refused tunnel have no category of their own)."""
    kind = alert_kind(rule, facts)
    if kind is AlertKind.CATEGORY and rule.names:
        return next((c for c in facts.categories if c in rule.names), facts.category)
    if kind is AlertKind.BYPASS:
        return next((c for c in facts.categories if c in BYPASS_CATEGORIES), BYPASS_CATEGORY)
    return facts.category


def throttle_key(rule: AlertRule, subject: str) -> str:
    """Repeats of one rule for one subject within the throttle window are one alert."""
    return f"{rule.name}\x1f{subject}"
