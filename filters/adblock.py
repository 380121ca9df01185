"""Adblock network-filter syntax (EasyList, EasyPrivacy, uBlock Origin and HaGeZi adblock-format lists).

`parse_adblock` turns list lines into `NetworkRule` values. Only rules that decide whether a request is
blocked or allowed are kept: cosmetic rules, scriptlets, and rules whose options we cannot honour are
skipped and counted with a reason, never misread as network rules.

Where list syntax is ambiguous we follow Brave's adblock-rust (the peer our verdicts are compared with):
options are case-sensitive and split at the last `$`, an unknown option drops the whole rule, `/.../` is a
regular expression even when it could be a path, one leading and one trailing `*` are trimmed, and a bare
`||host^` rule (no type options) also blocks top-level documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

import idna
import re2

from filters.names import ipv4_literal, ipv6_literal
from filters.report import ReportBuilder
from filters.text import MAX_LINE
from filters.urls import canonical_escape, encode_non_ascii

# Request types, one bit each. "document" is the top-level page; a rule applies to it only if it says so.
TYPE_BITS: dict[str, int] = {
    "document": 1 << 0,
    "subdocument": 1 << 1,
    "script": 1 << 2,
    "image": 1 << 3,
    "stylesheet": 1 << 4,
    "xmlhttprequest": 1 << 5,
    "media": 1 << 6,
    "font": 1 << 7,
    "websocket": 1 << 8,
    "ping": 1 << 9,
    "object": 1 << 10,
    "other": 1 << 11,
}
DOCUMENT = TYPE_BITS["document"]
ALL_TYPES = sum(TYPE_BITS.values())
NETWORK_TYPES = ALL_TYPES & ~DOCUMENT  # what a rule without type options applies to

FIRST_PARTY = 1
THIRD_PARTY = 2
ANY_PARTY = FIRST_PARTY | THIRD_PARTY

# Option spellings (as adblock-rust accepts them) -> request type.
_TYPE_OPTIONS: dict[str, str] = {
    "script": "script",
    "image": "image",
    "stylesheet": "stylesheet",
    "css": "stylesheet",
    "xmlhttprequest": "xmlhttprequest",
    "xhr": "xmlhttprequest",
    "subdocument": "subdocument",
    "frame": "subdocument",
    "media": "media",
    "font": "font",
    "websocket": "websocket",
    "ping": "ping",
    "beacon": "ping",
    "object": "object",
    "object-subrequest": "object",
    "other": "other",
}

# Options adblock-rust understands but that never decide block/allow of a request on their own.
_NOT_BLOCKING: dict[str, str] = {
    "csp": "sets a Content-Security-Policy header, does not block",
    "removeparam": "removes query parameters, does not block",
    "redirect-rule": "redirects only what another rule blocks",
    "generichide": "cosmetic exception, does not affect requests",
    "ghide": "cosmetic exception, does not affect requests",
    "tag": "tagged rules are off unless their tag is enabled",
}

# Markers after the first `#` that make a line cosmetic (element hiding, scriptlets, CSS, AdGuard JS).
_COSMETIC_MARKERS: tuple[tuple[str, str], ...] = (
    ("#", "element hiding rule (##)"),
    ("@#", "element hiding exception (#@#)"),
    ("?#", "extended CSS rule (#?#)"),
    ("@?#", "extended CSS exception (#@?#)"),
    ("$#", "CSS injection rule (#$#)"),
    ("@$#", "CSS injection exception (#@$#)"),
    ("$?#", "extended CSS injection rule (#$?#)"),
    ("@$?#", "extended CSS injection exception (#@$?#)"),
    ("%#", "JavaScript rule (#%#)"),
    ("@%#", "JavaScript exception (#@%#)"),
)

_REGEX_MAX_MEM = 1 << 20  # an RE2 program larger than this is refused: no list needs one
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\Z")
_ADDRESS_START = frozenset("0123456789[")  # how an IP literal begins, in any spelling
_HEX = frozenset("0123456789abcdefABCDEF")
_WILDCARDS = frozenset("*^|")
# One shared empty set: `frozenset(set())` makes a new 216-byte object each time, and most of
# EasyList's 100,000 rules name no domain (45 MB of empty sets in a compile).
_NO_DOMAINS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class NetworkRule:
    """One adblock network rule, parsed.

    `pattern` is the text between the anchors and the options, lower case unless `match_case`; for a
    `regex` rule it is the RE2 expression between the slashes. `anchor` is "" (anywhere), "|" (start
    of the URL) or "||" (start of a host label); `end_anchor` means the pattern must reach the end of
    the URL. `types` is a set of `TYPE_BITS`; `party` of FIRST_PARTY/THIRD_PARTY. `domains` and
    `not_domains` come from `$domain=`: the requesting page's host (or a parent domain of it) must be in
    the first and must not be in the second.
    """

    text: str
    line: int
    pattern: str
    exception: bool = False
    anchor: str = ""
    end_anchor: bool = False
    regex: bool = False
    types: int = NETWORK_TYPES
    party: int = ANY_PARTY
    domains: frozenset[str] = frozenset()
    not_domains: frozenset[str] = frozenset()
    important: bool = False
    match_case: bool = False
    badfilter: bool = False

    def identity(self) -> NetworkRule:
        """The rule without its text, line and badfilter flag: what `$badfilter` compares."""
        return replace(self, text="", line=0, badfilter=False)


class _Skip(Exception):
    """A line is not a usable network rule; the message is the report's reason."""


def parse_adblock(lines: Iterable[str], origin: str, report: ReportBuilder) -> list[NetworkRule]:
    """Parse adblock-syntax lines into network rules.

    Every line that is neither blank nor a comment either becomes a rule (`report.entries` counts it)
    or is skipped with `report.skip(origin, line, reason)`. Never raises for bad content.
    """
    rules: list[NetworkRule] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or _is_comment(line):
            continue
        try:
            rule = _parse_line(line, lineno)
        except _Skip as e:
            report.skip(origin, lineno, str(e))
            continue
        rules.append(rule)
        report.entries += 1
    return rules


def _is_comment(line: str) -> bool:
    if line[0] == "!":
        return True
    if line[0] == "[" and line[-1] == "]":  # [Adblock Plus 2.0], [uBlock Origin] headers
        return True
    # Hosts-file style comments; `#foo` without a space is (oddly) a network rule for adblock-rust.
    return line[0] == "#" and (len(line) == 1 or line[1].isspace())


def _parse_line(line: str, lineno: int) -> NetworkRule:
    if len(line) > MAX_LINE:
        raise _Skip(f"longer than {MAX_LINE} characters")
    if len(line) == 1:
        raise _Skip("a single character is not a rule")
    if not (line[0] == "|" or line.startswith("@@|")):
        if "$$" in line or "$@$" in line:
            raise _Skip("HTML filtering rule ($$): not a network rule")
        sharp = line.find("#")
        if sharp >= 0:
            after = line[sharp + 1 :]
            for marker, what in _COSMETIC_MARKERS:
                if after.startswith(marker):
                    raise _Skip(f"{what}: cosmetic, not a network rule")
    return _parse_network(line, lineno)


def _parse_network(line: str, lineno: int) -> NetworkRule:
    exception = line.startswith("@@")
    body = line[2:] if exception else line
    pattern = body
    options: list[str] = []
    dollar = body.rfind("$")
    if dollar >= 0:
        pattern, raw_options = body[:dollar], body[dollar + 1 :]
        options = raw_options.split(",")
        # A `$` inside a regex (`/ads$/`, `/^a$|b/`) does not start options: option names start with a
        # letter, `~` or a digit. adblock-rust drops such rules; uBlock Origin keeps them, as do we.
        if _looks_like_regex(body) and raw_options[:1] in ("/", "|", ")"):
            pattern, options = body, []

    opts = _Options(exception)
    for option in options:
        opts.add(option)

    anchor = ""
    if pattern.startswith("||"):
        anchor, pattern = "||", pattern[2:]
    elif pattern.startswith("|"):
        anchor, pattern = "|", pattern[1:]
    end_anchor = False
    if pattern.endswith("|"):
        end_anchor, pattern = True, pattern[:-1]

    if any(c.isspace() for c in pattern):
        raise _Skip("white space inside the pattern (a hosts-file line?)")

    # A plain `||host^` also blocks the page itself, as uBlock Origin's strict blocking does
    # (adblock-rust decides this before trimming `*`: `||host^*` does not).
    bare_host = anchor == "||" and not end_anchor and pattern.endswith("^")
    bare_host = bare_host and not any(c in "/^*" for c in pattern[:-1])
    regex = _looks_like_regex(pattern)
    if regex:
        if anchor == "||":
            raise _Skip("a /regex/ cannot be hostname-anchored (||)")
        # adblock-rust ignores `|` anchors around a regex; so do we.
        anchor, end_anchor = "", False
        pattern = pattern[1:-1]
        _check_regex(pattern, opts.match_case)
    else:
        # One trailing and one leading `*` say nothing; a leading one also cancels an anchor.
        if pattern.endswith("*"):
            pattern = pattern[:-1]
        if pattern.startswith("*"):
            pattern, anchor = pattern[1:], ""
        if not pattern:  # `||`, `|*|`, `$script`...: every URL, whatever the anchors
            anchor, end_anchor = "", False
        if anchor == "||":
            pattern = _canonical_host_part(pattern, end_anchor)
            # adblock-rust reads `||host|` and `||host^|` as `||host^` (but for pages): only the host counts.
            if end_anchor and _HOST_NAME.match(pattern.removesuffix("^")):
                pattern, end_anchor = pattern.removesuffix("^") + "^", False
        pattern = _canonical_escapes(pattern)
        if not opts.match_case:
            pattern = pattern.lower()

    types = ALL_TYPES if bare_host and not opts.type_options else opts.types()

    return NetworkRule(
        text=line,
        line=lineno,
        pattern=pattern,
        exception=exception,
        anchor=anchor,
        end_anchor=end_anchor,
        regex=regex,
        types=types,
        party=opts.party,
        domains=frozenset(opts.domains) if opts.domains else _NO_DOMAINS,
        not_domains=frozenset(opts.not_domains) if opts.not_domains else _NO_DOMAINS,
        important=opts.important,
        match_case=opts.match_case,
        badfilter=opts.badfilter,
    )


def _looks_like_regex(pattern: str) -> bool:
    return len(pattern) > 1 and pattern[0] == "/" and pattern[-1] == "/"


def _check_regex(expression: str, match_case: bool) -> None:
    """Skip the rule unless RE2 compiles the expression exactly as the matcher will."""
    try:
        compile_regex(expression, match_case)
    except re2.error as e:
        detail = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise _Skip(f"regular expression RE2 cannot use ({detail})") from e


def compile_regex(expression: str, match_case: bool) -> re2._Regexp:
    """Compile a rule's `/regex/` for matching against a URL encoded as UTF-8 bytes."""
    options = re2.Options()
    options.max_mem = _REGEX_MAX_MEM
    options.case_sensitive = match_case
    options.never_capture = True
    options.log_errors = False
    return re2.compile(expression.encode("utf-8"), options)


def _canonical_host_part(pattern: str, end_anchor: bool) -> str:
    """The host part of a `||` pattern as request hosts are matched (`filters.urls.canonical_host`):
    punycode, as lists write internationalised names in Unicode; an IP address in its one spelling
    when the pattern names the whole host (`||2130706433^` is `||127.0.0.1^`; `||127.1*` is a prefix
    of host names and stays as written)."""
    if pattern.isascii() and pattern[:1] not in _ADDRESS_START:
        return pattern
    if pattern.startswith("["):
        end = pattern.find("]") + 1
    else:
        end = len(pattern)
        for sep in "/^*:?|":
            cut = pattern.find(sep)
            if 0 <= cut < end:
                end = cut
    host, rest = pattern[:end], pattern[end:]
    if not host.isascii():
        try:
            host = idna.encode(host.lower(), uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as e:
            raise _Skip(f"host name {host!r} is not a valid internationalised name") from e
    whole = rest[:1] in ("/", "^", ":", "?") or (not rest and end_anchor)
    if whole and host.startswith("["):
        address = ipv6_literal(host[1:-1])
        host = host if address is None else f"[{address}]" if ":" in address else address
    elif whole and host[:1] in _ADDRESS_START:
        host = ipv4_literal(host.lower()) or host
    return host + rest


def _canonical_escapes(pattern: str) -> str:
    """A pattern's `%` escapes and non-ASCII characters as requests are matched (`filters.urls`):
    an escaped unreserved character decoded, other escapes in upper-case hex, characters outside ASCII
    as UTF-8 escapes. A `%` that plainly starts no escape (a literal that is no hex digit follows it)
    is `%25`, as in a request; one followed by a wildcard or the end is left as it is."""
    if "%" not in pattern and pattern.isascii():
        return pattern
    text = encode_non_ascii(pattern)
    out = []
    i = text.find("%")
    done = 0
    while i >= 0:
        out.append(text[done:i])
        pair = text[i + 1 : i + 3]
        if len(pair) == 2 and _HEX.issuperset(pair):
            out.append(canonical_escape(pair))
            done = i + 3
        else:
            # Stray (`%25` in a request) when a literal that cannot go on an escape follows: a
            # character that is no hex digit, or a hex digit and then one. A wildcard or the end
            # says nothing about what the URL has there.
            first, second = pair[:1], pair[1:2]
            if not first or first in _WILDCARDS:
                stray = False
            elif first not in _HEX:
                stray = True
            else:
                stray = bool(second) and second not in _WILDCARDS
            out.append("%25" if stray else "%")
            done = i + 1
        i = text.find("%", done)
    out.append(text[done:])
    return "".join(out)


class _Options:
    """Accumulates a rule's `$options`; `add` raises _Skip for anything we cannot honour."""

    def __init__(self, exception: bool) -> None:
        self.exception = exception
        self.positive = 0
        self.negative = 0
        self.type_options = False
        self.party = ANY_PARTY
        self.domains: set[str] = set()
        self.not_domains: set[str] = set()
        self.important = False
        self.match_case = False
        self.badfilter = False

    def types(self) -> int:
        # adblock-rust: any negated type widens to all network types first, then removes the negated.
        types = self.positive
        if self.negative or not self.positive:
            types |= NETWORK_TYPES
        return types & ~self.negative

    def add(self, option: str) -> None:
        negated = option.startswith("~")
        name, _, value = option.lstrip("~").partition("=")
        if name in _TYPE_OPTIONS:
            bit = TYPE_BITS[_TYPE_OPTIONS[name]]
            if negated:
                self.negative |= bit
            else:
                self.positive |= bit
            self.type_options = True
        elif name in ("document", "doc"):
            if negated:
                raise _Skip("negated $~document is not supported")
            self.positive |= DOCUMENT
            self.type_options = True
        elif name in ("third-party", "3p", "first-party", "1p"):
            third = name in ("third-party", "3p")
            if negated:
                third = not third
            self.party &= THIRD_PARTY if third else FIRST_PARTY
        elif name == "domain":
            self._add_domains(value)
        elif name in ("important", "match-case", "badfilter"):
            if negated:
                raise _Skip(f"negated $~{name} is not supported")
            setattr(self, name.replace("-", "_"), True)
        elif name == "redirect":
            if negated or not value:
                raise _Skip("$redirect without a resource")
            # A redirect blocks the request (the resource it serves instead is the browser's business).
        elif name in _NOT_BLOCKING:
            raise _Skip(f"${name}: {_NOT_BLOCKING[name]}")
        else:
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise _Skip(f"unsupported option ${shown}")

    def _add_domains(self, value: str) -> None:
        entries = [d.strip().lower() for d in value.split("|")]
        entries = [d for d in entries if d and d != "~"]
        if not entries:
            raise _Skip("empty $domain= list")
        domains = {_ascii_domain(e) for e in entries if not e.startswith("~")}
        not_domains = {_ascii_domain(e[1:]) for e in entries if e.startswith("~")}
        # A second $domain= replaces what the first said, as in adblock-rust.
        if domains:
            self.domains = domains
        if not_domains:
            self.not_domains = not_domains


def _ascii_domain(domain: str) -> str:
    domain = domain.rstrip(".")
    if domain[:1] in _ADDRESS_START:
        return ipv4_literal(domain) or domain
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as e:
        raise _Skip(f"$domain= entry {domain!r} is not a valid internationalised name") from e
