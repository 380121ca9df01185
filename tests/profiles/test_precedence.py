"""When several lists name the same host: which reason staff see, as a truth table (docs/lists.md, "When
lists disagree"; docs/profiles.md, step 5).

The rule: the action is what every list says under the profile, as ever (a list that blocks still
blocks); the reasons of a block are those of the best-ranked lists among the ones that block (an
`exceptions` list above `specific`, above `broad`, above `stale`), the most serious category first; a
flag from a list outranked by another list naming the host is dropped; and an `exceptions` list's
`@@||name^` takes the name (and its subdomains) out of that one category in every list.
"""

from __future__ import annotations

import pytest

from filters.adblock import parse_adblock
from filters.compile import IndexBuilder
from filters.host_table import ALLOW
from filters.index import FilterIndex, SourceInfo
from filters.report import ReportBuilder
from filters.sources import Rank
from profiles.categories import Area, Category, CategoryMap, Kind, Risk, Severity
from profiles.decide import decide
from profiles.policy import Policy
from profiles.profile import Mode
from profiles.request import Request
from profiles.verdict import Action, LogDetail, Step, Verdict
from tests.profiles.sample_policy import LONDON, OPEN, profile, who

# source name: (category, rank, entries, flags)
LISTS: dict[str, tuple[str, Rank, list[str], int]] = {
    # A gambling list last rebuilt in 2020 that also names ad servers.
    "gambling-2020": ("gambling", Rank.STALE, ["adserver.example", "only-2020.example"], 0),
    "gambling-now": ("gambling", Rank.SPECIFIC, ["casino.example", "bookmaker.example"], 0),
    "ad-hosts": ("ads", Rank.SPECIFIC, ["adserver.example", "casino.example"], 0),
    # A phishing list that also names bookmakers; phishing is always blocked.
    "phishing-wide": ("phishing", Rank.BROAD, ["bookmaker.example", "phish.example"], 0),
    "phishing-now": ("phishing", Rank.SPECIFIC, ["phish.example"], 0),
    # A cheating list that names a whole forum (as UT1's `tricheur` names reddit.com) and a page of it.
    "cheating": ("hacking", Rank.BROAD, ["forum.example", "www.forum.example", "cheats.forum.example"], 0),
    "social": ("social", Rank.SPECIFIC, ["forum.example"], 0),
    # Licensed operators, a whitelist filed under gambling (UT1's `arjel`): not an exceptions list.
    "licensed-operators": ("gambling", Rank.SPECIFIC, ["casino.example"], ALLOW),
    "edu": ("educational", Rank.SPECIFIC, ["forum.example"], ALLOW),
    # Our reviewed exceptions: names another list files wrongly under hacking, phishing.
    "exceptions-hacking": ("hacking", Rank.EXCEPTIONS, ["forum.example"], ALLOW),
    "exceptions-phishing": ("phishing", Rank.EXCEPTIONS, ["bookmaker.example"], ALLOW),
}
ADBLOCK = ["||adserver.example^$third-party", "||tracker.example^$third-party"]


def category(name: str, severity: Severity, *, always: bool = False, kind: Kind = Kind.RISK) -> Category:
    area, risk = (None, None) if kind is Kind.ALLOWLIST else (Area.CONDUCT, Risk.COMMERCIAL)
    return Category(name, name.title(), kind, area, risk, severity, always_blocked=always)


CATEGORIES = CategoryMap(
    {
        "ads": category("ads", Severity.LOW),
        "gambling": category("gambling", Severity.HIGH),
        "phishing": category("phishing", Severity.CRITICAL, always=True),
        "hacking": category("hacking", Severity.MEDIUM),
        "social": category("social", Severity.LOW),
        "educational": category("educational", Severity.NONE, kind=Kind.ALLOWLIST),
    }
)
PROFILES = {
    p.name: p
    for p in (
        # as the shipped 13-17: ads and gambling blocked, social networks flagged
        profile(
            "teen",
            blocked_categories=frozenset({"ads", "gambling", "hacking"}),
            flagged_categories={"social": Severity.LOW},
        ),
        # a profile that blocks gambling but not adverts
        profile("no-adblock", blocked_categories=frozenset({"gambling"})),
        # as the shipped staff profile: gambling flagged, adverts let through
        profile("staff", flagged_categories={"gambling": Severity.MEDIUM}),
        profile(
            "kid",
            mode=Mode.ALLOWLIST_ONLY,
            allowed_categories=frozenset({"educational"}),
            blocked_categories=frozenset({"hacking"}),
        ),
        profile("guest", blocked_categories=frozenset({"gambling"})),
    )
}


def build_index() -> FilterIndex:
    builder = IndexBuilder()
    for name, (label, _, hosts, flags) in LISTS.items():
        sid = builder.add_source(SourceInfo(name, label, "domains", f"/lists/{name}"))
        builder.add_hosts(sid, [(h, i + 1, flags) for i, h in enumerate(hosts)])
    sid = builder.add_source(SourceInfo("easylist", "ads", "adblock", "/lists/easylist"))
    builder.add_network_rules(sid, parse_adblock(ADBLOCK, "easylist", ReportBuilder("easylist")))
    return FilterIndex(builder.build())


@pytest.fixture(scope="module")
def policy() -> Policy:
    ranks = {name: rank for name, (_, rank, _, _) in LISTS.items()}
    return Policy(CATEGORIES, PROFILES, build_index(), LONDON, ranks=ranks)


def ask(policy: Policy, who_asks: str, subject: str) -> Verdict:
    if "://" in subject:
        request = Request.web(subject, source_url="https://news.example/", request_type="image")
    else:
        request = Request(subject)
    return decide(request, policy, who(who_asks), OPEN)


TABLE = [
    # profile, host or URL, action, category staff see first ("" none), severity, every list shown
    # An ad server in a stale gambling list and an ad list: an advert, low (counted, not an event).
    ("teen", "adserver.example", Action.BLOCK, "ads", Severity.LOW, ["ad-hosts"]),
    # ... and on a page, where EasyList names it.
    (
        "teen",
        "https://adserver.example/banner.gif",
        Action.BLOCK,
        "ads",
        Severity.LOW,
        ["ad-hosts", "easylist"],
    ),
    # A profile that lets adverts through still blocks what a gambling list names: no blocking is lost.
    ("no-adblock", "adserver.example", Action.BLOCK, "gambling", Severity.HIGH, ["gambling-2020"]),
    # The stale list alone still blocks, and says it is stale.
    ("teen", "only-2020.example", Action.BLOCK, "gambling", Severity.HIGH, ["gambling-2020"]),
    # Staff flag gambling and let adverts through: a flag the ad list contradicts is dropped.
    ("staff", "adserver.example", Action.ALLOW, "", Severity.NONE, []),
    ("staff", "only-2020.example", Action.FLAG, "gambling", Severity.MEDIUM, ["gambling-2020"]),
    # A real casino in a current gambling list and an ad list: gambling, and the advert beside it.
    ("teen", "casino.example", Action.BLOCK, "gambling", Severity.HIGH, ["gambling-now", "ad-hosts"]),
    # A licensed operators' whitelist filed under gambling is no exception: still blocked.
    ("guest", "casino.example", Action.BLOCK, "gambling", Severity.HIGH, ["gambling-now"]),
    # A bookmaker in a broad phishing list and a gambling list: blocked as gambling ...
    ("teen", "bookmaker.example", Action.BLOCK, "gambling", Severity.HIGH, ["gambling-now"]),
    # ... and, the phishing entry excepted, flagged as gambling for staff, not blocked as phishing.
    ("staff", "bookmaker.example", Action.FLAG, "gambling", Severity.MEDIUM, ["gambling-now"]),
    # Real phishing in a broad and a specific list: the specific list names it.
    ("staff", "phish.example", Action.BLOCK, "phishing", Severity.CRITICAL, ["phishing-now"]),
    # A forum a cheating list names whole (as UT1 names reddit.com), excepted: flagged as social only.
    ("teen", "forum.example", Action.FLAG, "social", Severity.LOW, ["social"]),
    ("teen", "www.forum.example", Action.FLAG, "social", Severity.LOW, ["social"]),
    # The list's www. entry goes with the name; its more specific entry, which the exception does not
    # name, still blocks.
    ("teen", "cheats.forum.example", Action.BLOCK, "hacking", Severity.MEDIUM, ["cheating"]),
    # An exception allows nothing by itself: the youngest still see only their allowlist.
    ("kid", "bookmaker.example", Action.BLOCK, "", Severity.NONE, []),
    ("kid", "forum.example", Action.ALLOW, "educational", Severity.NONE, ["edu"]),
]


@pytest.mark.parametrize(("who_asks", "subject", "action", "first", "severity", "sources"), TABLE)
def test_which_list_names_the_host(
    policy: Policy,
    who_asks: str,
    subject: str,
    action: Action,
    first: str,
    severity: Severity,
    sources: list[str],
) -> None:
    verdict = ask(policy, who_asks, subject)
    listed = [r for r in verdict.reasons if r.source]
    assert (verdict.action, verdict.severity) == (action, severity), verdict
    assert (listed[0].category if listed else "") == first, verdict
    assert [r.source for r in listed] == sources, verdict


def test_an_advert_named_by_a_stale_gambling_list_is_counted_not_an_event_for_staff(policy: Policy) -> None:
    verdict = ask(policy, "teen", "adserver.example")
    assert verdict.log is LogDetail.COUNT
    assert [str(r) for r in verdict.reasons] == [
        "block: domain listed under Ads [ads: conduct / commercial, low] (ad-hosts:1: adserver.example)"
    ]


def test_a_reason_from_a_stale_or_broad_list_says_so(policy: Policy) -> None:
    stale = ask(policy, "teen", "only-2020.example").reasons[0]
    assert stale.detail == "domain listed under Gambling (by a list no longer kept up to date)"
    broad = ask(policy, "teen", "cheats.forum.example").reasons[0]
    assert broad.detail == "domain listed under Hacking (by a broad list)"
    assert ask(policy, "teen", "casino.example").reasons[0].detail == "domain listed under Gambling"


def test_an_always_blocked_entry_is_what_a_block_is_reported_as_whatever_outranks_it(
    policy: Policy,
) -> None:
    """Without the exception the broad phishing list's entry blocks the bookmaker for everyone: that is
    what staff and children are told (and it is an event), not the gambling list that outranks it, as a
    malware entry is never reported, and merely counted, as an advert."""
    ranks = {name: rank for name, (_, rank, _, _) in LISTS.items() if name != "exceptions-phishing"}
    plain = Policy(CATEGORIES, PROFILES, build_index(), LONDON, ranks=ranks)
    for who_asks in ("staff", "teen"):
        verdict = ask(plain, who_asks, "bookmaker.example")
        assert verdict.action is Action.BLOCK and verdict.log is LogDetail.EVENT, verdict
        assert [(r.step, r.category, r.source) for r in verdict.reasons] == [
            (Step.ALWAYS_BLOCKED, "phishing", "phishing-wide")
        ], verdict


def test_lists_of_one_rank_show_the_most_serious_category_first(policy: Policy) -> None:
    verdict = ask(policy, "teen", "https://casino.example/")
    assert [r.category for r in verdict.reasons] == ["gambling", "ads"]
    assert verdict.severity is Severity.HIGH and verdict.log is LogDetail.EVENT
