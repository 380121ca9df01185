"""A small policy over a small in-memory index: what the decision's truth tables read against."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from filters.adblock import parse_adblock
from filters.compile import IndexBuilder
from filters.host_table import ALLOW
from filters.index import FilterIndex, SourceInfo
from filters.report import ReportBuilder
from profiles.categories import Area, Category, CategoryMap, Kind, Risk, Severity
from profiles.identity import Identity, Via
from profiles.policy import Policy
from profiles.profile import Mode, PersonalInfoRule, Profile
from profiles.safesearch import Engine, SafeSearchRules, SafeSearchSetting, YouTubeMode
from profiles.schedule import Outside, Schedule, ScheduleRule, Window
from profiles.verdict import Action, SafeTarget
from profiles.watch import WatchList

LONDON = ZoneInfo("Europe/London")
# Tuesday 2026-11-24 16:00 in London (UTC in winter): inside the after-school window.
OPEN = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
CLOSED = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)

LISTS: dict[str, tuple[str, list[str], int]] = {
    # source name: (its own category label, entries, flags)
    "adult-list": ("porn", ["adult.example", "xxx.example"], 0),
    "social-list": ("social", ["social.example", "chat.social.example"], 0),
    "malware-list": ("malware", ["malware.example", "evil.edu.example"], 0),
    "games-list": ("games", ["games.example"], 0),
    "edu-list": ("educational", ["edu.example", "wiki.example", "www.google.com", "games.example"], ALLOW),
    "bypass-list": ("doh", ["doh.example"], 0),
}
ADS = ["||ads.example^$third-party", "@@||ads.example/allowed/$third-party"]

CATEGORIES = CategoryMap(
    {
        "adult": Category(
            "adult", "Pornography", Kind.RISK, Area.CONTENT, Risk.SEXUAL, Severity.HIGH, labels=("porn",)
        ),
        "social": Category(
            "social",
            "Social networks",
            Kind.RISK,
            Area.CONTACT,
            Risk.AGGRESSIVE,
            Severity.MEDIUM,
            sources=("social-list",),
        ),
        "malware": Category(
            "malware",
            "Malware",
            Kind.RISK,
            Area.CONDUCT,
            Risk.COMMERCIAL,
            Severity.CRITICAL,
            always_blocked=True,
        ),
        "bypass": Category(
            "bypass",
            "Getting round the filter",
            Kind.RISK,
            Area.CONDUCT,
            Risk.VALUES,
            Severity.MEDIUM,
            labels=("doh",),
            always_blocked=True,
        ),
        "games": Category("games", "Games", Kind.RISK, Area.CONTENT, Risk.COMMERCIAL, Severity.LOW),
        "ads": Category(
            "ads",
            "Advertising",
            Kind.RISK,
            Area.CONTENT,
            Risk.COMMERCIAL,
            Severity.LOW,
            sources=("ads-list",),
        ),
        "self-harm": Category(
            "self-harm", "Self-harm", Kind.RISK, Area.CONTACT, Risk.VALUES, Severity.CRITICAL
        ),
        "educational": Category(
            "educational", "Educational", Kind.ALLOWLIST, None, None, Severity.NONE, sources=("edu-list",)
        ),
    }
)

AFTER_SCHOOL = Schedule("after-school", (Window(frozenset(range(5)), 15 * 60, 19 * 60),))
SAFE_SEARCH = SafeSearchRules(
    (
        Engine(
            "google",
            frozenset({"www.google.com", "www.google.co.uk"}),
            SafeTarget("google", "forcesafesearch.google.com", (("safe", "active"),)),
        ),
        Engine(
            "youtube",
            frozenset({"www.youtube.com"}),
            SafeTarget("youtube", "restrict.youtube.com", (), (("YouTube-Restrict", "Strict"),)),
            SafeTarget("youtube", "restrictmoderate.youtube.com", (), (("YouTube-Restrict", "Moderate"),)),
        ),
    ),
    frozenset({"search.yahoo.com", "unsafe-search.example"}),
)
WATCH = {
    "self-harm": WatchList(
        "self-harm", "self-harm", Severity.CRITICAL, Action.FLAG, ("suicid*", "hurt myself")
    ),
    "weapons": WatchList("weapons", "adult", Severity.HIGH, Action.BLOCK, ("buy a gun",)),
}


def profile(name: str, **kw: object) -> Profile:
    return Profile(name=name, description=f"the {name} profile", **kw)  # type: ignore[arg-type]


PROFILES = {
    p.name: p
    for p in (
        profile("guest", blocked_categories=frozenset({"adult", "social", "ads"})),
        profile(
            "kid",
            mode=Mode.ALLOWLIST_ONLY,
            allowed_categories=frozenset({"educational"}),
            blocked_categories=frozenset({"adult"}),
            allow=("kids-news.example", "video.example/kids"),
            block=("wiki.example/wiki/Scary",),
            schedule=ScheduleRule((AFTER_SCHOOL,), Outside.ALLOWLIST),
            personal_info=PersonalInfoRule(Action.BLOCK),
        ),
        profile(
            "teen",
            blocked_categories=frozenset({"adult", "ads"}),
            flagged_categories={"social": Severity.MEDIUM, "games": Severity.LOW},
            allowed_categories=frozenset({"educational"}),
            safe_search=SafeSearchSetting(True, YouTubeMode.MODERATE),
            watch=("self-harm", "weapons"),
            blocked_downloads=frozenset({"exe"}),
            block=("social.example/groups",),
            allow=("adult.example/health",),
        ),
        profile(
            "staff", safe_search=SafeSearchSetting(enabled=False), flagged_categories={"adult": Severity.HIGH}
        ),
        profile("tech", bypass=True),
        profile("night", schedule=ScheduleRule((AFTER_SCHOOL,), Outside.BLOCK), allow=("edu.example",)),
        profile("late", schedule=ScheduleRule((AFTER_SCHOOL,), Outside.FLAG)),
    )
}


def build_index() -> FilterIndex:
    builder = IndexBuilder()
    for name, (label, hosts, flags) in LISTS.items():
        sid = builder.add_source(SourceInfo(name, label, "domains", f"/lists/{name}"))
        builder.add_hosts(sid, [(h, i + 1, flags) for i, h in enumerate(hosts)])
    sid = builder.add_source(SourceInfo("edu-urls", "educational", "ut1", "/lists/edu-urls"))
    builder.add_url_prefixes(sid, [("school.example", "/kids/", 1, ALLOW)])
    sid = builder.add_source(SourceInfo("ads-list", "ads", "adblock", "/lists/ads"))
    builder.add_network_rules(sid, parse_adblock(ADS, "ads", ReportBuilder("ads")))
    return FilterIndex(builder.build())


@pytest.fixture(scope="session")
def policy() -> Policy:
    return Policy(
        CATEGORIES,
        PROFILES,
        build_index(),
        LONDON,
        SAFE_SEARCH,
        WATCH,
        help_services=frozenset({"childline.org.uk"}),
        portal_hosts=frozenset({"appliance.lan"}),
    )


def who(profile_name: str) -> Identity:
    return Identity(profile_name, Via.ASSUMED)
