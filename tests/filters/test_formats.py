"""The host-oriented list formats, as truth tables: each line, what is kept, what is skipped and why."""

from __future__ import annotations

import pytest

from filters.formats import (
    parse_adblock_dns,
    parse_domains,
    parse_expressions,
    parse_hosts,
    parse_ut1_urls,
    parse_ut1_usage,
)
from filters.host_table import ALLOW, IMPORTANT
from filters.report import ReportBuilder


def run(parser, text: str, **kw):  # type: ignore[no-untyped-def]
    report = ReportBuilder("src")
    rules = list(parser(text.splitlines(), "list.txt", report, **kw))
    return rules, report.freeze()


@pytest.mark.parametrize(
    ("line", "hosts"),
    [
        ("0.0.0.0 ads.example.com", ["ads.example.com"]),
        ("127.0.0.1 a.com b.com c.com", ["a.com", "b.com", "c.com"]),
        ("0.0.0.0 Tracker.Example.COM.", ["tracker.example.com"]),
        ("0.0.0.0 bücher.de", ["xn--bcher-kva.de"]),
        (":: ipv6.example.com", ["ipv6.example.com"]),
        ("0.0.0.0 x.com # trailing comment", ["x.com"]),
        ("# 0.0.0.0 commented.com", []),
        ("127.0.0.1 localhost", []),
        ("::1 localhost ip6-localhost ip6-loopback", []),
        ("255.255.255.255 broadcasthost", []),
        ("0.0.0.0 0.0.0.0", []),
        ("", []),
    ],
)
def test_hosts_lines(line: str, hosts: list[str]) -> None:
    rules, report = run(parse_hosts, line)
    assert [r[0] for r in rules] == hosts
    assert report.skipped == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("example.com", "expected an address"),
        ("banana example.com", "is not an address"),
        ('{"error": "rate limited"}', "is not an address"),
        ("fe80::zz example.com", "is not an address"),
        ("0.0.0.0 exa mple..com", "not a host name"),
        ("0.0.0.0 " + "a" * 9000, "longer than"),
        ("0.0.0.0 xn--zz\u00e9\u0300-.com", "not"),
    ],
)
def test_hosts_bad_lines_are_skipped_with_file_and_line(line: str, reason: str) -> None:
    rules, report = run(parse_hosts, "0.0.0.0 good.com\n" + line)
    assert [r[0] for r in rules][:1] == ["good.com"]
    assert report.skipped >= 1
    first = report.first_skipped[0]
    assert (first.origin, first.line) == ("list.txt", 2)
    assert reason in first.reason
    assert str(first).startswith("list.txt:2: ")


def test_hosts_keep_line_numbers_for_provenance() -> None:
    rules, _ = run(parse_hosts, "# header\n\n0.0.0.0 a.com\n0.0.0.0 b.com")
    assert rules == [("a.com", 3, 0), ("b.com", 4, 0)]


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("example.com", "example.com"),
        ("*.wild.example.com", "wild.example.com"),
        (".dotted.example.com", "dotted.example.com"),
        ("Example.ORG.", "example.org"),
        ("под.рф", "xn--d1atc.xn--p1ai"),
        ("1.2.3.4", "1.2.3.4"),
        ("under_score.example.com", "under_score.example.com"),
    ],
)
def test_domain_lines(line: str, kept: str) -> None:
    rules, report = run(parse_domains, line)
    assert rules == [(kept, 1, 0)]
    assert report.entries == 1


@pytest.mark.parametrize(
    "line", ["two words.com here.com", "-bad-.com", "a..b", "x" * 300 + ".com", "http://"]
)
def test_domain_bad_lines(line: str) -> None:
    rules, report = run(parse_domains, line)
    assert rules == []
    assert report.skipped == 1


def test_empty_list_is_a_warning_not_silence() -> None:
    _, report = run(parse_domains, "# nothing here\n\n")
    assert report.entries == 0
    assert any("no entries" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("||example.com^", ("example.com", 1, 0)),
        ("||Example.com^$important", ("example.com", 1, IMPORTANT)),
        ("@@||allowed.example.com^", ("allowed.example.com", 1, ALLOW)),
        ("||trailing.example.com", ("trailing.example.com", 1, 0)),
        ("example.net", ("example.net", 1, 0)),
    ],
)
def test_adblock_dns_rules(line: str, rule: tuple[str, int, int]) -> None:
    rules, report = run(parse_adblock_dns, line)
    assert rules == [rule]
    assert report.skipped == 0


@pytest.mark.parametrize(
    "line",
    [
        "||example.com/path^",
        "||ex*ample.com^",
        "||example.com^$third-party",
        "||example.com^$dnsrewrite=1.2.3.4",
    ],
)
def test_adblock_dns_never_widens_a_narrower_rule_into_a_domain_block(line: str) -> None:
    rules, report = run(parse_adblock_dns, line)
    assert rules == []
    assert report.skipped == 1


@pytest.mark.parametrize("line", ["! comment", "# comment", "[Adblock Plus 2.0]", ""])
def test_adblock_dns_comments(line: str) -> None:
    rules, report = run(parse_adblock_dns, line)
    assert rules == [] and report.skipped == 0


def test_ut1_urls_are_host_and_path_prefixes() -> None:
    rules, report = run(
        parse_ut1_urls, "example.com/bad/area\nhttp://Other.com:8080/x\nbare.org\n", flags=ALLOW
    )
    assert rules == [
        ("example.com", "/bad/area", 1, ALLOW),
        ("other.com", "/x", 2, ALLOW),
        ("bare.org", "/", 3, ALLOW),
    ]
    assert report.entries == 3


def test_expressions_hostile_regex_refused_by_re2_is_skipped() -> None:
    rules, report = run(parse_expressions, r"(bad|evil)words" + "\n" + r"(a+)+\1" + "\n" + r"(?=x)y")
    assert [r[0] for r in rules] == [r"(bad|evil)words"]
    assert report.skipped == 2
    assert [s.line for s in report.first_skipped] == [2, 3]
    assert "RE2" in report.first_skipped[0].reason


@pytest.mark.parametrize(
    ("text", "white"),
    [
        ("black\nadult\n", False),
        ("white\nchild", True),
        ("# c\nwhite\nblack", True),
        ("adult\n", None),
        ("", None),
    ],
)
def test_ut1_usage(text: str, white: bool | None) -> None:
    assert parse_ut1_usage(text.splitlines(), "usage") is white
