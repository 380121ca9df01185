"""The compiled filter index: one artefact from many sources, answering what the lists say about a host,
a URL or a page of text, and why (source, category, line).

Artefact layout: `MAGIC`, a uint32 header length, a JSON header (format version, sources, section
offsets and lengths, a CRC of the body), padding to 8 bytes, then the sections. The caller owns the
buffer (usually a read-only `mmap` of the file): loading decodes the header and slices views, so it is
fast and the big tables stay in the shared page cache instead of being rebuilt in each process.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from zlib import crc32

from filters.errors import IndexFormatError
from filters.host_table import ALLOW, IMPORTANT, HostTable, Reader
from filters.names import BadName, normalise_host
from filters.network_index import NetworkIndex, NetworkMatch
from filters.phrase_index import PhraseIndex, PhraseScore
from filters.regex import LinearRegex
from filters.urls import (
    PathReadings,
    canonical_host,
    canonical_url,
    path_allowed_by,
    path_blocked_by,
    read_path,
    url_host,
)

MAGIC = b"CSFIDX\r\n"
FORMAT_VERSION = 2  # 2: the host table keyed by digests (filters.host_table HTB2)
_LEN = struct.Struct("<I")
SECTIONS = ("hosts", "expressions", "network", "phrases")
HOST_CACHE_SIZE = 4096  # hosts whose answers are remembered; then the memo starts afresh


@dataclass(frozen=True)
class SourceInfo:
    """A source as compiled: where its entries came from and which category they carry."""

    name: str
    category: str
    format: str
    location: str


@dataclass(frozen=True)
class Hit:
    """One list entry that matched, with its provenance.

    `kind` is domain, url, expression or adblock; `listed` is "block" or "allow" (a whitelist entry or
    an adblock exception); `rule` is the matching entry as written (domain, host/path, pattern, rule).
    """

    kind: str
    listed: str
    category: str
    source: str
    line: int
    rule: str
    important: bool = False

    def __str__(self) -> str:
        flag = " (important)" if self.important else ""
        return (
            f"{self.listed} {self.category}: {self.kind} {self.rule!r} from {self.source}:{self.line}{flag}"
        )


RawHit = tuple[str, int, int, int, str]  # (kind, source_id, flags, line, rule): cheap to make on the hot path


@dataclass(frozen=True)
class Match:
    """Everything the lists say about one host or URL. No hits means no list mentions it.

    Hits are kept raw and turned into `Hit` values only when asked: most requests need only the
    categories, and building value objects for each of them would cost more than the look-up itself.
    """

    raw: tuple[RawHit, ...]
    sources: tuple[SourceInfo, ...] = field(default=(), repr=False, compare=False)

    @cached_property
    def hits(self) -> tuple[Hit, ...]:
        out = []
        for kind, sid, flags, line, rule in self.raw:
            info = self.sources[sid]
            listed = "allow" if flags & ALLOW else "block"
            out.append(Hit(kind, listed, info.category, info.name, line, rule, bool(flags & IMPORTANT)))
        return tuple(out)

    @property
    def blocking(self) -> tuple[Hit, ...]:
        return tuple(h for h in self.hits if h.listed == "block")

    @property
    def allowing(self) -> tuple[Hit, ...]:
        return tuple(h for h in self.hits if h.listed == "allow")

    @property
    def categories(self) -> frozenset[str]:
        """Categories of the block-list entries that matched."""
        return frozenset(self.sources[sid].category for _, sid, flags, _, _ in self.raw if not flags & ALLOW)

    def __bool__(self) -> bool:
        return bool(self.raw)


NO_MATCH = Match(())

# A URL-prefix record: source id, flags, line, domain, prefix, the prefix's readings (`read_path`).
_Prefixed = tuple[int, int, int, str, str, PathReadings]
# A host's URL prefixes at a glance: the longest one's length, what the folded readings of a path
# must start with for a block entry to meet it, what its exact reading must start with for an allow
# entry to (`str.startswith` tries a whole tuple in one call).
_Screen = tuple[int, tuple[str, ...], tuple[str, ...]]
# whole-host hits, URL-prefix records, their screen, Match of the whole-host hits alone
_HostAnswer = tuple[tuple[RawHit, ...], tuple[_Prefixed, ...], _Screen, Match]


_ADDRESS_START = frozenset("0123456789[")  # how every IP literal begins (IPv6 bare begins with ":" too)


def _name(host: str) -> str:
    """A host as asked about (a DNS name, a host given alone) in canonical form: cheap when it is."""
    host = host.lower().rstrip(".")
    if host[:1] in _ADDRESS_START or ":" in host or "%" in host or not host.isascii():
        return canonical_host(host)
    return host


def _host_key(host: str) -> bytes:
    """The table key for a host as it arrives (already lower case); empty if it cannot be a host name."""
    if host.isascii():
        return host.encode("ascii")
    try:
        return normalise_host(host).encode("ascii")
    except BadName:
        return b""


PREFIX_BYTES = len(MAGIC) + _LEN.size  # what `header_end` reads


def header_end(prefix: bytes | memoryview) -> int:
    """Where the JSON header of an artefact ends, from its first PREFIX_BYTES bytes. Raises
    IndexFormatError if they are not an artefact's."""
    view = memoryview(prefix)
    if view.nbytes < PREFIX_BYTES or bytes(view[: len(MAGIC)]) != MAGIC:
        raise IndexFormatError("not a compiled filter index (bad magic)")
    return PREFIX_BYTES + int(_LEN.unpack_from(view, len(MAGIC))[0])


def read_header(buf: bytes | memoryview) -> tuple[dict[str, Any], int]:
    """The JSON header of an artefact (format version, sources, sections, `body_length`, `body_crc32`)
    and the offset of its body. `buf` holds the artefact, or at least its first `header_end` bytes.
    Raises IndexFormatError if it is not an artefact of FORMAT_VERSION."""
    view = memoryview(buf)
    end = header_end(view)
    if view.nbytes < end:
        raise IndexFormatError(f"compiled index truncated: {view.nbytes} bytes, its header alone is {end}")
    try:
        header = json.loads(bytes(view[PREFIX_BYTES:end]))
    except ValueError as e:
        raise IndexFormatError("compiled index header is damaged") from e
    if not isinstance(header, dict) or header.get("version") != FORMAT_VERSION:
        found = header.get("version") if isinstance(header, dict) else None
        raise IndexFormatError(f"compiled index format {found} is not {FORMAT_VERSION}: compile again")
    body = end + (-end % 8)
    return header, body


class FilterIndex:
    """A loaded compiled index. Immutable; safe to share between threads."""

    def __init__(self, buf: bytes | memoryview, *, verify: bool = False, read: Reader | None = None) -> None:
        """Open an artefact made by `filters.compile.IndexBuilder`.

        Raises IndexFormatError if it is not one, is of another version, or is truncated. With
        `verify`, the body's CRC is checked too, through `buf` (a file is checked without mapping it by
        `appliance.storage.check_index`, which services run before they map an index).
        `read(offset, length)` reads the artefact's bytes without touching `buf` (the caller's `pread`
        on its file): the host table is read through it (see `filters.host_table`); without it, from
        `buf`.
        """
        view = memoryview(buf)
        header, body = read_header(view)
        if view.nbytes != body + header["body_length"]:
            raise IndexFormatError(
                f"compiled index truncated: {view.nbytes} bytes, expected {body + header['body_length']}"
            )
        if verify and crc32(view[body:]) != header["body_crc32"]:
            raise IndexFormatError("compiled index damaged: body checksum mismatch")

        def section(name: str) -> memoryview:
            off, length = header["sections"][name]
            return view[body + off : body + off + length]

        self.header: Mapping[str, Any] = header
        self.sources = tuple(SourceInfo(**s) for s in header["sources"])
        hosts_offset, hosts_length = header["sections"]["hosts"]
        if read is None:
            self._hosts = HostTable(section("hosts"))
        else:
            self._hosts = HostTable(read, base=body + hosts_offset, size=hosts_length)
        self._network = NetworkIndex.from_bytes(section("network"))
        self._phrases = PhraseIndex.from_bytes(section("phrases"))
        expressions = json.loads(bytes(section("expressions")))
        self._expressions = tuple(
            (LinearRegex(pattern, ignore_case=True), sid, line, flags)
            for pattern, sid, line, flags in expressions
        )
        # One combined pass first: nearly every URL matches no expression, so pay for one search, not n.
        self._any_expression = (
            LinearRegex("|".join(f"(?:{p})" for p, _, _, _ in expressions), ignore_case=True)
            if expressions
            else None
        )
        # The page a request comes from repeats request after request: keep its host (one tuple, so
        # threads always see a matching pair).
        self._last_page: tuple[str, str] = ("", "")
        self._host_cache: dict[str, _HostAnswer] = {}
        # The Match of a host's whole-host hits plus one adblock rule, by (host, id of the rule's
        # NetworkMatch): the same answer object request after request, so callers may memoise by it.
        self._with_rule: dict[tuple[str, int], tuple[NetworkMatch, Match]] = {}

    def match_host(self, host: str) -> Match:
        """What the domain lists say about `host` or any parent domain of it (no URL rules).

        Case, a trailing dot and the spelling of an IP address do not matter (DNS queries come in mixed
        case; `2130706433` is `127.0.0.1`, see `filters.urls.canonical_host`).
        """
        return self._host_answer(_name(host))[3]

    def url_rules(self, host: str) -> Match:
        """The URL-prefix entries (UT1 `urls`) filed under `host` or a parent of it, whatever the path:
        what a host-only question (DNS, TLS) cannot see but a web request for some page of it would."""
        prefixed = self._host_answer(_name(host))[1]
        if not prefixed:
            return NO_MATCH
        return Match(
            tuple(
                ("url", sid, flags, line, domain + prefix) for sid, flags, line, domain, prefix, _ in prefixed
            ),
            self.sources,
        )

    def match_url(self, url: str, *, source_url: str | None = None, request_type: str = "other") -> Match:
        """What every list says about a request for `url` made from the page `source_url`.

        Domain entries, UT1 URL prefixes and expressions, and adblock network rules all answer.
        `request_type` is an adblock resource type (see `filters.network_index.REQUEST_TYPES`).
        The URL is matched in canonical form (`filters.urls.canonical_url`), as every entry was
        compiled: `/%61ds/`, `/x/../ads/` and `http://2130706433/` meet the entries for `/ads/` and
        `127.0.0.1`. A URL prefix also meets the path as servers read it (`filters.urls.read_path`):
        a block entry for `/ads/` meets `//ads/`, `/ADS/` and `/x%2F..%2Fads/`; an allow entry for
        `/bitesize` does not cover `/bitesize/..%2Fnews`.
        """
        url, host, path = canonical_url(url)
        whole, prefixed, screen, host_match = self._host_answer(host)
        extra: list[RawHit] = []
        if prefixed:
            longest, blocking, allowing = screen
            read = read_path(path, longest)
            # Nearly always no entry of the host meets the path: find that out in one or two calls,
            # then test each entry only if one may.
            if (
                read[2].startswith(blocking)
                or (read[3] is not read[2] and read[3].startswith(blocking))
                or read[0].startswith(allowing)
            ):
                for sid, flags, line, domain, prefix, entry in prefixed:
                    if path_allowed_by(read, entry) if flags & ALLOW else path_blocked_by(read, entry):
                        extra.append(("url", sid, flags, line, domain + prefix))
        if self._any_expression is not None:
            target = (host + path).encode("utf-8", "surrogateescape")
            if self._any_expression.search(target):
                extra += self._expression_hits(target)
        source_host = None
        # about:blank, data: and other non-network pages have no host: party and $domain= rules then
        # apply as adblock-rust applies them to an unknown page.
        if source_url and "://" in source_url:
            last_url, last_host = self._last_page
            if source_url == last_url:
                source_host = last_host
            else:
                source_host = url_host(source_url)
                self._last_page = (source_url, source_host)
        net = self._network.match(url, host, source_host, request_type)
        if net is None:
            return Match(whole + tuple(extra), self.sources) if extra else host_match  # usually no allocation
        if not extra:
            known = self._with_rule.get((host, id(net)))
            if known is not None and known[0] is net:  # `is`: an id may be reused once its object is gone
                return known[1]
        flags = (0 if net.blocked else ALLOW) | (IMPORTANT if net.important else 0)
        extra.append(("adblock", net.source_id, flags, net.line, net.rule))
        match = Match(whole + tuple(extra), self.sources)
        if len(extra) == 1:
            if len(self._with_rule) >= HOST_CACHE_SIZE:
                self._with_rule.clear()
            self._with_rule[(host, id(net))] = (net, match)
        return match

    def score_text(self, text: str | bytes) -> PhraseScore:
        """Weighted phrase scores of a page or search text, per category."""
        return self._phrases.score(text)

    def _host_answer(self, host: str) -> _HostAnswer:
        """The whole-host hits of `host`, its URL-prefix records and their screen (`_Screen`), and the
        Match of the whole-host hits alone, memoised per host.

        A page's requests go to the same few hosts again and again; the table walk and the record
        decoding are done once per host, and only the cheap path test per request.
        """
        cached = self._host_cache.get(host)
        if cached is not None:
            return cached
        whole: list[RawHit] = []
        prefixed: list[_Prefixed] = []
        key = _host_key(host)
        entries = self._hosts.find_suffixes(key) if key else None
        if entries:
            for domain, sid, flags, line, prefix in self._hosts.collect(entries):
                if prefix is None:
                    whole.append(("domain", sid, flags, line, domain))
                else:
                    prefixed.append((sid, flags, line, domain, prefix, read_path(prefix)))
        screen = (
            max((len(prefix) for _, _, _, _, prefix, _ in prefixed), default=0),
            tuple({f for _, flags, _, _, _, read in prefixed if not flags & ALLOW for f in read[2:]}),
            tuple({read[0] for _, flags, _, _, _, read in prefixed if flags & ALLOW}),
        )
        answer = (
            tuple(whole),
            tuple(prefixed),
            screen,
            Match(tuple(whole), self.sources) if whole else NO_MATCH,
        )
        if len(self._host_cache) >= HOST_CACHE_SIZE:
            self._host_cache.clear()
        self._host_cache[host] = answer
        return answer

    def _expression_hits(self, target: bytes) -> list[RawHit]:
        return [
            ("expression", sid, flags, line, regex.pattern)
            for regex, sid, line, flags in self._expressions
            if regex.search(target)
        ]
