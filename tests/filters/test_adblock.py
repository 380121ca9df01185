"""The adblock network-rule parser, as truth tables: each line, the rule it becomes, or why it is
skipped. Skipped lines are counted with their file and line; comments and blank lines are neither."""

from __future__ import annotations

import pytest

from filters.adblock import (
    ALL_TYPES,
    ANY_PARTY,
    DOCUMENT,
    FIRST_PARTY,
    NETWORK_TYPES,
    THIRD_PARTY,
    TYPE_BITS,
    NetworkRule,
    parse_adblock,
)
from filters.report import ReportBuilder, SourceReport
from filters.text import MAX_LINE

SCRIPT, IMAGE, XHR = TYPE_BITS["script"], TYPE_BITS["image"], TYPE_BITS["xmlhttprequest"]


def parse(text: str) -> tuple[list[NetworkRule], SourceReport]:
    report = ReportBuilder("easylist")
    rules = parse_adblock(text.split("\n"), "easylist.txt", report)
    return rules, report.freeze()


def one(line: str) -> NetworkRule:
    rules, report = parse(line)
    assert report.skipped == 0, report.first_skipped
    assert len(rules) == 1 and report.entries == 1
    return rules[0]


def skipped(line: str) -> str:
    rules, report = parse(line)
    assert rules == [] and report.entries == 0 and report.skipped == 1
    return report.first_skipped[0].reason


# --- patterns and anchors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "pattern", "anchor", "end_anchor"),
    [
        ("/banner/ad.", "/banner/ad.", "", False),
        ("||ads.example.com^", "ads.example.com^", "||", False),
        ("||Ads.Example.COM/Path", "ads.example.com/path", "||", False),
        ("|https://ads.", "https://ads.", "|", False),
        ("swf|", "swf", "", True),
        ("|https://x.com/a.js|", "https://x.com/a.js", "|", True),
        ("/ads/*", "/ads/", "", False),  # one trailing * says nothing
        ("*/ads/", "/ads/", "", False),
        ("|*ad.js", "ad.js", "", False),  # a leading * cancels the | anchor
        ("||*ad.js", "ad.js", "", False),
        ("/a*b^c", "/a*b^c", "", False),
        ("foo|bar", "foo|bar", "", False),  # a | inside is a character
        ("||bücher.example^", "xn--bcher-kva.example^", "||", False),
        ("||ads.example|", "ads.example^", "||", False),  # adblock-rust: only the host counts
        ("||ads.example^|", "ads.example^", "||", False),
        ("||ads.example/x|", "ads.example/x", "||", True),
        ("#foo", "#foo", "", False),  # not a comment for adblock-rust: "# " is
        ("||", "", "", False),  # matches everything, as in adblock-rust
        ("|*|", "", "", False),
        ("@@", "", "", False),
    ],
)
def test_patterns_and_anchors(line: str, pattern: str, anchor: str, end_anchor: bool) -> None:
    rule = one(line)
    assert (rule.pattern, rule.anchor, rule.end_anchor, rule.regex) == (pattern, anchor, end_anchor, False)
    assert rule.text == line and rule.line == 1


@pytest.mark.parametrize(
    ("line", "expression"),
    [
        ("/ads?[0-9]+\\.js/", "ads?[0-9]+\\.js"),
        ("/banner/", "banner"),  # /.../ is a regular expression, even when it looks like a path
        ("|/ads/", "ads"),  # adblock-rust ignores | anchors around a regex
        ("/^https?:\\/\\/x\\.com\\//$script", "^https?:\\/\\/x\\.com\\/"),
        ("/foo\\d+$/", "foo\\d+$"),  # the $ ends the regex, it does not start options
        ("/foo$/$image", "foo$"),
        ("/(a+)+b/", "(a+)+b"),  # catastrophic for backtracking engines, linear in RE2
    ],
)
def test_regular_expressions(line: str, expression: str) -> None:
    rule = one(line)
    assert rule.regex and rule.pattern == expression and rule.anchor == "" and not rule.end_anchor


@pytest.mark.parametrize(
    "line",
    [
        "/(?<=ad)s/",  # lookbehind
        "/(ad)\\1/",  # backreference
        "/(?=ads)/",  # lookahead
        "/ads[/",  # unbalanced
        "/((a{1000}){1000}){1000}/",  # larger than RE2's memory budget
    ],
)
def test_regular_expressions_re2_refuses_are_skipped(line: str) -> None:
    assert "regular expression RE2 cannot use" in skipped(line)


def test_a_regex_cannot_be_hostname_anchored() -> None:
    assert "hostname-anchored" in skipped("||/ads/")


# --- options ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "types"),
    [
        ("", NETWORK_TYPES),
        ("$script", SCRIPT),
        ("$script,image", SCRIPT | IMAGE),
        ("$xhr", XHR),
        ("$xmlhttprequest", XHR),
        ("$css", TYPE_BITS["stylesheet"]),
        ("$stylesheet", TYPE_BITS["stylesheet"]),
        ("$frame", TYPE_BITS["subdocument"]),
        ("$subdocument", TYPE_BITS["subdocument"]),
        ("$beacon", TYPE_BITS["ping"]),
        ("$ping", TYPE_BITS["ping"]),
        ("$object-subrequest", TYPE_BITS["object"]),
        ("$object", TYPE_BITS["object"]),
        ("$media", TYPE_BITS["media"]),
        ("$font", TYPE_BITS["font"]),
        ("$websocket", TYPE_BITS["websocket"]),
        ("$other", TYPE_BITS["other"]),
        ("$document", DOCUMENT),
        ("$doc", DOCUMENT),
        ("$script,document", SCRIPT | DOCUMENT),
        ("$~script", NETWORK_TYPES & ~SCRIPT),
        ("$~script,~image", NETWORK_TYPES & ~SCRIPT & ~IMAGE),
        ("$~~script", NETWORK_TYPES & ~SCRIPT),
        # adblock-rust: a negated type widens a positive one to every network type but the negated
        ("$script,~image", NETWORK_TYPES & ~IMAGE),
    ],
)
def test_type_options(options: str, types: int) -> None:
    assert one("/ads/x" + options).types == types


@pytest.mark.parametrize(
    ("line", "types"),
    [
        ("||ads.example^", ALL_TYPES),  # a bare host rule blocks the page itself too
        ("||ads.example^$third-party,domain=a.com", ALL_TYPES),
        ("||ads.example^$important", ALL_TYPES),
        ("@@||ads.example^", ALL_TYPES),
        ("||ads.example^$script", SCRIPT),
        ("||ads.example^$~script", NETWORK_TYPES & ~SCRIPT),
        ("||ads.example^|", NETWORK_TYPES),
        ("||ads.example^*", NETWORK_TYPES),
        ("||ads.example", NETWORK_TYPES),
        ("||ads.example/", NETWORK_TYPES),
        ("||ads.example/x^", NETWORK_TYPES),
        ("ads.example^", NETWORK_TYPES),
    ],
)
def test_only_a_bare_host_rule_implies_document(line: str, types: int) -> None:
    assert one(line).types == types


@pytest.mark.parametrize(
    ("options", "party"),
    [
        ("", ANY_PARTY),
        ("$third-party", THIRD_PARTY),
        ("$3p", THIRD_PARTY),
        ("$~first-party", THIRD_PARTY),
        ("$~1p", THIRD_PARTY),
        ("$~third-party", FIRST_PARTY),
        ("$~3p", FIRST_PARTY),
        ("$first-party", FIRST_PARTY),
        ("$1p", FIRST_PARTY),
        ("$third-party=ignored", THIRD_PARTY),  # adblock-rust ignores the value
        ("$first-party,third-party", 0),  # applies to neither (only when the page is unknown)
    ],
)
def test_party_options(options: str, party: int) -> None:
    assert one("/ads/x" + options).party == party


@pytest.mark.parametrize(
    ("options", "domains", "not_domains"),
    [
        ("$domain=a.com", {"a.com"}, set()),
        ("$domain=a.com|~b.a.com", {"a.com"}, {"b.a.com"}),
        ("$domain=~a.com|~b.com", set(), {"a.com", "b.com"}),
        ("$domain=A.Com|b.com.|", {"a.com", "b.com"}, set()),
        ("$domain=bücher.de", {"xn--bcher-kva.de"}, set()),
        ("$domain=google.*", {"google.*"}, set()),  # entities never match, as in adblock-rust
        ("$script,domain=a.com|a.com", {"a.com"}, set()),
        ("$domain=a.com|~x.a.com,domain=b.com", {"b.com"}, {"x.a.com"}),  # adblock-rust: the last wins
    ],
)
def test_domain_option(options: str, domains: set[str], not_domains: set[str]) -> None:
    rule = one("/ads/x" + options)
    assert (rule.domains, rule.not_domains) == (domains, not_domains)


def test_flags_and_exceptions() -> None:
    rule = one("@@||ads.example^$important,match-case")
    assert rule.exception and rule.important and rule.match_case and not rule.badfilter
    assert one("/Ads/X$match-case").pattern == "/Ads/X"  # case kept only for match-case
    assert one("/Ads/X").pattern == "/ads/x"
    assert one("/ads/x$badfilter").badfilter
    assert one("/ads/x$redirect=noopjs").types == NETWORK_TYPES  # a redirect blocks


def test_badfilter_identity_ignores_option_order_text_and_line() -> None:
    rules, _ = parse("/ads/x$script,domain=b.com|a.com\n/ads/x$domain=a.com|b.com,badfilter,script")
    assert rules[0].identity() == rules[1].identity()
    assert rules[0].identity() != one("/ads/x$script").identity()


# --- what is skipped, and why -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("example.com##.ad-banner", "element hiding rule (##)"),
        ("##.ad-banner", "element hiding rule (##)"),
        ("###ad", "element hiding rule (##)"),
        ("example.com#@#.ad-banner", "element hiding exception (#@#)"),
        ("example.com#?#.ad:has(a)", "extended CSS rule (#?#)"),
        ("example.com#@?#.ad:has(a)", "extended CSS exception (#@?#)"),
        ("example.com#$#body { color: red }", "CSS injection rule (#$#)"),
        ("example.com#@$#body { color: red }", "CSS injection exception (#@$#)"),
        ("example.com#%#window.ads = 1", "JavaScript rule (#%#)"),
        ("example.com#@%#window.ads = 1", "JavaScript exception (#@%#)"),
        ("example.com##+js(abort-on-property-read, ads)", "element hiding rule (##)"),
        ("example.com$$script[data-ad]", "HTML filtering rule ($$)"),
        ("example.com$@$script[data-ad]", "HTML filtering rule ($$)"),
    ],
)
def test_cosmetic_rules_are_skipped(line: str, reason: str) -> None:
    assert skipped(line).startswith(reason)


def test_a_leading_pipe_makes_even_a_hash_a_network_rule() -> None:
    assert one("|https://x.com/page##frag").pattern == "https://x.com/page##frag"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("/ads/x$popup", "unsupported option $popup"),
        ("/ads/x$popunder", "unsupported option $popunder"),
        ("/ads/x$rewrite=abp-resource:blank-js", "unsupported option $rewrite"),
        ("/ads/x$replace=/a/b/", "unsupported option $replace"),
        ("/ads/x$method=post", "unsupported option $method"),
        ("/ads/x$header=via:1.1", "unsupported option $header"),
        ("/ads/x$elemhide", "unsupported option $elemhide"),
        ("/ads/x$specifichide", "unsupported option $specifichide"),
        ("/ads/x$empty", "unsupported option $empty"),
        ("/ads/x$mp4", "unsupported option $mp4"),
        ("/ads/x$all", "unsupported option $all"),
        ("/ads/x$denyallow=a.com", "unsupported option $denyallow"),
        ("/ads/x$to=a.com", "unsupported option $to"),
        ("/ads/x$Script", "unsupported option $Script"),  # options are case-sensitive
        ("/ads/x$script,", "unsupported option $"),
        ("/ads/x$ script", "unsupported option $ script"),
        ("/ads/x$", "unsupported option $"),
        ("/ads/x$csp=script-src 'none'", "$csp: sets a Content-Security-Policy header"),
        ("/ads/x$removeparam=utm_source", "$removeparam: removes query parameters"),
        ("/ads/x$redirect-rule=noopjs", "$redirect-rule: redirects only what another rule blocks"),
        ("@@||example.com^$generichide", "$generichide: cosmetic exception"),
        ("@@||example.com^$ghide", "$ghide: cosmetic exception"),
        ("/ads/x$tag=annoyances", "$tag: tagged rules are off"),
        ("/ads/x$redirect=", "$redirect without a resource"),
        ("/ads/x$~document", "negated $~document"),
        ("/ads/x$~important", "negated $~important"),
        ("/ads/x$~badfilter", "negated $~badfilter"),
        ("/ads/x$domain=", "empty $domain= list"),
        ("/ads/x$domain=|~", "empty $domain= list"),
    ],
)
def test_options_we_cannot_honour_skip_the_rule(line: str, reason: str) -> None:
    assert skipped(line).startswith(reason)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("0.0.0.0 ads.example.com", "white space inside the pattern"),
        ("/ads x/", "white space inside the pattern"),
        ("*", "a single character is not a rule"),
        ("|", "a single character is not a rule"),
        ("/" + "a" * MAX_LINE, f"longer than {MAX_LINE} characters"),
    ],
)
def test_weird_lines_are_skipped(line: str, reason: str) -> None:
    assert skipped(line).startswith(reason)


def test_bad_internationalised_names_are_skipped() -> None:
    assert "not a valid internationalised name" in skipped("||\u00e9" + "a" * 70 + ".example^")
    assert "not a valid internationalised name" in skipped("/ads/x$domain=\u00e9" + "a" * 70 + ".com")


@pytest.mark.parametrize(
    "line",
    [
        "! Title: EasyList",
        "!#if env_firefox",
        "[Adblock Plus 2.0]",
        "[uBlock Origin]",
        "# hosts-style comment",
        "#",
        "",
        "   ",
    ],
)
def test_comments_and_blank_lines_are_neither_rules_nor_skipped(line: str) -> None:
    rules, report = parse(line)
    assert rules == [] and report.entries == 0 and report.skipped == 0


def test_skipped_lines_are_counted_with_file_and_line() -> None:
    text = "\n".join(
        [
            "[Adblock Plus 2.0]",
            "! comment",
            "||ads.example^",
            "example.com##.ad",
            "/ads/x$popup",
            "",
            "@@||ads.example/ok.js$script",
            "/(?<=a)b/",
        ]
    )
    rules, report = parse(text)
    assert [r.line for r in rules] == [3, 7]
    assert (report.entries, report.skipped) == (2, 3)
    assert [str(s).split(":")[:2] for s in report.first_skipped] == [
        ["easylist.txt", "4"],
        ["easylist.txt", "5"],
        ["easylist.txt", "8"],
    ]


def test_hagezi_dns_lists_parse_as_host_rules() -> None:
    rules, report = parse("[Adblock Plus]\n! Title: HaGeZi\n||tracker.example^\n||ads.example.net^")
    assert [(r.pattern, r.anchor, r.types) for r in rules] == [
        ("tracker.example^", "||", ALL_TYPES),
        ("ads.example.net^", "||", ALL_TYPES),
    ]
    assert report.skipped == 0


def test_huge_and_hostile_input_is_handled_line_by_line() -> None:
    lines = ["/ads/" + "x" * 5000, "$" * 3000, "@@" * 2000, "||" + "a." * 2000 + "com^"]
    lines += ["/" + "(" * 500 + "/", "/" + "a{99}" * 100 + "/", "|" * 3000, "#" + "@" * 2000]
    report = ReportBuilder("x")
    rules = parse_adblock(lines, "x.txt", report)
    assert report.entries + report.skipped == len(lines)
    assert len(rules) == report.entries
