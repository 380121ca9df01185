"""Which alerts.yaml rules an event matches, read from the reasons `decide` and the proxy really give:
a truth table of events (a self-harm search, personal information sent, a child's report, a DNS
canary, a connection that went round the filter, a VPN site, a blocked adult or dating site, an
allowed educational site) against the shipped rules; then the choice of one rule per event, and
repeats within a window."""

from __future__ import annotations

import json
from typing import Any

import pytest

from profiles.alert_rules import (
    EventFacts,
    alert_category,
    alert_kind,
    facts_of,
    matching,
    repeated,
    watch_list_of,
)
from profiles.alerts import AlertKind, AlertRule, Repeats
from profiles.categories import Severity
from profiles.connection import named_and_sent, undecidable
from profiles.decide import child_report, decide
from profiles.identity import Identity, Via
from profiles.policy import Policy
from profiles.request import Request
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict
from tests.profiles.sample_policy import OPEN

K = AlertKind
CRITICAL, HIGH, MEDIUM = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM

# The shipped defaults (appliance/defaults/policy/alerts.yaml), as values.
RULES = (
    AlertRule("self-harm", K.WATCH_LIST, CRITICAL, ("self-harm",)),
    AlertRule("self-harm-sites", K.CATEGORY, CRITICAL, ("self-harm",)),
    AlertRule("grooming", K.WATCH_LIST, CRITICAL, ("grooming",)),
    AlertRule("grooming-sites", K.CATEGORY, CRITICAL, ("grooming",)),
    AlertRule("child-report", K.CHILD_REPORT, CRITICAL),
    AlertRule("personal-info", K.PERSONAL_INFO, HIGH),
    AlertRule("strangers", K.CATEGORY, HIGH, ("dating", "chat")),
    AlertRule("adult-repeated", K.CATEGORY, HIGH, ("adult",), Repeats(3, 600)),
    AlertRule("bypass", K.BYPASS, HIGH, repeats=Repeats(3, 600)),
    AlertRule("medium", K.CATEGORY, MEDIUM, enabled=False, event_severities=(MEDIUM,)),
)


def facts(verdict: Verdict, subject: str = "child:amira", ts: float = 1000.0) -> EventFacts:
    """The facts as the alerter reads them: the verdict's reasons as the event log keeps them."""
    reasons: list[dict[str, Any]] = json.loads(json.dumps([r.as_json(grid=False) for r in verdict.reasons]))
    return facts_of(reasons, severity=str(verdict.severity), subject=subject, profile=verdict.profile, ts=ts)


def ask(policy: Policy, profile: str, url: str, **kw: Any) -> Verdict:
    request = Request.web(url, **kw) if "://" in url else Request(url)
    return decide(request, policy, Identity(profile, Via.ASSUMED), OPEN)


def listed(category: str, effect: Action = Action.BLOCK, severity: Severity = HIGH) -> Verdict:
    reason = Reason(Step.CATEGORY, effect, "domain listed", category, "", severity, "a-list", 3, "x.example")
    return Verdict(effect, "kids", (reason,), severity)


def test_a_self_harm_search_is_a_watch_list_hit_of_the_self_harm_list(policy: Policy) -> None:
    verdict = ask(policy, "teen", "https://www.google.com/search?q=how+to+hurt+myself")
    found = facts(verdict)
    assert found.kinds == {K.WATCH_LIST, K.CATEGORY}
    assert (found.watch_lists, found.categories, found.severity) == (("self-harm",), ("self-harm",), CRITICAL)
    # The watch-list rule and the self-harm category rule both name it: one alert, the first in the file.
    assert [r.name for r in matching(RULES, found)] == ["self-harm", "self-harm-sites"]


@pytest.mark.parametrize(
    ("event", "kinds", "first_rule"),
    [
        # a child pressed "report a problem" on a block page (the proxy's flagged request)
        ("report", {K.CHILD_REPORT}, "child-report"),
        # a phone number typed into a form
        ("personal-info", {K.PERSONAL_INFO}, "personal-info"),
        # Firefox's DoH canary asked of the DNS filter
        ("canary", {K.BYPASS}, "bypass"),
        # a request that named a school site and was sent to another (domain fronting)
        ("fronting", {K.BYPASS}, "bypass"),
        # SSH out of the centre: no list can judge it
        ("undecidable", {K.BYPASS}, "bypass"),
        # a VPN service's site (the filter-bypass category)
        ("vpn", {K.BYPASS, K.CATEGORY}, "bypass"),
        ("dating", {K.CATEGORY}, "strangers"),
        ("chat-flagged", {K.CATEGORY}, "strangers"),
        ("adult", {K.CATEGORY}, "adult-repeated"),
        ("gambling", {K.CATEGORY}, None),  # medium: the rule is off (feed only)
        ("educational", set(), None),  # allowed by an allowlist: no concern at all
    ],
)
def test_what_each_event_is_and_the_rule_it_raises(
    policy: Policy, event: str, kinds: set[AlertKind], first_rule: str | None
) -> None:
    verdicts = {
        "report": child_report("kids", "category: adult", "he keeps messaging me"),
        "personal-info": ask(
            policy, "kid", "https://edu.example/form", outbound_text="call me on 07911 123456 after school"
        ),
        "canary": ask(policy, "teen", "use-application-dns.net"),
        "fronting": named_and_sent(
            ask(policy, "teen", "edu.example"),
            ask(policy, "teen", "random.example"),
            named_host="edu.example",
            sent_host="random.example",
        ),
        "undecidable": undecidable(policy, Identity("teen", Via.ASSUMED), "not web traffic (SSH) to host:22"),
        "vpn": listed("filter-bypass", severity=MEDIUM),
        "dating": listed("dating"),
        "chat-flagged": listed("chat", Action.FLAG, MEDIUM),
        "adult": listed("adult"),
        "gambling": listed("gambling", severity=MEDIUM),
        "educational": listed("educational", Action.ALLOW, Severity.NONE),
    }
    found = facts(verdicts[event])
    assert found.kinds == kinds
    rules = matching(RULES, found)
    assert (rules[0].name if rules else None) == first_rule


def test_a_fronting_attempt_at_an_adult_site_is_bypass_and_adult(policy: Policy) -> None:
    verdict = named_and_sent(
        listed("adult"), ask(policy, "teen", "edu.example"), named_host="x.example", sent_host="edu.example"
    )
    found = facts(verdict)
    assert found.kinds == {K.BYPASS, K.CATEGORY} and found.categories == ("adult",)
    assert [r.name for r in matching(RULES, found)] == ["adult-repeated", "bypass"]


def test_a_rule_of_a_watch_list_names_only_that_list() -> None:
    grooming = Reason(
        Step.WATCH_LIST,
        Action.FLAG,
        "searched on Google for words on the 'grooming' watch list",
        "grooming",
        severity=CRITICAL,
        rule="send nudes",
    )
    found = facts(Verdict(Action.FLAG, "kids", (grooming,), CRITICAL))
    assert found.watch_lists == ("grooming",)
    assert [r.name for r in matching(RULES, found)] == ["grooming", "grooming-sites"]
    assert alert_kind(RULES[2], found) is K.WATCH_LIST and alert_category(RULES[2], found) == "grooming"


@pytest.mark.parametrize(
    ("reason", "name"),
    [
        (
            {"step": "watch-list", "detail": "searched on Bing for words on the 'self-harm' watch list"},
            "self-harm",
        ),
        (
            {"step": "watch-list", "detail": 'searched on Bing for words on the "it\'s me" watch list'},
            "it's me",
        ),
        ({"step": "watch-list", "detail": "x", "source": "bullying"}, "bullying"),
        ({"step": "watch-list", "detail": "a watch-list word"}, ""),
    ],
)
def test_the_watch_list_is_read_from_the_reason(reason: dict[str, str], name: str) -> None:
    assert watch_list_of(reason) == name


def test_a_disabled_rule_raises_nothing_and_a_rule_by_severity_matches_any_kind() -> None:
    found = facts(listed("gambling", severity=MEDIUM))
    assert matching(RULES, found) == []
    medium = AlertRule("medium", K.CATEGORY, MEDIUM, event_severities=(MEDIUM,))
    assert matching([medium], found) == [medium]
    assert matching([medium], facts(listed("adult"))) == []  # high: not a medium event
    report = facts(
        Verdict(
            Action.FLAG, "kids", (Reason(Step.BYPASS_ATTEMPT, Action.FLAG, "x", severity=MEDIUM),), MEDIUM
        )
    )
    assert matching([medium], report) == [medium] and alert_kind(medium, report) is K.BYPASS


def test_the_most_severe_matching_rule_comes_first_whatever_the_order() -> None:
    low_first = (
        AlertRule("any-adult", K.CATEGORY, MEDIUM, ("adult",)),
        AlertRule("adult-critical", K.CATEGORY, CRITICAL, ("adult",)),
        AlertRule("adult-high", K.CATEGORY, HIGH),
    )
    assert [r.name for r in matching(low_first, facts(listed("adult")))] == [
        "adult-critical",
        "adult-high",
        "any-adult",
    ]


@pytest.mark.parametrize(
    ("times", "fires"),
    [
        ([1000.0], False),
        ([900.0, 1000.0], False),
        ([500.0, 900.0, 1000.0], True),  # three within ten minutes
        ([399.0, 900.0, 1000.0], False),  # the first is 601 s before
        ([400.0, 900.0, 1000.0], True),  # exactly ten minutes: within
        ([900.0, 950.0, 1000.0, 1100.0], True),  # a later one (another writer's) does not count
        ([900.0, 950.0, 1100.0], False),
    ],
)
def test_repeats_count_the_subjects_events_within_the_window(times: list[float], fires: bool) -> None:
    adult = RULES[7]
    assert repeated(adult, times, 1000.0) is fires
    assert repeated(RULES[6], [1000.0], 1000.0)  # a rule without repeats fires at once


def test_a_bypass_canary_is_kept_as_an_event_so_the_alerter_sees_it(policy: Policy) -> None:
    for host in ("use-application-dns.net", "mask.icloud.com", "_dns.resolver.arpa"):
        assert ask(policy, "teen", host).log is LogDetail.EVENT
        assert ask(policy, "tech", host).log is LogDetail.COUNT  # bypasses filtering: nothing to get round
