"""Parsers for the host-oriented list formats: hosts files, plain domain lists, adblock DNS syntax
(as HaGeZi ships it) and the three files of a UT1 category folder.

Every parser takes the lines of one file and its origin name (for `file:line` reasons), counts what it
keeps and skips into a ReportBuilder, and yields plain tuples, lazily: UT1 `adult` alone holds 4.6
million entries, and a compile must never hold a list of them (the counts are complete once the
entries have all been taken).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import re2

from filters.host_table import ALLOW, IMPORTANT
from filters.names import BadName, is_address, normalise_host
from filters.report import ReportBuilder
from filters.text import MAX_LINE
from filters.urls import canonical_path

HostRule = tuple[str, int, int]  # (normalised domain, line, flags)
UrlRule = tuple[str, str, int, int]  # (normalised domain, path prefix, line, flags)
ExpressionRule = tuple[str, int, int]  # (regular expression, line, flags)

_SINK_ADDRESSES = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1", "0:0:0:0:0:0:0:0", "::0", "0"})
_BOILERPLATE = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "ip6-allhosts",
        "0.0.0.0",
    }
)


def _strip_comment(raw: str) -> str:
    cut = raw.find("#")
    return (raw[:cut] if cut >= 0 else raw).strip()


def _content(lines: Iterable[str], origin: str, report: ReportBuilder) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line with content: comments stripped, overlong lines skipped."""
    for lineno, raw in enumerate(lines, 1):
        if len(raw) > MAX_LINE:
            report.skip(origin, lineno, f"line longer than {MAX_LINE} characters")
            continue
        text = _strip_comment(raw)
        if text:
            yield lineno, text


def _host(token: str, origin: str, lineno: int, report: ReportBuilder) -> str | None:
    try:
        return normalise_host(token)
    except BadName as e:
        report.skip(origin, lineno, str(e))
        return None


def parse_hosts(lines: Iterable[str], origin: str, report: ReportBuilder) -> Iterator[HostRule]:
    """`0.0.0.0 a b c` / `127.0.0.1 a` lines; comments and localhost boilerplate are ignored."""
    for lineno, text in _content(lines, origin, report):
        fields = text.split()
        if len(fields) < 2:
            report.skip(origin, lineno, "expected an address followed by host names")
            continue
        address = fields[0]
        if address not in _SINK_ADDRESSES and not is_address(address):
            report.skip(origin, lineno, f"{address[:60]!r} is not an address")
            continue
        for token in fields[1:]:
            if token.lower() in _BOILERPLATE:
                continue
            host = _host(token, origin, lineno, report)
            if host is not None:
                report.entries += 1
                yield host, lineno, 0


def parse_domains(
    lines: Iterable[str], origin: str, report: ReportBuilder, *, flags: int = 0
) -> Iterator[HostRule]:
    """One domain a line (UT1 `domains`, plain lists); `#` comments; a leading `*.` or `.` is allowed."""
    for lineno, text in _content(lines, origin, report):
        if " " in text or "\t" in text:
            report.skip(origin, lineno, "more than one word: is this a hosts file?")
            continue
        if text.startswith("*."):
            text = text[2:]
        elif text.startswith("."):
            text = text[1:]
        host = _host(text, origin, lineno, report)
        if host is not None:
            report.entries += 1
            yield host, lineno, flags


def parse_adblock_dns(lines: Iterable[str], origin: str, report: ReportBuilder) -> Iterator[HostRule]:
    """HaGeZi-style DNS rules: `||example.com^`, `@@||example.com^` (allow), `$important`; `!` comments.

    Only whole-domain rules make sense for DNS: anything with a path, a wildcard or another option is
    skipped and counted rather than widened into a domain block.
    """
    for lineno, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text[0] in "!#[":
            continue
        if len(text) > MAX_LINE:
            report.skip(origin, lineno, f"line longer than {MAX_LINE} characters")
            continue
        flags = 0
        if text.startswith("@@"):
            flags |= ALLOW
            text = text[2:]
        if "$" in text:
            text, _, options = text.partition("$")
            for option in options.split(","):
                if option.strip().lower() == "important":
                    flags |= IMPORTANT
                else:
                    report.skip(origin, lineno, f"option ${option} does not apply to DNS")
                    break
            else:
                option = ""
            if option:
                continue
        if text.startswith("||"):
            text = text[2:]
        elif text.startswith("|"):
            text = text[1:]
        text = text.removesuffix("^").removesuffix("|")
        if not text or any(c in text for c in "/*^|$ "):
            report.skip(origin, lineno, "not a whole-domain rule (path, wildcard or separator)")
            continue
        host = _host(text, origin, lineno, report)
        if host is not None:
            report.entries += 1
            yield host, lineno, flags


def parse_ut1_urls(
    lines: Iterable[str], origin: str, report: ReportBuilder, *, flags: int = 0
) -> Iterator[UrlRule]:
    """UT1 `urls`: `host/path` prefixes (squidGuard style: no scheme; `www.` matches any subdomain).

    Host and path are kept in canonical form (`filters.urls`), as requests are matched: an entry
    `dmoz.org/World/Espa%c3%b1ol/` meets the `%C3%B1` browsers send, `2130706433/x` is `127.0.0.1/x`.
    """
    for lineno, text in _content(lines, origin, report):
        if "://" in text:
            text = text.split("://", 1)[1]
        host_part, slash, path = text.partition("/")
        if host_part.startswith("["):  # an IPv6 address, maybe with a port after the bracket
            host_part = host_part[: host_part.find("]") + 1] or host_part
        else:
            host_part = host_part.split(":", 1)[0]
        host = _host(host_part, origin, lineno, report)
        if host is None:
            continue
        prefix = canonical_path("/" + path) if slash else "/"
        report.entries += 1
        yield host, prefix, lineno, flags


def parse_expressions(
    lines: Iterable[str], origin: str, report: ReportBuilder, *, flags: int = 0
) -> Iterator[ExpressionRule]:
    """UT1 `expressions`: one regular expression a line, tried against the whole URL.

    Patterns are compiled by RE2 (linear time); one it refuses (backreferences, lookarounds) is skipped
    and counted, so a hostile list cannot stall matching.
    """
    for lineno, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if len(text) > MAX_LINE:
            report.skip(origin, lineno, f"line longer than {MAX_LINE} characters")
            continue
        try:
            re2.compile(text)
        except re2.error as e:
            report.skip(origin, lineno, f"regular expression refused by RE2: {e}")
            continue
        report.entries += 1
        yield text, lineno, flags


def parse_ut1_usage(lines: Iterable[str], origin: str) -> bool | None:
    """True when a UT1 `usage` file says the category is a whitelist, False for black, None if unsaid.

    The first `black` or `white` word wins: several UT1 categories list both, the first is the intended use.
    """
    for raw in lines:
        word = _strip_comment(raw).lower()
        if word in ("white", "black"):
            return word == "white"
    return None
