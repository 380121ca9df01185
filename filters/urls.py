"""URLs as the lists are matched against them: split cheaply (urllib.parse.urlsplit costs several times
more) and in one canonical spelling, so that no other spelling of a host or path gets round an entry.

Every list entry, every profile entry and every request is put in this form once, before matching:

- **host** (`canonical_host`): lower case, no trailing dot, percent-escapes decoded, internationalised
  names in punycode (IDNA 2008 with UTS #46, as `filters.names`), an IPv4 address in any spelling a
  browser accepts as its dotted quad, IPv6 compressed without brackets (an IPv4-mapped one as its
  dotted quad: it reaches that address).
- **path** (`canonical_path`), after RFC 3986 section 6.2.2: percent-escapes of unreserved characters
  (`A-Z a-z 0-9 - . _ ~`) decoded, the hex digits of every other escape upper case, characters outside
  ASCII percent-encoded as UTF-8 (what browsers send), then dot segments removed (section 5.2.4, so
  `%2e%2e` too). The query keeps its text but gets the same escapes.

Choices, and why:

- An encoded slash `%2F` stays encoded: decoding it would change which resource is meant.
- A `%` that starts no escape becomes `%25`, the one way a server can read it; so decoding never
  makes a new escape (`%4%31` is `%2541`, not `%41`) and the form is stable.
- A backslash in the path becomes `/` (and ends the host, as `/` does). Browsers do this themselves
  in http(s) and ws(s) URLs before sending; a raw `\\` reaches the proxy only from a script, and IIS
  then serves `\\ads\\` as `/ads/`. Blocking `/ads\\x` with a rule for `/ads/` costs nothing.
- Repeated slashes are kept: browsers keep them, servers differ (nginx merges them, most
  applications do not), and EasyList has rules that name `//` in a path, which merging would break.
- A path whose dot segments servers resolve otherwise than RFC 3986 does keeps them: in
  `/a//../b` the `..` takes the empty segment for RFC 3986 (`/a/b`) but `a` for a server that merges
  slashes first (`/b`). No browser sends such a path (they resolve dot segments themselves); one that
  comes is kept as sent, so that both readings can be held against an entry (`read_path`). Adblock
  rules and expressions meet it as sent.

**Prefix-style entries** (UT1 `urls`, a profile's `domain/path`) are held against more than the
canonical path, because servers read paths more loosely than RFC 3986 (`read_path`, `path_blocked_by`,
`path_allowed_by`): the server reading (`server_path`) also takes `%2F`, `%5C` and `\\` for `/`
(nginx decodes `%2F` before it resolves `..`; IIS takes `\\` for `/`), merges repeated slashes (nginx),
reads a segment `..;x` as `..` (Tomcat, Jetty and Spring drop `;` parameters), then removes dot
segments again; some servers (IIS) ignore case. A block entry blocks a path if the canonical path or
the server reading, capitals aside, starts with it; an allow entry allows a path only if both, capitals
kept, do.
"""

from __future__ import annotations

import re

import idna

from filters.names import ipv4_literal, ipv6_literal
from filters.regex import LinearRegex

_DIGITS = frozenset("0123456789")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# A `%` not in canonical form: an escape in lower-case hex or of an unreserved character, or a `%`
# that starts no escape. RE2 on bytes, linear: Python's `re` tries each `%` in turn and takes ten
# times longer on a tracking URL with hundreds of escapes.
_LOOSE_ESCAPE = LinearRegex(
    r"%(?:[0-9A-Fa-f][a-f]|[a-f][0-9A-F]|2[DE]|3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE]"
    r"|[^0-9A-Fa-f]|[0-9A-Fa-f][^0-9A-Fa-f]|[0-9A-Fa-f]?$)"
)
_ESCAPE = re.compile(r"%(?:[0-9A-Fa-f]{2})?")
_HOST_ESCAPE = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
# WHATWG's forbidden domain code points: a host that decodes to one of them is no host.
_FORBIDDEN_IN_HOST = frozenset(" #%/:<>?@[\\]^|\x7f" + "".join(map(chr, range(32))))


def canonical_host(host: str) -> str:
    """`host` (from a URL, a Host header, a list or a profile) as lists and decisions know it.

    Lower case, no trailing dot, no brackets; `%` escapes decoded (browsers decode them in hosts);
    internationalised names in punycode; IPv4 in any browser spelling (`2130706433`, `0x7f.1`, `127.1`,
    `0177.0.0.1`) as the dotted quad; IPv6 compressed (`[0:0::1]` is `::1`), an IPv4-mapped address as
    its dotted quad (`::ffff:127.0.0.1` is `127.0.0.1`). Never raises: what is no valid host stays as
    it is, lower-cased, and matches nothing it should not. Idempotent.
    """
    if "%" in host:
        decoded = _HOST_ESCAPE.sub(_decode_host_escapes, host)
        if _FORBIDDEN_IN_HOST.isdisjoint(decoded):  # else browsers refuse it: left as it is
            host = decoded
    if host.startswith("["):
        inner = host[1 : host.find("]")] if "]" in host else host[1:]
        return ipv6_literal(inner) or canonical_host(inner)  # no address: what a browser refuses
    if ":" in host:
        address = ipv6_literal(host)
        if address is not None:
            return address
    host = host.lower().rstrip(".")
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return host  # no browser reaches it; the host table has no key for it
    if host[:1] in _DIGITS:
        return ipv4_literal(host) or host
    return host


def _decode_host_escapes(m: re.Match[str]) -> str:
    raw = bytes(int(m[0][i + 1 : i + 3], 16) for i in range(0, len(m[0]), 3))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return m[0]


def canonical_path(path: str) -> str:
    """`path` (which starts with `/`, and may carry a `?query`) in canonical form: see the module
    docstring. Idempotent; gives back `path` itself when it is canonical already."""
    cut = path.find("?")
    head = path if cut < 0 else path[:cut]
    if (
        "/." not in head
        and "\\" not in head
        and path.isascii()
        and ("%" not in path or not _LOOSE_ESCAPE.search(path.encode("ascii")))
    ):
        return path
    query = "" if cut < 0 else _canonical_escapes(path[cut:])
    head = _canonical_escapes(head)
    if "\\" in head:
        head = head.replace("\\", "/")
    if "/." in head:
        resolved = _remove_dot_segments(head)
        # Kept as sent when servers resolve its dot segments elsewhere (see the module docstring).
        if resolved == head or _server_head(resolved) == _server_head(head):
            head = resolved
    canonical = head + query
    return path if canonical == path else canonical  # callers tell "unchanged" by identity


def _canonical_escapes(text: str) -> str:
    text = encode_non_ascii(text)
    if "%" in text and _LOOSE_ESCAPE.search(text.encode("ascii")):
        text = _ESCAPE.sub(_canonical_escape, text)
    return text


def encode_non_ascii(text: str) -> str:
    """`text` with each character outside ASCII as the `%XX` escapes of its UTF-8 bytes."""
    if text.isascii():
        return text
    return "".join(c if c < "\x80" else _encode_char(c) for c in text)


def canonical_escape(hex_pair: str) -> str:
    """The canonical form of the escape `%` + `hex_pair` (two hex digits): the character itself if it
    is unreserved, else the escape in upper-case hex."""
    c = chr(int(hex_pair, 16))
    return c if c in _UNRESERVED else "%" + hex_pair.upper()


def _encode_char(c: str) -> str:
    try:
        raw = c.encode("utf-8", "surrogateescape")  # the bytes a surrogate-escaped request carried
    except UnicodeEncodeError:
        raw = c.encode("utf-8", "surrogatepass")
    return "".join(f"%{b:02X}" for b in raw)


def _canonical_escape(m: re.Match[str]) -> str:
    return _ESCAPES.get(m[0], "%25")  # a lone `%` starts no escape


_HEX_DIGITS = "0123456789abcdefABCDEF"
_ESCAPES = {f"%{a}{b}": canonical_escape(a + b) for a in _HEX_DIGITS for b in _HEX_DIGITS}


def _remove_dot_segments(path: str, *, parameters: bool = False) -> str:
    """RFC 3986 5.2.4 on an absolute path: `.` segments go, `..` takes the segment before it. With
    `parameters`, a segment `..;x` or `.;x` is a dot segment too (servers that drop `;` parameters)."""
    segments = path.split("/")
    out: list[str] = []
    segment = ""
    for segment in segments[1:]:
        if parameters and ";" in segment and segment[:1] == ".":
            segment = segment[: segment.find(";")]
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segment in (".", ".."):
        out.append("")
    return "/" + "/".join(out)


# --- how servers read a path: for prefix-style entries ------------------------------------------------

_SEPARATOR_ESCAPE = re.compile(r"%(?:2[Ff]|5[Cc])")
_REPEATED_SLASHES = re.compile(r"//+")


def _server_head(head: str) -> str:
    if "%" in head:
        head = _SEPARATOR_ESCAPE.sub("/", head)
    if "\\" in head:
        head = head.replace("\\", "/")
    if "//" in head:
        head = _REPEATED_SLASHES.sub("/", head)
    if "/." in head:
        head = _remove_dot_segments(head, parameters=True)
    return head


def server_path(path: str) -> str:
    """How common web servers read the canonical `path`: `%2F`, `%5C` (any case) and `\\` as `/`,
    repeated slashes merged, then dot segments removed (a segment `..;x` counts as `..`); the query as
    it is, capitals kept. Idempotent."""
    cut = path.find("?")
    if cut < 0:
        return _server_head(path)
    return _server_head(path[:cut]) + path[cut:]


def exact_path(path: str) -> str:
    """The canonical `path` with its dot segments resolved as RFC 3986 reads them: `path` itself but
    for a path kept as sent (see the module docstring)."""
    cut = path.find("?")
    head = path if cut < 0 else path[:cut]
    if "/." not in head:
        return path
    resolved = _remove_dot_segments(head)
    return path if resolved == head else resolved + path[len(head) :]


# The readings of a canonical path that prefix matching holds against each other (`read_path`):
# (exact, server, exact in lower case, server in lower case). A plain tuple: the index unpacks it once
# per request and tests it against each of a host's entries.
PathReadings = tuple[str, str, str, str]


def read_path(path: str, length: int = -1) -> PathReadings:
    """The readings of the canonical `path` (which may carry its `?query`):

    - exact: dot segments resolved as RFC 3986 and browsers resolve them (the path itself, but for
      one kept as sent, see the module docstring);
    - server: as common web servers read it (`server_path`), capitals kept;
    - the two in lower case, cut to `length` characters if it is given (enough to test them against
      prefixes no longer than that).

    Cheap for an ordinary path: unless it has `//`, `%2F`, `%5C`, a backslash or a segment starting
    with `.` before its query, both readings are the path itself.
    """
    end = path.find("?")
    head = path if end < 0 else path[:end]
    # What can make a reading differ from the path, capitals aside (`/.` finds the dot segments of a
    # path kept as sent, and `..;`). A canonical path has neither a backslash nor lower-case hex;
    # they are looked for all the same. Substring tests: a regular expression costs twice as much.
    if not (
        "//" in head
        or "/." in head
        or "\\" in head
        or ("%" in head and ("%2F" in head or "%5C" in head or "%2f" in head or "%5c" in head))
    ):
        folded = (path if length < 0 else path[:length]).lower()
        return path, path, folded, folded
    exact = exact_path(path)
    server = _server_head(head) + path[len(head) :]
    if length >= 0:
        return exact, server, exact[:length].lower(), server[:length].lower()
    return exact, server, exact.lower(), server.lower()


def path_blocked_by(path: PathReadings, entry: PathReadings) -> bool:
    """Does a block entry for the path prefix `entry` meet the request path `path`? Yes if either
    reading starts with the entry's, capitals ignored (blocking a spelling that no server reads as
    the blocked page costs nothing)."""
    return path[2].startswith(entry[2]) or path[3].startswith(entry[3])


def path_allowed_by(path: PathReadings, entry: PathReadings) -> bool:
    """Does an allow entry for the path prefix `entry` cover the request path `path`? Only if both
    readings, capitals kept, start with the entry's: a path that a server reads as outside the
    allowed part is not allowed by it."""
    return path[0].startswith(entry[0]) and path[1].startswith(entry[1])


def _authority(url: str) -> tuple[int, int, int]:
    """(start of the host, its end, end of the authority) in an absolute or scheme-less URL."""
    start = url.find("://")
    start = start + 3 if start >= 0 else 0
    # The authority ends at the first "/", "?", "#" or backslash (browsers read that as a slash):
    # find "/" first (nearly always there), then look for the others only before it.
    end = url.find("/", start)
    if end < 0:
        end = len(url)
    authority = url[start:end]
    if "?" in authority or "#" in authority or "\\" in authority:
        for mark in "?#\\":
            cut = url.find(mark, start, end)
            if cut >= 0:
                end = cut
        authority = url[start:end]
    if "@" in authority:
        at = authority.rfind("@") + 1
        start += at
        authority = authority[at:]
    if ":" not in authority:
        return start, end, end
    if authority.startswith("["):
        close = authority.find("]")
        return start, (start + close + 1 if close >= 0 else end), end
    return start, start + authority.find(":"), end


_SLOW_HOST_START = frozenset("0123456789[")  # an IP literal, bracketed or in any spelling


def _host(raw: str) -> str:
    host = raw.lower()
    if host[:1] in _SLOW_HOST_START or host[-1:] == "." or "%" in host or not host.isascii():
        return canonical_host(host)
    return host


def url_host(url: str) -> str:
    """The canonical host of an absolute URL or a scheme-less `host/path` (user info and port dropped)."""
    start, host_end, _ = _authority(url)
    return _host(url[start:host_end])


def canonical_url(url: str) -> tuple[str, str, str]:
    """(url, host, path) of an absolute URL or a scheme-less `host/path`, all in canonical form.

    The host is `canonical_host`'s, without user info or port; the path is `canonical_path`'s, keeps
    its query and always starts with `/`. A fragment is dropped: it never reaches a server. The URL
    is `url` itself when nothing changed, else rebuilt from its own scheme, user info and port around
    the canonical host and path.
    """
    global _last
    if url is _last[0]:  # the proxy's Request.web did this one, and the index is asked about it now
        return _last
    # Nearly every URL is canonical already: a plain name for a host and a plain path. Prove that
    # with a few substring tests (isascii is O(1)); anything else takes the general way.
    start = url.find("://")
    start = start + 3 if start >= 0 else 0
    end = url.find("/", start)
    if end > start and url.isascii():
        authority = url[start:end]
        if not (
            "?" in authority
            or "#" in authority
            or "\\" in authority
            or "@" in authority
            or ":" in authority
            or "%" in authority
            or authority[0] in _SLOW_HOST_START
            or authority[-1] == "."
        ):
            host = authority.lower()
            raw_path = path = url[end:]
            if "#" not in path:
                if "%" in path or "/." in path or "\\" in path:
                    path = canonical_path(path)
                    _last = (
                        (url, host, path)
                        if path is raw_path and host == authority
                        else (url[:start] + host + path, host, path)
                    )
                    return _last
                if host == authority:
                    return url, host, path
                return url[:start] + host + path, host, path
    _last = _canonical_url(url)
    return _last


# The last URL that cost more than a few substring tests, canonical, with its host and path: asked
# again about the canonical URL (the proxy's request, then the index), the answer is at hand. One
# tuple, replaced whole, so threads always see a matching set.
_last: tuple[str, str, str] = ("", "", "/")


def _canonical_url(url: str) -> tuple[str, str, str]:
    start, host_end, end = _authority(url)
    raw_host = url[start:host_end]
    host = _host(raw_host)
    raw_path = path = url[end:]
    if "#" in path:
        path = path[: path.find("#")]
    if not path.startswith(("/", "\\")):
        path = "/" + path
    path = canonical_path(path)
    if path is not raw_path or host != raw_host:
        shown = f"[{host}]" if ":" in host or raw_host.startswith("[") else host
        return url[:start] + shown + url[host_end:end] + path, host, path
    return url, host, path


def split_url(url: str) -> tuple[str, str]:
    """Return (host, path) of an absolute URL or a scheme-less `host/path`, in canonical form (see
    `canonical_url`)."""
    _, host, path = canonical_url(url)
    return host, path
