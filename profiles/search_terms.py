"""What a child typed into a search engine, read from the request URL alone.

Only the request line is needed: the proxy calls this for every request, so a URL on any other host
is turned away after one dict lookup and four substring tests (no regex, no query parsing).
urllib is off limits in the decision core, so the query string is split and decoded here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SearchQuery", "extract_search", "is_search_host"]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A search typed into `engine`: `terms` is decoded, whitespace-collapsed, stripped, never empty."""

    engine: str
    terms: str


@dataclass(frozen=True, slots=True)
class _Engine:
    name: str
    # Lower-case paths without trailing "/" or ";params"; None: every path on the host is a search.
    paths: frozenset[str] | None
    # Query parameters holding the terms, in order of preference.
    params: tuple[str, ...]
    # (parameter, value, engine): suggestqueries.google.com serves YouTube's box too, marked ds=yt.
    switch: tuple[str, str, str] | None = None


# Only the pages a typed search lands on: Google's home page, Maps (a place, not a search for pages) and
# the /url?q= redirect (a link target) are not searches.
_GOOGLE = _Engine("google", frozenset({"/search", "/webhp", "/complete/search", "/images", "/imghp"}), ("q",))
_GOOGLE_SUGGEST = _Engine("google", frozenset({"/complete/search"}), ("q",), ("ds", "yt", "youtube"))
_BING = _Engine(
    "bing",
    frozenset({"/search", "/images/search", "/videos/search", "/news/search", "/as/suggestions"}),
    ("q",),
)
_DUCKDUCKGO = _Engine("duckduckgo", frozenset({"/", "/html", "/lite", "/ac"}), ("q",))
_YOUTUBE = _Engine("youtube", frozenset({"/results"}), ("search_query",))
_YOUTUBE_SUGGEST = _Engine("youtube", frozenset({"/complete/search"}), ("q",))
_YAHOO = _Engine("yahoo", frozenset({"/search", "/search/images", "/search/video", "/search/news"}), ("p",))
_ECOSIA = _Engine("ecosia", frozenset({"/search", "/images", "/videos", "/news"}), ("q",))
_YANDEX = _Engine("yandex", frozenset({"/search", "/images/search", "/video/search"}), ("text",))
_BAIDU = _Engine("baidu", frozenset({"/s"}), ("wd", "word"))
_QWANT = _Engine("qwant", None, ("q",))  # searches from its home page: www.qwant.com/?q=...&t=web
_STARTPAGE = _Engine("startpage", frozenset({"/do/search", "/sp/search", "/do/dsearch"}), ("query", "q"))
_BRAVE = _Engine("brave", frozenset({"/search", "/images", "/videos", "/news"}), ("q",))
_WIKIPEDIA = _Engine(
    "wikipedia", frozenset({"/w/index.php", "/wiki/special:search", "/search-redirect.php"}), ("search",)
)
_ASK = _Engine("ask", frozenset({"/web"}), ("q",))
_AOL = _Engine("aol", frozenset({"/aol/search"}), ("q",))

# Exact hosts: the one lookup a non-search URL pays.
_HOSTS: dict[str, _Engine] = {
    "suggestqueries.google.com": _GOOGLE_SUGGEST,
    "www.bing.com": _BING,
    "bing.com": _BING,
    "cn.bing.com": _BING,
    "duckduckgo.com": _DUCKDUCKGO,
    "www.duckduckgo.com": _DUCKDUCKGO,
    "html.duckduckgo.com": _DUCKDUCKGO,
    "lite.duckduckgo.com": _DUCKDUCKGO,
    "www.youtube.com": _YOUTUBE,
    "youtube.com": _YOUTUBE,
    "m.youtube.com": _YOUTUBE,
    "suggestqueries-clients6.youtube.com": _YOUTUBE_SUGGEST,
    "search.yahoo.com": _YAHOO,
    "search.yahoo.co.jp": _YAHOO,
    "www.ecosia.org": _ECOSIA,
    "ecosia.org": _ECOSIA,
    "ya.ru": _YANDEX,
    "www.baidu.com": _BAIDU,
    "baidu.com": _BAIDU,
    "m.baidu.com": _BAIDU,
    "www.qwant.com": _QWANT,
    "qwant.com": _QWANT,
    "www.startpage.com": _STARTPAGE,
    "startpage.com": _STARTPAGE,
    "search.brave.com": _BRAVE,
    "www.ask.com": _ASK,
    "ask.com": _ASK,
    "search.aol.com": _AOL,
}
# Families keyed by the host minus its first label (<lang>.wikipedia.org, <cc>.search.yahoo.com), looked
# up only when the host names the family.
_PARENTS: dict[str, _Engine] = {
    "wikipedia.org": _WIKIPEDIA,
    "m.wikipedia.org": _WIKIPEDIA,
    "search.yahoo.com": _YAHOO,
}
# Google and Yandex run one site per country: google.de, google.co.uk, google.com.au, yandex.com.tr.
# Only reached when the host contains "google." or "yandex.", so the regex stays off the hot path.
_GOOGLE_HOST = re.compile(r"(?:www\.|images\.)?google\.(?:[a-z]{2,3}|com?\.[a-z]{2})")
_YANDEX_HOST = re.compile(r"(?:www\.)?yandex\.(?:[a-z]{2,3}|com\.[a-z]{2})")

_HEX = frozenset("0123456789abcdefABCDEF")
# Control characters would garble logs and the dashboard: they count as whitespace.
_CONTROLS = {c: " " for c in [*range(0x20), *range(0x7F, 0xA0)]}


def extract_search(url: str) -> SearchQuery | None:
    """The search typed into a known engine, or None for any other URL.

    `url` is absolute (`https://host/path?query`) or scheme-less (`host/path?query`). The host matches
    case-insensitively, without a port or trailing dot. The terms come from the engine's parameter (the
    first non-empty occurrence when it repeats); the fragment is never read. None when the host is not a
    search engine, the path is not its search page, or the terms are empty.
    """
    query_at = url.find("?")
    if query_at < 0:
        return None  # every engine here carries the terms in the query string
    # Unbounded finds, checked afterwards: on this path every method argument costs.
    start = url.find("://")
    start = start + 3 if 0 <= start < query_at else 0
    path_at = url.find("/", start)
    if path_at < 0 or path_at > query_at:
        path_at = query_at
    host = url[start:path_at]
    if ":" in host or "@" in host:
        host = host[host.rfind("@") + 1 :].partition(":")[0]
    engine = _engine_for(host.lower().rstrip("."))
    if engine is None:
        return None
    fragment_at = url.find("#", path_at)
    if 0 <= fragment_at < query_at:
        return None  # the "?" is inside the fragment
    if engine.paths is not None and _search_path(url[path_at:query_at]) not in engine.paths:
        return None
    query = url[query_at + 1 : fragment_at] if fragment_at > query_at else url[query_at + 1 :]
    wanted = engine.params if engine.switch is None else (*engine.params, engine.switch[0])
    values = _first_values(query, wanted)
    terms = next((values[p] for p in engine.params if p in values), None)
    if terms is None:
        return None
    name = engine.name
    if engine.switch is not None and values.get(engine.switch[0]) == engine.switch[1]:
        name = engine.switch[2]
    return SearchQuery(name, terms)


def is_search_host(host: str) -> bool:
    """Whether `extract_search` reads searches from URLs on `host` (case and a trailing dot ignored)."""
    return _engine_for(host.lower().rstrip(".")) is not None


def _engine_for(host: str) -> _Engine | None:
    """The engine serving a lower-case host without port or trailing dot: one dict lookup, and for hosts
    naming a family (google.*, yandex.*, *.wikipedia.org, *.search.yahoo.com) a second check."""
    engine = _HOSTS.get(host)
    if engine is None:
        if "google." in host:
            return _GOOGLE if _GOOGLE_HOST.fullmatch(host) else None
        if "yandex." in host:
            return _YANDEX if _YANDEX_HOST.fullmatch(host) else None
        if "wikipedia." in host or ".search.yahoo." in host:
            return _PARENTS.get(host[host.find(".") + 1 :])
    return engine


def _search_path(path: str) -> str:
    """The path as the engine tables spell it: lower case, decoded, no `;params`, no trailing slash."""
    if ";" in path:
        path = path[: path.find(";")]  # Yahoo's /search;_ylt=...
    if "%" in path:
        path = _unquote(path, plus=False)  # /wiki/Special%3ASearch
    path = path.lower().rstrip("/")
    return path or "/"


def _first_values(query: str, wanted: tuple[str, ...]) -> dict[str, str]:
    """For each wanted parameter, its first value that is not empty once cleaned."""
    found: dict[str, str] = {}
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key:
            key = _unquote(key)
        if key in wanted and key not in found:
            cleaned = _clean(_unquote(value))
            if cleaned:
                found[key] = cleaned
    return found


def _unquote(text: str, plus: bool = True) -> str:
    """Form decoding: `+` is a space, `%XX` a byte, the bytes UTF-8 (bad sequences become U+FFFD).

    A `%` not followed by two hex digits is kept as it is, as browsers do.
    """
    if plus and "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    parts = text.split("%")
    out = bytearray(parts[0].encode("utf-8", "surrogatepass"))
    for part in parts[1:]:
        if len(part) >= 2 and part[0] in _HEX and part[1] in _HEX:
            out.append(int(part[:2], 16))
            out += part[2:].encode("utf-8", "surrogatepass")
        else:
            out += b"%"
            out += part.encode("utf-8", "surrogatepass")
    return out.decode("utf-8", "replace")


def _clean(text: str) -> str:
    if not text.isprintable():
        text = text.translate(_CONTROLS)
    return " ".join(text.split())
