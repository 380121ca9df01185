"""The decision order as a truth table: each row is one rule of the policy a centre relies on.

Profiles (tests/profiles/sample_policy.py): `guest` filtered; `kid` allowlist-only with an after-school
window (allowlist outside it); `teen` filtered with flags, watch lists, downloads; `staff` without
safe search; `tech` bypasses filtering; `night` blocked outside hours; `late` flagged outside hours.
OPEN is Tuesday 16:00 in London, CLOSED is 23:00 the same day.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from profiles.categories import Severity
from profiles.decide import decide, may_intercept
from profiles.errors import PolicyError, UnknownProfile
from profiles.identity import GUEST_IDENTITY, Device, Identity, Via
from profiles.policy import Policy
from profiles.request import Channel, Request
from profiles.schedule import Outside, ScheduleRule
from profiles.verdict import Action, LogDetail, Step
from tests.profiles.sample_policy import (
    AFTER_SCHOOL,
    CATEGORIES,
    CLOSED,
    LONDON,
    OPEN,
    PROFILES,
    SAFE_SEARCH,
    WATCH,
    build_index,
    profile,
    who,
)

A, B, R, F = Action.ALLOW, Action.BLOCK, Action.REWRITE, Action.FLAG


def ask(policy: Policy, name: str, subject: str, at: datetime = OPEN, **kw: object) -> object:
    request = Request.web(subject, **kw) if "://" in subject else Request(subject)  # type: ignore[arg-type]
    return decide(request, policy, who(name), at)


ORDER = [
    # profile, host or URL, time, action, step of the first reason (None: no reason at all)
    # 1. help services and the portal come first, for everyone, at any hour, and are never logged
    ("kid", "childline.org.uk", CLOSED, A, Step.HELP_SERVICE),
    ("night", "www.childline.org.uk", CLOSED, A, Step.HELP_SERVICE),
    ("kid", "appliance.lan", CLOSED, A, Step.PORTAL),
    # bypass canaries: answered as "no such name" whatever the profile
    ("teen", "use-application-dns.net", OPEN, B, Step.BYPASS_CANARY),
    ("staff", "mask.icloud.com", OPEN, B, Step.BYPASS_CANARY),
    ("guest", "_dns.resolver.arpa", OPEN, B, Step.BYPASS_CANARY),
    # 2. a bypass profile skips everything after
    ("tech", "malware.example", OPEN, A, Step.STAFF_BYPASS),
    ("tech", "adult.example", CLOSED, A, Step.STAFF_BYPASS),
    # schedule: outside the window, allowlist-mode keeps only the allowlist and the profile's allow entries
    ("kid", "edu.example", CLOSED, A, Step.ALLOWLIST),
    ("kid", "kids-news.example", CLOSED, A, Step.OVERRIDE),
    ("kid", "random.example", CLOSED, B, Step.SCHEDULE),
    ("kid", "random.example", OPEN, B, Step.NOT_ALLOWLISTED),
    # ... block-mode keeps nothing but help services and the portal, not even its allow entries
    ("night", "edu.example", CLOSED, B, Step.SCHEDULE),
    ("night", "random.example", OPEN, A, None),
    # ... flag-mode allows, flagged
    ("late", "random.example", CLOSED, F, Step.SCHEDULE),
    ("late", "random.example", OPEN, A, None),
    # 3. always-blocked: malware and bypass services, for every profile, over any allowlist
    ("staff", "malware.example", OPEN, B, Step.ALWAYS_BLOCKED),
    ("teen", "doh.example", OPEN, B, Step.ALWAYS_BLOCKED),
    ("kid", "evil.edu.example", OPEN, B, Step.ALWAYS_BLOCKED),
    ("kid", "evil.edu.example", CLOSED, B, Step.ALWAYS_BLOCKED),
    # 4. safe search wins over the allowlist (www.google.com is on the educational allowlist)
    ("teen", "www.google.com", OPEN, R, Step.SAFE_SEARCH),
    ("kid", "www.google.com", OPEN, R, Step.SAFE_SEARCH),
    ("kid", "www.google.com", CLOSED, R, Step.SAFE_SEARCH),
    ("guest", "www.google.co.uk", OPEN, R, Step.SAFE_SEARCH),
    # ... but a rewrite does not put a search engine on an allowlist
    ("kid", "www.google.co.uk", OPEN, B, Step.NOT_ALLOWLISTED),
    # ... staff have safe search off
    ("staff", "www.google.com", OPEN, A, None),
    # ... engines that cannot be made safe are blocked with safe search on, subdomains too
    ("teen", "search.yahoo.com", OPEN, B, Step.SAFE_SEARCH_UNSUPPORTED),
    ("guest", "uk.unsafe-search.example", OPEN, B, Step.SAFE_SEARCH_UNSUPPORTED),
    ("staff", "search.yahoo.com", OPEN, A, None),
    # 5. the profile's own entries: the most specific wins, over categories and the allowlist
    ("teen", "https://adult.example/health/puberty", OPEN, A, Step.OVERRIDE),
    ("teen", "https://adult.example/", OPEN, B, Step.CATEGORY),
    ("teen", "https://social.example/groups/1", OPEN, B, Step.OVERRIDE),
    ("kid", "https://wiki.example/wiki/Scary_story", OPEN, B, Step.OVERRIDE),
    ("kid", "https://wiki.example/wiki/Cats", OPEN, A, Step.ALLOWLIST),
    ("kid", "https://video.example/kids/cartoon", OPEN, A, Step.OVERRIDE),
    ("kid", "https://video.example/other", OPEN, B, Step.NOT_ALLOWLISTED),
    # ... a name asked alone (DNS, TLS) resolves when some of its pages are allowed: the proxy judges pages
    ("kid", "video.example", OPEN, A, Step.OVERRIDE),
    ("kid", "school.example", OPEN, A, Step.ALLOWLIST),
    ("kid", "https://school.example/kids/maths", OPEN, A, Step.ALLOWLIST),
    ("kid", "https://school.example/staffroom", OPEN, B, Step.NOT_ALLOWLISTED),
    ("kid", "other.example", OPEN, B, Step.NOT_ALLOWLISTED),
    # ... then blocked categories; allowlist-only names the category when it knows it
    ("guest", "social.example", OPEN, B, Step.CATEGORY),
    ("guest", "chat.social.example", OPEN, B, Step.CATEGORY),
    ("kid", "adult.example", OPEN, B, Step.CATEGORY),
    ("teen", "adult.example", CLOSED + (OPEN - OPEN), B, Step.CATEGORY),
    # ... adblock rules with their party and exceptions (teen blocks ads)
    ("teen", "https://ads.example/banner.js", OPEN, B, Step.CATEGORY),
    ("guest", "https://ads.example/allowed/ok.js", OPEN, A, None),
    # 6. flag-only categories: allowed, flagged, also when an allowlist lets the site through
    ("teen", "social.example", OPEN, F, Step.FLAG_CATEGORY),
    ("teen", "games.example", OPEN, F, Step.ALLOWLIST),
    ("staff", "adult.example", OPEN, F, Step.FLAG_CATEGORY),
    # ... a category a profile does not name means nothing to it
    ("guest", "games.example", OPEN, A, None),
    # 7. everything else is allowed, with no reasons to keep
    ("teen", "random.example", OPEN, A, None),
    ("guest", "https://random.example/page?q=1", OPEN, A, None),
]


@pytest.mark.parametrize(("name", "subject", "at", "action", "step"), ORDER)
def test_decision_order(
    policy: Policy, name: str, subject: str, at: datetime, action: Action, step: Step | None
) -> None:
    kw = {"source_url": "https://news.example/", "request_type": "script"} if "ads." in subject else {}
    verdict = ask(policy, name, subject, at, **kw)
    assert verdict.action is action, verdict  # type: ignore[attr-defined]
    first = verdict.reasons[0].step if verdict.reasons else None  # type: ignore[attr-defined]
    assert first is step, verdict


def test_reasons_carry_category_grid_source_line_and_rule(policy: Policy) -> None:
    verdict = decide(Request("www.adult.example"), policy, who("teen"), OPEN)
    (reason,) = verdict.reasons
    assert (reason.category, reason.grid, reason.severity) == ("adult", "content / sexual", Severity.HIGH)
    assert (reason.source, reason.line, reason.rule) == ("adult-list", 1, "adult.example")
    assert verdict.severity is Severity.HIGH and verdict.log is LogDetail.EVENT


def test_flag_severity_is_the_profiles_and_the_highest_wins(policy: Policy) -> None:
    social = decide(Request("social.example"), policy, who("teen"), OPEN)
    games = decide(Request("games.example"), policy, who("teen"), OPEN)
    assert social.flagged and social.severity is Severity.MEDIUM
    assert games.flagged and games.severity is Severity.LOW
    assert [r.step for r in games.reasons] == [Step.ALLOWLIST, Step.FLAG_CATEGORY]


def test_safe_search_targets_follow_the_profile(policy: Policy) -> None:
    google = decide(Request("www.google.com"), policy, who("teen"), OPEN)
    assert google.safe_search is not None
    assert (google.safe_search.host, google.safe_search.params) == (
        "forcesafesearch.google.com",
        (("safe", "active"),),
    )
    teen_yt = decide(Request("www.youtube.com"), policy, who("teen"), OPEN).safe_search
    guest_yt = decide(Request("www.youtube.com"), policy, who("guest"), OPEN).safe_search
    assert teen_yt is not None and teen_yt.host == "restrictmoderate.youtube.com"
    assert guest_yt is not None and guest_yt.headers == (("YouTube-Restrict", "Strict"),)
    assert decide(Request("www.youtube.com"), policy, who("staff"), OPEN).safe_search is None


def test_help_services_are_never_logged_and_blocks_always_are(policy: Policy) -> None:
    assert decide(Request("childline.org.uk"), policy, who("kid"), OPEN).log is LogDetail.NONE
    assert decide(Request("random.example"), policy, who("teen"), OPEN).log is LogDetail.COUNT
    assert decide(Request("adult.example"), policy, who("teen"), OPEN).log is LogDetail.EVENT


def test_search_terms_on_a_watch_list_are_flagged_even_when_rewritten(policy: Policy) -> None:
    verdict = ask(policy, "teen", "https://www.google.com/search?q=how+to+hurt+myself")
    assert verdict.action is R and verdict.flagged  # type: ignore[attr-defined]
    watch = [r for r in verdict.reasons if r.step is Step.WATCH_LIST]  # type: ignore[attr-defined]
    assert [(r.category, r.severity, r.rule) for r in watch] == [
        ("self-harm", Severity.CRITICAL, "hurt myself")
    ]
    assert verdict.severity is Severity.CRITICAL  # type: ignore[attr-defined]
    plain = ask(policy, "teen", "https://www.google.com/search?q=rainbow+facts")
    assert plain.action is R and not plain.flagged  # type: ignore[attr-defined]


def test_a_blocking_watch_list_blocks_the_search(policy: Policy) -> None:
    verdict = ask(policy, "teen", "https://www.bing.com/search?q=where+to+BUY+A+GUN")
    assert verdict.action is B and verdict.reasons[0].step is Step.WATCH_LIST  # type: ignore[attr-defined]
    assert ask(policy, "guest", "https://www.bing.com/search?q=buy+a+gun").action is A  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "url", "kind", "action"),
    [
        ("teen", "https://files.example/setup.exe", "document", B),
        ("teen", "https://files.example/SETUP.EXE?version=2", "document", B),
        ("teen", "https://files.example/setup.exe#top", "subdocument", B),
        ("teen", "https://files.example/setup.exe", "xmlhttprequest", A),  # the proxy judges the answer
        ("teen", "https://files.example/setup.exe.html", "document", A),
        ("teen", "https://files.example/exe/readme", "document", A),
        ("teen", "https://files.example/setup.exe", "image", A),  # an <img> cannot be run
        ("guest", "https://files.example/setup.exe", "document", A),
    ],
)
def test_blocked_download_types(policy: Policy, name: str, url: str, kind: str, action: Action) -> None:
    verdict = ask(policy, name, url, request_type=kind)
    assert verdict.action is action  # type: ignore[attr-defined]
    if action is B:
        assert verdict.reasons[0].step is Step.DOWNLOAD  # type: ignore[attr-defined]


def test_personal_information_is_blocked_or_flagged_by_profile(policy: Policy) -> None:
    kid = ask(policy, "kid", "https://edu.example/form", outbound_text="call me on 07911 123456 after school")
    assert kid.action is B and kid.reasons[-1].step is Step.PERSONAL_INFO  # type: ignore[attr-defined]
    assert "123456" not in kid.reasons[-1].rule  # type: ignore[attr-defined]
    teen = ask(policy, "teen", "https://random.example/form", outbound_text="write to me: sam.k@example.com")
    assert teen.action is F and teen.reasons[0].step is Step.PERSONAL_INFO  # type: ignore[attr-defined]
    price = ask(
        policy, "teen", "https://random.example/form", outbound_text="it costs £1,234.56 on 01/05/2024"
    )
    assert price.action is A  # type: ignore[attr-defined]


def test_dns_questions_and_web_requests_agree_on_hosts(policy: Policy) -> None:
    for name in PROFILES:
        for host in ("adult.example", "social.example", "edu.example", "random.example", "malware.example"):
            dns = decide(Request(host, channel=Channel.DNS), policy, who(name), OPEN)
            web = decide(Request.web(f"https://{host}/"), policy, who(name), OPEN)
            assert dns.action is web.action, (name, host)


def test_an_unknown_profile_is_an_error(policy: Policy) -> None:
    with pytest.raises(UnknownProfile):
        decide(Request("random.example"), policy, who("nobody"), OPEN)


def test_a_naive_clock_is_refused(policy: Policy) -> None:
    with pytest.raises(ValueError, match="time zone"):
        decide(Request("random.example"), policy, who("kid"), datetime(2026, 11, 24, 16, 0))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("managed", "name", "expected"),
    [(True, "teen", False), (True, "staff", False), (False, "teen", False)],
)
def test_tls_interception_needs_a_managed_device_and_a_profile_that_allows_it(
    policy: Policy, managed: bool, name: str, expected: bool
) -> None:
    identity = Identity(name, Via.MAC, Device("pc-1", name, mac="aa:bb:cc:dd:ee:ff", managed=managed))
    assert may_intercept(policy, identity) is expected


def test_interception_allowed_only_where_both_say_so() -> None:
    profiles = dict(PROFILES, teen=profile("teen", intercept_tls=True))
    policy = Policy(CATEGORIES, profiles, build_index(), LONDON)
    managed = Identity("teen", Via.IP, Device("pc-1", "teen", network="10.0.0.5", managed=True))
    own_phone = Identity("teen", Via.IP, Device("phone", "teen", network="10.0.0.6"))
    assert may_intercept(policy, managed) and not may_intercept(policy, own_phone)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"teen": profile("teen", blocked_categories=frozenset({"gamez"}))}, "unknown category 'gamez'"),
        ({"teen": profile("teen", watch=("bullying",))}, "unknown watch list 'bullying'"),
        ({"kid": profile("kid", mode=PROFILES["kid"].mode)}, "allowlist-only with nothing"),
    ],
)
def test_a_policy_naming_what_does_not_exist_is_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy(CATEGORIES, dict(PROFILES, **change), build_index(), LONDON)  # type: ignore[arg-type]


def test_a_policy_without_a_guest_profile_is_refused() -> None:
    without = {k: v for k, v in PROFILES.items() if k != "guest"}
    with pytest.raises(PolicyError, match="guest"):
        Policy(CATEGORIES, without, build_index(), LONDON)


def test_devices_nobody_knows_get_the_policys_guest_profile_whatever_its_name() -> None:
    profiles = {k: v for k, v in PROFILES.items() if k != "guest"}
    profiles["visitor"] = profile("visitor", blocked_categories=frozenset({"social"}))
    policy = Policy(CATEGORIES, profiles, build_index(), LONDON, SAFE_SEARCH, WATCH, guest="visitor")
    verdict = decide(Request("social.example"), policy, GUEST_IDENTITY, OPEN)
    assert (verdict.profile, verdict.action) == ("visitor", Action.BLOCK)
    with pytest.raises(PolicyError, match="rename one"):
        Policy(
            CATEGORIES,
            dict(profiles, guest=PROFILES["guest"]),
            build_index(),
            LONDON,
            SAFE_SEARCH,
            WATCH,
            guest="visitor",
        )


def test_a_worrying_search_is_reported_even_when_something_else_blocks_it() -> None:
    closing = profile(
        "closing",
        schedule=ScheduleRule((AFTER_SCHOOL,), Outside.BLOCK),
        watch=("self-harm",),
    )
    policy = Policy(CATEGORIES, dict(PROFILES, closing=closing), build_index(), LONDON, SAFE_SEARCH, WATCH)
    verdict = decide(
        Request.web("https://www.google.com/search?q=suicide+pills"), policy, who("closing"), CLOSED
    )
    assert verdict.action is B
    assert [r.step for r in verdict.reasons] == [Step.SCHEDULE, Step.WATCH_LIST]
    assert verdict.severity is Severity.CRITICAL and verdict.log is LogDetail.EVENT


def test_routine_blocks_are_counted_and_serious_ones_kept_as_events(policy: Policy) -> None:
    advert = ask(
        policy,
        "teen",
        "https://ads.example/banner.js",
        source_url="https://news.example/",
        request_type="script",
    )
    assert advert.action is B and advert.log is LogDetail.COUNT  # type: ignore[attr-defined]
    closed = decide(Request("random.example"), policy, who("kid"), CLOSED)
    assert closed.action is B and closed.log is LogDetail.COUNT
    adult = decide(Request("adult.example"), policy, who("teen"), OPEN)
    assert adult.log is LogDetail.EVENT


def test_profile_block_entries_ignore_capitals_and_allow_entries_keep_them(policy: Policy) -> None:
    # kid blocks wiki.example/wiki/Scary: some servers (IIS) read /wiki/scary_story as the same page,
    # and blocking a spelling costs nothing. kid allows video.example/kids: /Kids is another page on
    # most servers, so it is not allowed by that entry.
    assert ask(policy, "kid", "https://wiki.example/wiki/Scary_story").action is B  # type: ignore[attr-defined]
    assert ask(policy, "kid", "https://wiki.example/wiki/scary_story").action is B  # type: ignore[attr-defined]
    assert ask(policy, "kid", "https://wiki.example/wiki/Cats").action is A  # type: ignore[attr-defined]
    assert ask(policy, "kid", "https://video.example/kids/cartoons").action is A  # type: ignore[attr-defined]
    assert ask(policy, "kid", "https://video.example/Kids/cartoons").action is B  # type: ignore[attr-defined]


def _closing_policy(outside: Outside) -> Policy:
    """A profile closed at CLOSED that blocks pornography and adverts, flags social networks (medium)
    and games (low), allows the educational list and, by its own entry, one adult-listed page."""
    closing = profile(
        "closing",
        blocked_categories=frozenset({"adult", "ads"}),
        flagged_categories={"social": Severity.MEDIUM, "games": Severity.LOW},
        allowed_categories=frozenset({"educational"}),
        allow=("xxx.example",),
        watch=("self-harm",),
        schedule=ScheduleRule((AFTER_SCHOOL,), outside),
    )
    return Policy(CATEGORIES, dict(PROFILES, closing=closing), build_index(), LONDON, SAFE_SEARCH, WATCH)


_CLOSED_HOURS = [
    # outside, host or URL, action, steps of the reasons, severity, logged as
    # a category that blocks or flags the host keeps its word, its severity, and the event
    (Outside.ALLOWLIST, "adult.example", B, [Step.SCHEDULE, Step.CATEGORY], Severity.HIGH, LogDetail.EVENT),
    (Outside.BLOCK, "adult.example", B, [Step.SCHEDULE, Step.CATEGORY], Severity.HIGH, LogDetail.EVENT),
    (
        Outside.ALLOWLIST,
        "https://adult.example/videos",
        B,
        [Step.SCHEDULE, Step.CATEGORY],
        Severity.HIGH,
        LogDetail.EVENT,
    ),
    (
        Outside.ALLOWLIST,
        "social.example",
        B,
        [Step.SCHEDULE, Step.FLAG_CATEGORY],
        Severity.MEDIUM,
        LogDetail.EVENT,
    ),
    (
        Outside.ALLOWLIST,
        "malware.example",
        B,
        [Step.SCHEDULE, Step.ALWAYS_BLOCKED],
        Severity.CRITICAL,
        LogDetail.EVENT,
    ),
    # ... a flag category of low severity is still a flag, so an event
    (Outside.BLOCK, "games.example", B, [Step.SCHEDULE, Step.FLAG_CATEGORY], Severity.LOW, LogDetail.EVENT),
    # ... an advert stays a routine block, as in opening hours: counted
    (
        Outside.ALLOWLIST,
        "https://ads.example/banner.js",
        B,
        [Step.SCHEDULE, Step.CATEGORY],
        Severity.LOW,
        LogDetail.COUNT,
    ),
    (
        Outside.BLOCK,
        "https://ads.example/banner.js",
        B,
        [Step.SCHEDULE, Step.CATEGORY],
        Severity.LOW,
        LogDetail.COUNT,
    ),
    # a host no category names is a routine closed-hours block: counted
    (Outside.ALLOWLIST, "random.example", B, [Step.SCHEDULE], Severity.NONE, LogDetail.COUNT),
    (Outside.BLOCK, "random.example", B, [Step.SCHEDULE], Severity.NONE, LogDetail.COUNT),
    # what the profile lets through in opening hours (its own allow entry) its block category does not
    # name for it: closed in block mode, counted; let through in allowlist mode
    (Outside.BLOCK, "xxx.example", B, [Step.SCHEDULE], Severity.NONE, LogDetail.COUNT),
    (Outside.ALLOWLIST, "xxx.example", A, [Step.OVERRIDE], Severity.NONE, LogDetail.COUNT),
    # the allowlist works out of hours in allowlist mode, its flags with it, as before
    (
        Outside.ALLOWLIST,
        "games.example",
        F,
        [Step.ALLOWLIST, Step.FLAG_CATEGORY],
        Severity.LOW,
        LogDetail.EVENT,
    ),
]


@pytest.mark.parametrize(("outside", "subject", "action", "steps", "severity", "log"), _CLOSED_HOURS)
def test_a_closed_hours_block_keeps_the_word_of_a_category_that_names_the_host(
    outside: Outside,
    subject: str,
    action: Action,
    steps: list[Step],
    severity: Severity,
    log: LogDetail,
) -> None:
    kw = {"source_url": "https://news.example/", "request_type": "script"} if "ads." in subject else {}
    verdict = ask(_closing_policy(outside), "closing", subject, CLOSED, **kw)
    assert (verdict.action, [r.step for r in verdict.reasons]) == (action, steps), verdict
    assert (verdict.severity, verdict.log) == (severity, log), verdict


def test_closed_hours_keep_personal_information_and_watch_lists_as_before() -> None:
    policy = _closing_policy(Outside.ALLOWLIST)
    # a phone number sent to a chat site the profile flags: the flag, the finding, and the event
    sent = Request.web("https://social.example/send", outbound_text="text me on 07911 123456")
    verdict = decide(sent, policy, who("closing"), CLOSED)
    assert verdict.action is B and verdict.log is LogDetail.EVENT
    assert [r.step for r in verdict.reasons] == [Step.SCHEDULE, Step.FLAG_CATEGORY, Step.PERSONAL_INFO]
    # ... and to a site no category names: the finding alone goes with the schedule, as before
    other = Request.web("https://random.example/send", outbound_text="text me on 07911 123456")
    verdict = decide(other, policy, who("closing"), CLOSED)
    assert [r.step for r in verdict.reasons] == [Step.SCHEDULE, Step.PERSONAL_INFO]
    assert verdict.log is LogDetail.EVENT
    search = Request.web("https://www.google.com/search?q=suicide+pills")
    verdict = decide(search, _closing_policy(Outside.BLOCK), who("closing"), CLOSED)
    assert [r.step for r in verdict.reasons] == [Step.SCHEDULE, Step.WATCH_LIST]
    assert verdict.severity is Severity.CRITICAL and verdict.log is LogDetail.EVENT
