"""The compiled adblock network-rule matcher: a token index over `filters.adblock.NetworkRule`s.

Every rule is filed in one bucket found by a dictionary lookup, so a request tries only the few rules
that could match it, never all of them (there is no linear scan):

- `||host^`, `||host/path`... rules under their host name, looked up by the request host and each
  parent domain of it (as uBlock Origin's hostname dictionary does). Big host buckets are split by
  the characters that follow the host;
- other rules under their rarest *token*: a run of `[a-z0-9]` that every URL the rule matches contains
  as a whole token (as adblock-rust, uBlock Origin and Ghostery do), chosen by how many rules share
  it and how common it is in URLs, looked up by the URL's own tokens (its first `_MAX_TOKENS`, as
  adblock-rust). Big token buckets are split by the characters around the token;
- rules without a usable token but with a `$domain=` list under each domain, looked up by the
  requesting page's host and its parent domains;
- the handful left over (a few per list) in an "always" bucket per request type.

Blocking, exception and important rules share the keys, so one set intersection of the URL's tokens
finds the buckets of all three. Each rule carries a precomputed test: a needle (a substring every
matching URL contains) first, then a substring, prefix or suffix test, a check of what follows the
host, a wildcard matcher without backtracking, or (only for `/regex/` rules) RE2.

Verdicts follow Brave's adblock-rust, the peer ours are compared with, where it is not clearly wrong:
important blocking rules beat exceptions; exceptions beat other blocking rules; a top-level page is
only blocked by rules that say `$document` (or a bare `||host^`), but any matching exception allows it;
when the requesting page is unknown, `$third-party`/`$first-party` and `$domain=` do not restrict,
except that a rule adblock-rust files only under its domains (exactly one `$domain=`, or no token and no
`~domain`) does not apply.

Which rule answers names the list, hence the category staff see ("tracking" for EasyPrivacy, "ads" for
EasyList), so it is chosen by a fixed order, never by the order a set of tokens happens to iterate in
(which changes with the hash seed): among the matching rules of the kind that decides (important, then
exception, then blocking), the rules naming the request's host answer first, the most specific host
first (`||analytics.example^` before `||example^`, and both before `/analytics.`); among rules naming the
same host, and among the rest, the one first in the configuration: lowest source id, then line (then
text, should an included file repeat a line number).

Serialised form (little-endian): a header; a marshalled directory (the token, domain and type keys,
about 3,000 for EasyList and EasyPrivacy); an open-addressing hash table of the host names (100,000)
read in place; the bucket offsets; the marshalled buckets. Loading decodes only the directory; a host
name is looked up, and a bucket decoded, the first time a request needs it (then cached), so loading
takes a millisecond and rules no request touches cost no memory. The buffer (usually part of a
memory-mapped artefact) is used in place, never copied.
"""

from __future__ import annotations

import marshal
import re
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zlib import crc32

from filters.adblock import ANY_PARTY, DOCUMENT, TYPE_BITS, NetworkRule, compile_regex
from filters.errors import IndexFormatError

REQUEST_TYPES: frozenset[str] = frozenset(TYPE_BITS)

# Browser / content-policy type names -> our request types, as adblock-rust (0.5) maps them.
_CPT: dict[str, str] = {
    **{name: name for name in TYPE_BITS},
    "beacon": "ping",
    "main_frame": "document",
    "sub_frame": "subdocument",
    "imageset": "image",
    "object_subrequest": "object",
    "xhr": "xmlhttprequest",
}


def request_type_from_cpt(cpt: str) -> str:
    """Map a browser content-policy type ("xhr", "sub_frame", "beacon", ...) to a `REQUEST_TYPES` name.

    Unknown names ("fetch", "texttrack", "csp_report", "manifest", ...) become "other", as in adblock-rust.
    """
    return _CPT.get(cpt, "other")


@dataclass(frozen=True)
class NetworkMatch:
    """The adblock verdict on one request: the rule that decided it and where it came from."""

    blocked: bool  # False when an exception (@@) rule won over a blocking rule
    rule: str  # the deciding rule's original text
    source_id: int
    line: int
    important: bool


# --- compiled rule records -------------------------------------------------------------------------
# A record is a list of plain values that marshal. The hot loop indexes it with literal numbers (a
# global name would cost a dictionary lookup per use), so these names are for the colder code:
#   0 types  1 flags  2 party  3 domains  4 not_domains  5 kind  6 needle  7 a  8 b
#   9 compiled matcher (filled on first use)  10 text  11 source id  12 line  13 NetworkMatch (cached)
# `needle` is a lower-case string every matching URL contains (or None): the cheap first test.
_KIND, _NEEDLE, _A, _B, _COMPILED, _TEXT, _SID, _LINE, _MATCH = range(5, 14)
_F_IMPORTANT = 1
_F_CASE = 2  # $match-case: test the URL as given, not lower-cased
_F_OPTIONS = 4  # $third-party/$first-party or $domain= to check
_F_NEEDS_SOURCE = 8  # adblock-rust files it only under its $domain=s: without a source it never applies

# Pattern kinds. Those below _K_SLOW are tested inline in the hot loop, the others by `_slow`.
_K_ALL = 0  # empty pattern, or `||host^` found by its host: nothing more to test
_K_PLAIN = 1  # the needle is the pattern: a substring
_K_AT_HOST_END = 2  # `||host/a` found by its host: a follows the host
_K_PREFIX = 3  # |a
_K_SUFFIX = 4  # a|
_K_SLOW = 5
_K_EXACT = 5  # |a|
_K_AT_HOST_END_EXACT = 6  # `||host/a|` found by its host: a is the rest of the URL
_K_HOST_LABEL = 7  # ||a: a starts a label of the host (b = "." + a)
_K_SEGMENTS = 8  # * and ^ wildcards: a = pattern, b = (anchor, end_anchor)
_K_HOST_SEGMENTS = 9  # `||host^...` found by its host: a = the rest, b = end_anchor
_K_REGEX = 10  # /regex/: a = expression

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")
# Token characters. `%` is not one (adblock-rust's is): `%2Fevent.gif` then yields the token "2fevent".
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
# URL bytes -> token bytes: letters lower-cased, anything that cannot be in a token becomes a space.
_TOKEN_TABLE = bytes(c if chr(c) in _TOKEN_CHARS else c + 32 if 65 <= c <= 90 else 32 for c in range(256))
_ASCII_LOWER = {c: c + 32 for c in range(65, 91)}

# Tokens most URLs have (as uBlock Origin's "bad tokens"): a rule filed under one would be tried on
# most requests, so any other token of the rule is preferred.
_COMMON_URL_TOKENS = frozenset(
    " ".join(
        (
            "http https www www2 com net org io co uk de fr ru jp cn br in it es nl pl au ca info biz",
            "tv me us eu js css html htm php asp aspx jsp json xml txt png jpg jpeg gif svg webp ico",
            "woff woff2 ttf eot otf mp4 webm mp3 m3u8 ts map min static cdn assets asset img imgs",
            "images image media content contents files file uploads upload wp includes themes theme",
            "plugins plugin lib libs vendor vendors dist build bundle bundles main app apps api v1 v2",
            "v3 v4 public resources res src scripts script styles style fonts font icons icon id url",
            "uri ref type key token lang locale hl en gb page pages index home default search view",
            "embed widget widgets player video videos photo photos thumb thumbs small large medium utm",
            "source campaign term width height size format quality auto cb callback rnd rand random",
            "cache timestamp time date true false null undefined mobile amp google googleapis gstatic",
            "googleusercontent facebook fbcdn amazon amazonaws cloudfront akamaihd akamaized twitter",
            "twimg youtube ytimg yahoo yimg microsoft apple jquery bootstrap cloudflare jsdelivr",
            "wordpress shopify",
        )
    ).split()
)
_COMMON_COST = 2_000  # a token this costly is worse than a rule's $domain= list
_NARROW_MIN = 6  # a bucket this big is split by the characters around its token (or after its host)
# Only a URL's first tokens are looked up, as adblock-rust looks up only its first 127: a long URL
# (tracking beacons carry kilobytes of query) then costs no more than a short one.
_MAX_TOKENS = 64


class _Segments:
    """Matches a pattern with `*` (anything) and `^` (separator or end) wildcards without backtracking.

    The pattern is cut at each `*` into fixed-length parts; finding each part leftmost after the
    previous one is then exact, and linear in the URL length per part.
    """

    __slots__ = ("anchor", "end", "literals", "parts")

    def __init__(self, pattern: str, anchor: str, end: bool) -> None:
        self.anchor = anchor
        self.end = end
        # Every literal piece must occur somewhere: a cheap test that rejects nearly every URL.
        self.literals = sorted({p for p in pattern.replace("^", "*").split("*") if p}, key=len, reverse=True)
        self.parts: list[str | tuple[re.Pattern[str], re.Pattern[str]]] = []
        for part in pattern.split("*"):
            if "^" not in part:
                self.parts.append(part)
                continue
            body = "(?:[^0-9A-Za-z_.%-]|\\Z)".join(re.escape(piece) for piece in part.split("^"))
            self.parts.append((re.compile(body), re.compile(f"(?:{body})\\Z")))

    @staticmethod
    def _find(part: str | tuple[re.Pattern[str], re.Pattern[str]], s: str, pos: int) -> int:
        """End of the leftmost occurrence of `part` at or after `pos`, or -1."""
        if isinstance(part, str):
            at = s.find(part, pos)
            return at + len(part) if at >= 0 else -1
        m = part[0].search(s, pos)
        return m.end() if m else -1

    @staticmethod
    def _at(part: str | tuple[re.Pattern[str], re.Pattern[str]], s: str, pos: int, end: bool) -> int:
        """End of `part` matched exactly at `pos` (and reaching the end of `s` if `end`), or -1."""
        if isinstance(part, str):
            if end:
                return len(s) if len(s) - pos == len(part) and s.startswith(part, pos) else -1
            return pos + len(part) if s.startswith(part, pos) else -1
        m = part[1 if end else 0].match(s, pos)
        return m.end() if m else -1

    @staticmethod
    def _ends(part: str | tuple[re.Pattern[str], re.Pattern[str]], s: str, pos: int) -> bool:
        """Whether `part` occurs at or after `pos` and ends at the end of `s`."""
        if isinstance(part, str):
            return len(s) - len(part) >= pos and s.endswith(part)
        return part[1].search(s, pos) is not None

    def match(self, s: str, starts: Iterable[int]) -> bool:
        """Does the pattern match `s`? `starts` are the host label starts, used by `||` patterns."""
        for literal in self.literals:
            if literal not in s:
                return False
        parts = self.parts
        if not self.anchor:
            if len(parts) == 1:
                return self._ends(parts[0], s, 0) if self.end else self._find(parts[0], s, 0) >= 0
            pos = self._find(parts[0], s, 0)
            return pos >= 0 and self._rest(s, pos)
        for start in (0,) if self.anchor == "|" else starts:
            pos = self._at(parts[0], s, start, self.end and len(parts) == 1)
            if pos >= 0 and (len(parts) == 1 or self._rest(s, pos)):
                return True
        return False

    def _rest(self, s: str, pos: int) -> bool:
        parts = self.parts
        for part in parts[1:-1]:
            pos = self._find(part, s, pos)
            if pos < 0:
                return False
        return self._ends(parts[-1], s, pos) if self.end else self._find(parts[-1], s, pos) >= 0


def _host_split(rule: NetworkRule) -> tuple[str, str] | None:
    """For a `||host<separator>...` rule, (host, rest): the host must then be the request host or a
    parent domain of it, because the character after it cannot occur in a host name."""
    if rule.anchor != "||" or rule.regex:
        return None
    p = rule.pattern
    if p.startswith("[") and "]" in p:  # an IPv6 address, bracketed as in URLs
        close = p.index("]")
        host, rest = p[1:close].lower(), p[close + 1 :]
        return (host, rest) if host and rest and rest[0] != "*" else None
    cut = 0
    while cut < len(p) and p[cut].lower() in _HOST_CHARS:
        cut += 1
    host, rest = p[:cut].lower(), p[cut:]
    if not host or host[0] == "." or host[-1] == "." or not rest or rest[0] == "*":
        return None
    return host, rest


def _plan(rule: NetworkRule, host_rest: str | None) -> tuple[int, Any, Any]:
    """Choose the cheapest exact way to test the rule's pattern: (kind, a, b)."""
    p = rule.pattern
    case = rule.match_case
    if rule.regex:
        return _K_REGEX, p, None
    if host_rest is not None:
        if host_rest == "^" and not rule.end_anchor:
            return _K_ALL, None, None
        if "*" in host_rest or "^" in host_rest or case:
            return _K_HOST_SEGMENTS, host_rest, rule.end_anchor
        return (_K_AT_HOST_END_EXACT if rule.end_anchor else _K_AT_HOST_END), host_rest, None
    if not p:
        return _K_ALL, None, None
    if rule.anchor == "||":
        if not rule.end_anchor and not case and all(c in _HOST_CHARS for c in p):
            return _K_HOST_LABEL, p, "." + p
        return _K_SEGMENTS, p, ("||", rule.end_anchor)
    if "*" in p or "^" in p or case:
        return _K_SEGMENTS, p, (rule.anchor, rule.end_anchor)
    if rule.anchor == "|":
        return (_K_EXACT if rule.end_anchor else _K_PREFIX), p, None
    return (_K_SUFFIX if rule.end_anchor else _K_PLAIN), p, None


def _needle(kind: int, rule: NetworkRule, a: Any) -> str | None:
    """A lower-case string every URL the rule matches contains, as long as one can tell."""
    if kind == _K_ALL:
        return None
    if kind == _K_REGEX:
        return _regex_needle(rule.pattern) if rule.pattern.isascii() else None
    text = a if isinstance(a, str) else rule.pattern
    return max(text.lower().replace("^", "*").split("*"), key=len) or None


def _needs_source(rule: NetworkRule) -> bool:
    """Whether adblock-rust files the rule only under its `$domain=`s, so that it never applies to a
    request from an unknown page: it names exactly one domain (which is then always its rarest
    token), or it has no `~domain` and no token of adblock-rust's own kind."""
    if not rule.domains:
        return False
    if len(rule.domains) == 1 and not rule.not_domains:
        return True
    return not rule.not_domains and not _has_adblock_rust_tokens(rule)


def _has_adblock_rust_tokens(rule: NetworkRule) -> bool:
    """adblock-rust's tokens: alphanumeric runs of two or more, not next to `*`, in the `||` host
    part, and in the rest but for a run that ends an unanchored pattern; none for a /regex/."""
    if rule.regex:
        return False
    p = rule.pattern.lower()
    if rule.anchor == "||":
        wild = "*" in p or "^" in p
        cut = min((i for i, c in enumerate(p) if c in ("/^*" if wild else "/")), default=len(p))
        if re.search(r"[a-z0-9%]{2}", p[:cut]) and p[cut : cut + 1] != "*":
            return True
        p = p[cut:]
    skip_first, skip_last = rule.end_anchor, not rule.end_anchor
    for m in re.finditer(r"[a-z0-9%]{2,}", p):
        start, end = m.span()
        if (start > 0 and p[start - 1] == "*") or (end < len(p) and p[end] == "*"):
            continue
        if (start == 0 and skip_first) or (end == len(p) and skip_last):
            continue
        return True
    return False


def _record(source_id: int, rule: NetworkRule, host_rest: str | None) -> list[Any]:
    kind, a, b = _plan(rule, host_rest)
    needle = _needle(kind, rule, a)
    if needle == a:
        needle = a  # one object: marshal then stores the string once
    flags = (_F_IMPORTANT if rule.important else 0) | (_F_CASE if rule.match_case else 0)
    if rule.party != ANY_PARTY or rule.domains or rule.not_domains:
        flags |= _F_OPTIONS
    if _needs_source(rule):
        flags |= _F_NEEDS_SOURCE
    return [
        rule.types,
        flags,
        rule.party,
        rule.domains or None,
        rule.not_domains or None,
        kind,
        needle,
        None if kind == _K_PLAIN else a,  # the needle is the whole test
        b,
        None,
        rule.text,
        source_id,
        rule.line,
        None,
    ]


# --- tokens ------------------------------------------------------------------------------------------


def _pattern_tokens(pattern: str, left_bound: bool, right_bound: bool) -> dict[str, tuple[str, str]]:
    """Tokens every URL the pattern matches contains whole: runs of token characters with a literal
    non-token character (or `^`, or an anchored end) on both sides, never next to a `*`.

    Each maps to its context at its first such place: the literal characters just before (up to
    two, when the one after is known too) and after it ("" where only a `^` or an anchor bounds
    it), which the URL must show around the token too.
    """
    tokens: dict[str, tuple[str, str]] = {}
    p = pattern.lower()
    n = len(p)
    bounded = left_bound
    i = 0
    while i < n:
        if p[i] in _TOKEN_CHARS:
            j = i
            while j < n and p[j] in _TOKEN_CHARS:
                j += 1
            if bounded and (right_bound if j == n else p[j] != "*"):
                left = p[i - 1] if i > 0 and p[i - 1] != "^" else ""
                right = p[j] if j < n and p[j] != "^" else ""
                if left and right and i > 1 and p[i - 2] not in "*^":
                    left = p[i - 2] + left
                tokens.setdefault(p[i:j], (left, right))
            i = j
            continue
        bounded = p[i] != "*"
        i += 1
    return tokens


_REGEX_CLASS_ESCAPES = frozenset("dDwWsSbBAzpPQECKx0123456789ntrfvae")


def _class_end(s: str, j: int) -> int:
    """The index of the `]` closing a character class whose body starts at `j` (len(s) if none);
    a `]` first in the class, or after `^`, is a literal."""
    n = len(s)
    if j < n and s[j] == "^":
        j += 1
    if j < n and s[j] == "]":
        j += 1
    while j < n and s[j] != "]":
        j += 2 if s[j] == "\\" else 1
    return j


def _regex_atoms(expression: str) -> list[str | None]:
    """The top-level sequence of a regular expression: a literal character (lower case), "" for a
    start or end anchor, None for anything else (groups, classes, `.`, escapes like `\\d`, atoms
    under a quantifier). Empty when it cannot say (a top-level `|`, `\\Q...\\E`, unbalanced groups).
    """
    atoms: list[str | None] = []
    s = expression
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            if i + 1 >= n:
                return []
            e = s[i + 1]
            if e in ("Q", "E"):
                return []
            atoms.append(None if e.isalnum() or e in _REGEX_CLASS_ESCAPES else e)
            i += 2
        elif c == "[":
            atoms.append(None)
            i = _class_end(s, i + 1) + 1
        elif c == "(":
            depth, j = 1, i + 1
            while j < n and depth:
                if s[j] == "\\":
                    j += 1
                elif s[j] == "[":
                    j = _class_end(s, j + 1)
                elif s[j] == "(":
                    depth += 1
                elif s[j] == ")":
                    depth -= 1
                j += 1
            if depth:
                return []
            atoms.append(None)
            i = j
        elif c == "|":
            return []
        elif c in "*+?":
            if atoms:
                atoms[-1] = None
            i += 1
            if i < n and s[i] in "?+":  # lazy or possessive suffix
                i += 1
        elif c == "{":
            m = re.match(r"\{\d*(?:,\d*)?\}\??", s[i:])
            if m and m.group() not in ("{}", "{,}"):
                if atoms:
                    atoms[-1] = None
                i += m.end()
            else:
                atoms.append(c)
                i += 1
        elif c == "^":
            atoms.append("" if i == 0 else None)
            i += 1
        elif c == "$":
            atoms.append("" if i == n - 1 else None)
            i += 1
        elif c == ".":
            atoms.append(None)
            i += 1
        else:
            atoms.append(c.lower())
            i += 1
    return atoms


def _regex_tokens(expression: str) -> list[str]:
    """Tokens a regular expression's every match contains whole: runs of token characters among its
    top-level literals with a literal non-token character or an anchor on both sides."""
    atoms = _regex_atoms(expression)
    tokens = []
    bounded = False
    run: list[str] = []
    for atom in [*atoms, None]:
        if atom and atom in _TOKEN_CHARS:
            run.append(atom)
            continue
        known = atom is not None  # a literal non-token character or an anchor
        if run and bounded and known:
            tokens.append("".join(run))
        run = []
        bounded = known
    return tokens


def _regex_needle(expression: str) -> str | None:
    """The longest run of top-level literals: every match contains it (in lower case)."""
    best, run = "", ""
    for atom in [*_regex_atoms(expression), None]:
        if atom:
            run += atom
        else:
            best, run = max(best, run, key=len), ""
    return best or None


def _rule_tokens(rule: NetworkRule) -> dict[str, tuple[str, str]]:
    if rule.regex:
        return {token: ("", "") for token in _regex_tokens(rule.pattern)}
    return _pattern_tokens(rule.pattern, rule.anchor != "", rule.end_anchor)


def _token_cost(token: str, counts: Counter[str]) -> int:
    cost = counts[token]
    if len(token) == 1:  # single letters and digits: in most tracking URLs' parameters
        cost += 20_000
    elif token in _COMMON_URL_TOKENS:
        cost += 10_000
    elif len(token) == 2 or token.isdigit():
        cost += 100
    return cost


# --- tables ------------------------------------------------------------------------------------------


class _TableBuilder:
    """Files each rule in one place: under its host, its rarest token, its `$domain=`s, or the
    always-tried bucket of each request type it applies to."""

    def __init__(self, rules: list[tuple[int, NetworkRule]]) -> None:
        self.by_host: dict[str, list[list[Any]]] = {}
        self.by_token: dict[str, list[tuple[list[Any], tuple[str, str]]]] = {}
        self.by_domain: list[tuple[frozenset[str], list[Any]]] = []
        self.no_source: list[list[Any]] = []  # filed by domain, but apply to requests from unknown pages
        self.always: list[list[Any]] = []
        pending: list[tuple[int, NetworkRule, dict[str, tuple[str, str]]]] = []
        for sid, rule in rules:
            split = _host_split(rule)
            if split is not None:
                self.by_host.setdefault(split[0], []).append(_record(sid, rule, split[1]))
            else:
                pending.append((sid, rule, _rule_tokens(rule)))
        counts: Counter[str] = Counter(t for _, _, tokens in pending for t in tokens)
        for sid, rule, tokens in pending:
            record = _record(sid, rule, None)
            best = min(sorted(tokens), key=lambda t: (_token_cost(t, counts), -len(t))) if tokens else None
            if rule.domains and (best is None or _token_cost(best, counts) >= _COMMON_COST):
                self.by_domain.append((rule.domains, record))
                if not record[1] & _F_NEEDS_SOURCE:
                    self.no_source.append(record)
            elif best is not None:
                self.by_token.setdefault(best, []).append((record, tokens[best]))
            else:
                self.always.append(record)

    def emit(self, buckets: list[bytes], important_only: bool = False) -> dict[bytes, int | tuple[int, ...]]:
        """Append this table's buckets (marshalled) to `buckets`; return its key -> bucket map.

        With `important_only`, only the $important records, each under the same key as in the full
        table: a request's important rules are then found among the keys its full lookup hit.
        """

        def add(bucket: Any) -> int:
            buckets.append(marshal.dumps(bucket))
            return len(buckets) - 1

        def kept(records: Iterable[list[Any]]) -> list[list[Any]]:
            return [r for r in records if r[1] & _F_IMPORTANT] if important_only else list(records)

        keys: dict[bytes, int | tuple[int, ...]] = {}
        for host, records in self.by_host.items():
            if chosen := kept(records):
                keys[_host_key(host)] = add(_narrow_by_path(chosen))
        for token, entries in self.by_token.items():
            if important_only:
                entries = [(r, context) for r, context in entries if r[1] & _F_IMPORTANT]
            if entries:
                keys[token.encode()] = add(_narrow_by_context(entries))
        per_domain: dict[bytes, list[int]] = {}
        for domains, record in self.by_domain:
            if kept([record]):
                number = add((record,))  # one copy, however many domains it names
                for domain in sorted(domains):
                    per_domain.setdefault(_domain_key(domain), []).append(number)
        for key, numbers in per_domain.items():
            keys[key] = numbers[0] if len(numbers) == 1 else tuple(numbers)
        if chosen := kept(self.no_source):
            keys[_NO_SOURCE_KEY] = add(tuple(chosen))
        for bit, key in _TYPE_KEYS.items():
            if chosen := kept(r for r in self.always if r[0] & bit):
                keys[key] = add(tuple(chosen))
        return keys


def _narrow_by_path(records: list[list[Any]]) -> tuple[list[Any], ...] | dict[str, tuple[list[Any], ...]]:
    """A big host bucket becomes a map from the four URL characters after the host to its records
    ("" for the records that do not fix them)."""
    if len(records) < _NARROW_MIN:
        return tuple(records)
    narrowed: dict[str, list[list[Any]]] = {}
    for r in records:
        rest = r[_A] if r[_KIND] in (_K_AT_HOST_END, _K_AT_HOST_END_EXACT, _K_HOST_SEGMENTS) else ""
        head = rest[:4].lower()
        key = head if len(head) == 4 and "*" not in head and "^" not in head else ""
        narrowed.setdefault(key, []).append(r)
    return {key: tuple(rs) for key, rs in narrowed.items()}


def _narrow_by_context(
    entries: list[tuple[list[Any], tuple[str, str]]],
) -> tuple[list[Any], ...] | dict[str, tuple[list[Any], ...]]:
    """A big token bucket becomes a map from the characters around the token ("KLR" with two on
    the left, "LR", "L*", "*R") to its records ("" for the records that fix neither side)."""
    if len(entries) < _NARROW_MIN:
        return tuple(r for r, _ in entries)
    narrowed: dict[str, list[list[Any]]] = {}
    for r, (left, right) in entries:
        key = (left or "*") + (right or "*") if left or right else ""
        narrowed.setdefault(key, []).append(r)
    result: dict[str, Any] = {key: tuple(rs) for key, rs in narrowed.items()}
    # Flags: which kinds of keys to look up besides the two-character ones.
    if any("*" in key for key in result):
        result["*"] = True
    if any(len(key) == 3 for key in result):
        result["3"] = True
    return result


# Keys of a table's map. Tokens are plain; the other kinds start with a byte no token has.
def _host_key(host: str) -> bytes:
    return b"." + host.encode()


def _domain_key(domain: str) -> bytes:
    return b"@" + domain.encode()


_ANY_TYPE = -1  # exceptions allow a page whatever types they name
_TYPE_KEYS = {bit: b"#%d" % bit for bit in (*TYPE_BITS.values(), _ANY_TYPE)}
_NO_SOURCE_KEY = b"#?"
# request type -> (its bit, its always-bucket key)
_TYPE_INFO = {name: (bit, _TYPE_KEYS[bit]) for name, bit in TYPE_BITS.items()}
_WEBSOCKET_INFO = _TYPE_INFO["websocket"]

# For a host: the keys the index has for it as request host (host keys) and as source (domain keys),
# then the host itself and its parent domains.
_HostKeys = tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[str, ...]]

_MAGIC = b"ABNIDX\r\n"
_VERSION = 1
# magic, version, then the lengths of: the directory, the host table, the bucket offsets, the buckets;
# and the directory's crc32.
_HEADER = struct.Struct("<8sIIIIII")
_SLOT = struct.Struct("<II")  # host table slot: crc32 of the host (0: empty), entry number + 1
_ENTRY = struct.Struct("<IIIII")  # host table entry: name offset, name length, three bucket numbers
_OFFSET = struct.Struct("<II")  # a bucket's start and end in the payload
_NONE = 0xFFFFFFFF  # no bucket
_HOST_CACHE_SIZE = 4096  # hosts whose keys are remembered; then the cache starts afresh
_BUCKET_CACHE_SIZE = 50_000  # decoded buckets kept per table; then the cache starts afresh


def _host_table(entries: dict[bytes, tuple[int, int, int]]) -> bytes:
    """An open-addressing hash table (crc32, linear probing) of host names -> three bucket numbers,
    read in place from the buffer: the index's 100,000 host names cost no memory until looked up."""
    size = 1 << max(3, (2 * len(entries)).bit_length())
    slots = [(0, 0)] * size
    names = bytearray()
    table = bytearray()
    for number, (name, buckets) in enumerate(entries.items()):
        h = crc32(name) | 1
        at = h & (size - 1)
        while slots[at][0]:
            at = (at + 1) & (size - 1)
        slots[at] = (h, number + 1)
        table += _ENTRY.pack(len(names), len(name), *buckets)
        names += name
    head = struct.pack("<II", size, len(entries))
    return head + b"".join(_SLOT.pack(*slot) for slot in slots) + bytes(table) + bytes(names)


class NetworkIndex:
    """Adblock network rules compiled for matching. Immutable apart from caches; safe to share
    between threads (a cache filled twice by a race holds the same values)."""

    def __init__(self, raw: memoryview, directory: tuple[Any, ...], sections: tuple[memoryview, ...]) -> None:
        keys, exception_keys, important_keys, size = directory
        self._raw = raw
        self._host_table, self._offsets, self._payload = sections
        self._slots = struct.unpack_from("<I", self._host_table)[0]
        # token, domain and type keys -> bucket number(s): an int for a blocking bucket alone, else
        # (blocking, exceptions, important), each None, a bucket number or a tuple of them.
        self._keys: dict[bytes, Any] = keys
        self._key_view = keys.keys()
        self._exception_keys = frozenset(exception_keys)
        self._important_keys = frozenset(important_keys)
        # Decoded buckets, per table (blocking, exceptions, important): key -> records, () if none.
        self._buckets: tuple[dict[bytes, Any], ...] = ({}, {}, {})
        self._hosts: dict[str, _HostKeys] = {}
        self._host_buckets: dict[bytes, tuple[int, int, int]] = {}  # host keys learnt -> bucket numbers
        # type bit -> the key of its always-tried buckets, if any
        self._type_keys = {bit: (key,) for bit, key in _TYPE_KEYS.items() if key in keys}
        self._no_source = _NO_SOURCE_KEY in keys
        self.size: int = size  # rules compiled in (after $badfilter and duplicates)

    # -- building and serialising --

    @classmethod
    def build(cls, rules: Iterable[tuple[int, NetworkRule]]) -> NetworkIndex:
        """Compile rules, each with the id of the source it came from (see `build_bytes`)."""
        return cls.from_bytes(cls.build_bytes(rules))

    @staticmethod
    def build_bytes(rules: Iterable[tuple[int, NetworkRule]]) -> bytes:
        """Compile rules, each with the id of the source it came from, into the serialised index.

        `$badfilter` rules cancel the rules they repeat (from any source) and are then dropped;
        a rule listed twice is kept once (the first: lowest source id, then line). What is only needed
        for a step is let go after it: a compile on a 1 GB Pi holds this beside the domain tables.
        """
        # Every bucket then holds its rules in the order that decides between them (see `_scan`).
        listed = sorted(rules, key=lambda item: (item[0], item[1].line))
        cancelled = {rule.identity() for _, rule in listed if rule.badfilter}
        seen: set[NetworkRule] = set()
        block: list[tuple[int, NetworkRule]] = []
        exceptions: list[tuple[int, NetworkRule]] = []
        for sid, rule in listed:
            if rule.badfilter:
                continue
            identity = rule.identity()
            if identity in cancelled or identity in seen:
                continue
            seen.add(identity)
            (exceptions if rule.exception else block).append((sid, rule))
        del listed, cancelled, seen
        size = len(block) + len(exceptions)
        buckets: list[bytes] = []
        blocking = _TableBuilder(block)
        del block
        tables = (
            blocking.emit(buckets),
            _TableBuilder(exceptions).emit(buckets),
            blocking.emit(buckets, important_only=True),
        )
        del blocking, exceptions
        keys: dict[bytes, Any] = {}
        hosts: dict[bytes, tuple[int, int, int]] = {}
        for key in {**tables[0], **tables[1]}:
            parts = (tables[0].get(key), tables[1].get(key), tables[2].get(key))
            if key[:1] == b".":
                hosts[key[1:]] = tuple(_NONE if n is None else n for n in parts)  # type: ignore[assignment]
            else:
                keys[key] = parts[0] if isinstance(parts[0], int) and parts[1:] == (None, None) else parts
        directory = (keys, tuple(tables[1]), tuple(tables[2]), size)
        del tables
        head = marshal.dumps(directory)
        del directory, keys
        starts = [0]
        for bucket in buckets:
            starts.append(starts[-1] + len(bucket))
        offsets = struct.pack(f"<{len(starts)}I", *starts)
        del starts
        host_table = _host_table(hosts)
        del hosts
        header = _HEADER.pack(
            _MAGIC, _VERSION, len(head), len(host_table), len(offsets), sum(map(len, buckets)), crc32(head)
        )
        return b"".join((header, head, host_table, offsets, *buckets))

    def to_bytes(self) -> bytes:
        """The index as bytes for `from_bytes` (exactly the buffer it was built or loaded from)."""
        return bytes(self._raw)

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview) -> NetworkIndex:
        """Open an index made by `to_bytes`, keeping a view of `buf` (which must stay unchanged).

        Decodes only the directory of tokens; host names and buckets are read from the buffer when
        first needed. Raises IndexFormatError if the buffer is not such an index, is of another
        format version, or is damaged (damage beyond the directory is found when a request first
        needs it: then `match` raises IndexFormatError).
        """
        view = memoryview(buf).cast("B")
        if view.nbytes < _HEADER.size:
            raise IndexFormatError("network index truncated: no header")
        magic, version, *lengths, head_crc = _HEADER.unpack_from(view)
        if magic != _MAGIC:
            raise IndexFormatError("not an adblock network index (bad magic)")
        if version != _VERSION:
            raise IndexFormatError(f"network index format {version} is not {_VERSION}: compile again")
        expected = _HEADER.size + sum(lengths)
        if view.nbytes != expected:
            raise IndexFormatError(f"network index truncated: {view.nbytes} bytes, expected {expected}")
        sections = []
        at = _HEADER.size
        for length in lengths:
            sections.append(view[at : at + length])
            at += length
        head = sections.pop(0)
        if crc32(head) != head_crc:
            raise IndexFormatError("network index damaged: directory checksum mismatch")
        try:
            directory = marshal.loads(head)
            if len(directory) != 4 or not isinstance(directory[0], dict):
                raise TypeError("no key map")
        except (ValueError, EOFError, TypeError) as e:
            raise IndexFormatError(f"network index damaged: directory unreadable ({e})") from e
        if sections[0].nbytes < 8 or sections[1].nbytes < 4:
            raise IndexFormatError("network index damaged: no host table or bucket offsets")
        return cls(view, directory, tuple(sections))

    def _load(self, number: int) -> Any:
        try:
            start, end = _OFFSET.unpack_from(self._offsets, 4 * number)
            bucket = marshal.loads(self._payload[start:end])
        except (struct.error, ValueError, EOFError, TypeError) as e:
            raise IndexFormatError(f"network index damaged: bucket {number} unreadable ({e})") from e
        if not isinstance(bucket, tuple | dict):
            raise IndexFormatError(f"network index damaged: bucket {number} is not a bucket")
        return bucket

    def _host_lookup(self, name: bytes) -> tuple[int, int, int] | None:
        """The bucket numbers filed under a host name, from the in-buffer hash table."""
        table = self._host_table
        size = self._slots
        h = crc32(name) | 1
        at = h & (size - 1)
        try:
            while True:
                stored, entry = _SLOT.unpack_from(table, 8 + 8 * at)
                if not stored:
                    return None
                if stored == h:
                    entries = 8 + 8 * size
                    offset, length, *numbers = _ENTRY.unpack_from(table, entries + _ENTRY.size * (entry - 1))
                    names = entries + _ENTRY.size * struct.unpack_from("<I", table, 4)[0]
                    if table[names + offset : names + offset + length] == name:
                        return numbers[0], numbers[1], numbers[2]
                at = (at + 1) & (size - 1)
        except struct.error as e:
            raise IndexFormatError(f"network index damaged: host table unreadable ({e})") from e

    def _fetch(self, table: int, key: bytes) -> Any:
        """Decode (once) the bucket(s) filed under `key` in a table: () if there are none."""
        cache = self._buckets[table]
        if len(cache) >= _BUCKET_CACHE_SIZE:
            cache.clear()
        if key[:1] == b".":
            found = self._host_buckets.get(key) or self._host_lookup(key[1:]) or (_NONE, _NONE, _NONE)
            numbers = None if found[table] == _NONE else found[table]
        else:
            numbers = self._keys[key]
            if numbers.__class__ is tuple:
                numbers = numbers[table]
            elif table:
                numbers = None
        if numbers is None:
            bucket: Any = ()
        elif isinstance(numbers, int):
            bucket = self._load(numbers)
        else:  # a domain key: each rule naming it has a bucket of its own
            bucket = tuple(r for number in numbers for r in self._load(number))
        cache[key] = bucket
        return bucket

    # -- matching --

    def match(self, url: str, host: str, source_host: str | None, request_type: str) -> NetworkMatch | None:
        """The adblock verdict on a request, or None when no blocking rule matches it.

        `url` is the full request URL and `host` its host, both in canonical form as
        `filters.urls.canonical_url` gives them (rules were compiled so; an internationalised host
        that form could not put in punycode is tried here once more), `source_host` the host of the
        page or frame that made the request (None if unknown, in punycode), and `request_type` one
        of REQUEST_TYPES (other names go through `request_type_from_cpt`). Only http(s) and ws(s)
        URLs are matched; a ws(s) URL is always of type "websocket".
        """
        if url.isascii():
            lurl = url.lower()
        else:
            url, host = _punycode_host(url, host)
            lurl = url.translate(_ASCII_LOWER)
        if lurl.startswith(("https:", "http:")):
            info = _TYPE_INFO.get(request_type) or _TYPE_INFO[request_type_from_cpt(request_type)]
        elif lurl.startswith(("wss:", "ws:")):
            info = _WEBSOCKET_INFO
        else:
            return None
        # The request's lookups: its URL tokens (one set intersection), and those of its host, its
        # source's domains and its type that the tables have (worked out once per host).
        tokens = lurl.encode().translate(_TOKEN_TABLE).split(None, _MAX_TOKENS)
        known = self._hosts.get(host) or self._learn(host)
        source = self._hosts.get(source_host) or self._learn(source_host) if source_host else None
        parents = source[2] if source is not None else None
        tbit = info[0]
        hosts = known[0]
        hits = self._key_view & tokens
        if source is not None:
            if source[1]:
                hits.update(source[1])
        elif self._no_source:
            hits.add(_NO_SOURCE_KEY)
        always = self._type_keys.get(tbit)
        if always is not None:
            hits.update(always)
        if not hits and not hosts:
            return None
        hit = self._first(0, hosts, hits, tbit, lurl, url, host, parents)
        if hit is None:
            return None
        if not hit[1] & _F_IMPORTANT:
            keys = self._important_keys
            better = self._first(2, hosts, keys.intersection(hits), tbit, lurl, url, host, parents, keys)
            if better is None:
                if tbit == DOCUMENT:
                    tbit = _ANY_TYPE  # any exception allows a page, whatever types it names
                    hits.update(self._type_keys.get(_ANY_TYPE, ()))
                keys = self._exception_keys
                better = self._first(1, hosts, keys.intersection(hits), tbit, lurl, url, host, parents, keys)
            if better is not None:
                hit = better
        found: NetworkMatch | None = hit[_MATCH]
        if found is None:
            blocked = not hit[_TEXT].startswith("@@")
            decisive = blocked and bool(hit[1] & _F_IMPORTANT)
            found = hit[_MATCH] = NetworkMatch(blocked, hit[_TEXT], hit[_SID], hit[_LINE], decisive)
        return found

    def _learn(self, host: str) -> _HostKeys:
        """The keys under which the index files rules for a host, as request host and as source
        (cached: a page's requests repeat their hosts)."""
        labels = host.split(".")
        parents = tuple(".".join(labels[i:]) for i in range(len(labels)))
        if len(self._hosts) >= _HOST_CACHE_SIZE:
            self._hosts.clear()
            self._host_buckets.clear()
        host_keys = []
        for parent in parents:
            numbers = self._host_lookup(parent.encode())
            if numbers is not None:
                key = _host_key(parent)
                self._host_buckets[key] = numbers
                host_keys.append(key)
        keys = self._keys
        known = (tuple(host_keys), tuple(k for k in (_domain_key(p) for p in parents) if k in keys), parents)
        self._hosts[host] = known
        return known

    def _first(
        self,
        table: int,
        hosts: tuple[bytes, ...],
        hits: Iterable[bytes],
        tbit: int,
        lurl: str,
        url: str,
        host: str,
        parents: tuple[str, ...] | None,
        filed: frozenset[bytes] | None = None,
    ) -> list[Any] | None:
        """The record of a table that decides the request (see the module's docstring): from the
        buckets of the most specific of `hosts` (the request host's keys, most specific first; only
        those in `filed`, if given) that has a match, else from the buckets of `hits`."""
        for key in hosts:
            if filed is None or key in filed:
                found = self._scan(table, (key,), tbit, lurl, url, host, parents)
                if found is not None:
                    return found
        return self._scan(table, hits, tbit, lurl, url, host, parents) if hits else None

    def _scan(
        self,
        table: int,
        hits: Iterable[bytes],
        tbit: int,
        lurl: str,
        url: str,
        host: str,
        parents: tuple[str, ...] | None,
    ) -> list[Any] | None:
        """The record in the buckets of `hits` that matches the request and comes first in the
        configuration (lowest source id, line, text), or None: the same whatever order `hits` iterates in.

        `parents` is the source host and its parent domains, None when the source is unknown.
        """
        buckets = self._buckets[table]
        third: bool | None = None
        best: list[Any] | None = None
        for key in hits:
            bucket = buckets.get(key)
            if bucket is None:
                bucket = self._fetch(table, key)
            # A bucket holds its records in that order (`build` sorts them), so its first match is its
            # best; a narrowed bucket's pieces, put together, are not in order.
            in_order = True
            if bucket.__class__ is dict:
                bucket = _narrowed(bucket, key, lurl, host)
                in_order = False
            for r in bucket:
                if not r[0] & tbit:
                    continue
                kind = r[5]
                if kind == 1:  # _K_PLAIN
                    if r[6] not in lurl:
                        continue
                elif kind >= 5:  # _K_SLOW and up: the needle now, the pattern after the options
                    if r[6] is not None and r[6] not in lurl:
                        continue
                elif kind == 2:  # _K_AT_HOST_END
                    at = lurl.find(host, 5)
                    if at < 0 or not lurl.startswith(r[7], at + len(host)):
                        continue
                elif kind == 3:  # _K_PREFIX
                    if not lurl.startswith(r[7]):
                        continue
                elif kind == 4 and not lurl.endswith(r[7]):  # _K_SUFFIX
                    continue
                flags = r[1]
                if flags & 4:  # _F_OPTIONS
                    if parents is None:
                        if flags & 8:  # _F_NEEDS_SOURCE
                            continue
                    else:
                        party = r[2]
                        if party != 3:  # not ANY_PARTY
                            if third is None:
                                third = registrable_domain(host) != registrable_domain(parents[0])
                            if not party & (2 if third else 1):  # THIRD_PARTY, FIRST_PARTY
                                continue
                        if r[3] is not None and r[3].isdisjoint(parents):
                            continue
                        if r[4] is not None and not r[4].isdisjoint(parents):
                            continue
                if kind >= 5 and not _slow(kind, r, lurl, url, host):
                    continue
                if best is None or (r[11], r[12], r[10]) < (best[11], best[12], best[10]):
                    best = r
                if in_order:
                    break
        return best


def _slow(kind: int, r: list[Any], lurl: str, url: str, host: str) -> bool:
    """Test a record's pattern of one of the costlier kinds (compiling its matcher on first use)."""
    s = url if r[1] & _F_CASE else lurl
    if kind == _K_EXACT:
        return bool(s == r[_A])
    if kind == _K_AT_HOST_END_EXACT:
        at = lurl.find(host, 5)
        return at >= 0 and len(s) - at - len(host) == len(r[_A]) and s.endswith(r[_A])
    if kind == _K_HOST_LABEL:
        return host.startswith(r[_A]) or r[_B] in host
    matcher = r[_COMPILED]
    if kind == _K_REGEX:
        if matcher is None:
            matcher = r[_COMPILED] = compile_regex(r[_A], bool(r[1] & _F_CASE))
        return matcher.search(s.encode()) is not None
    if kind == _K_HOST_SEGMENTS:
        if matcher is None:
            matcher = r[_COMPILED] = _Segments(r[_A], "|", r[_B])
        # The bucket's host ends the request host; the rest of the pattern must follow it.
        at = lurl.find(host, 5)
        return at >= 0 and bool(matcher.match(s[at + len(host) :], ()))
    if kind == _K_SEGMENTS:
        if matcher is None:
            anchor, end = r[_B]
            matcher = r[_COMPILED] = _Segments(r[_A], anchor, end)
        return bool(matcher.match(s, _label_starts(lurl, host) if matcher.anchor == "||" else ()))
    raise IndexFormatError(f"network index damaged: unknown rule kind {kind}")


def _narrowed(bucket: dict[str, Any], key: bytes, lurl: str, host: str) -> list[list[Any]]:
    """The records of a narrowed bucket that this URL can match."""
    found = list(bucket.get("", ()))
    if key[:1] == b".":  # a host bucket: by the characters after the host
        at = lurl.find(host, 5)
        if at >= 0:
            at += len(host)
            found += bucket.get(lurl[at : at + 4], ())
        return found
    token = key.decode()
    size = len(token)
    at = lurl.find(token)
    while at >= 0:
        end = at + size
        left = lurl[at - 1] if at else " "
        right = lurl[end] if end < len(lurl) else " "
        if left not in _TOKEN_CHARS and right not in _TOKEN_CHARS:
            found += bucket.get(left + right, ())
            if "3" in bucket and at > 1:
                found += bucket.get(lurl[at - 2] + left + right, ())
            if "*" in bucket:
                found += bucket.get(left + "*", ())
                found += bucket.get("*" + right, ())
        at = lurl.find(token, end)
    return found


def _punycode_host(url: str, host: str) -> tuple[str, str]:
    """An internationalised host in punycode (as lists write it), in the URL too."""
    if host.isascii():
        return url, host
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return url, host
    at = url.lower().find(host)
    return (url[:at] + ascii_host + url[at + len(host) :] if at >= 0 else url), ascii_host


def _label_starts(lurl: str, host: str) -> list[int]:
    """Positions in the URL where a label of the host begins."""
    at = lurl.find(host, 5) if host else -1
    return [] if at < 0 else [at] + [at + i + 1 for i, c in enumerate(host) if c == "."]


# --- third party: registrable domains from the public suffix list ----------------------------------

_PSL: Any = None
_REGISTRABLE: dict[str, str] = {}


def registrable_domain(host: str) -> str:
    """The host's registrable domain (eTLD+1, private suffixes included, as adblock-rust does); an IP
    address, a public suffix itself, or an empty host stands for itself.

    The public suffix list is loaded (from the `publicsuffixlist` package) on first use.
    """
    found = _REGISTRABLE.get(host)
    if found is not None:
        return found
    global _PSL
    if not host or host[-1].isdigit() or ":" in host:
        found = host
    else:
        if _PSL is None:
            from publicsuffixlist import PublicSuffixList

            _PSL = PublicSuffixList()
        found = _PSL.privatesuffix(host) or host
    if len(_REGISTRABLE) >= _HOST_CACHE_SIZE:
        _REGISTRABLE.clear()
    _REGISTRABLE[host] = found
    return found
