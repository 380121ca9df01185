"""What kind of web request the proxy sees, and which page made it: the two facts adblock rules need
besides the URL (`$script`, `$image`, `$third-party`, `$domain=`...).

Pure functions over the request headers, called once per request by the proxy add-on; they never import
mitmproxy. `headers` is any mapping looked up with lower-case header names through `.get` and `in`:
mitmproxy's `Headers` (case-insensitive) can be passed as it is; a plain dict must have lower-case keys.
Where a header is repeated, whatever the mapping's `.get` returns (mitmproxy: the first value) is used.

Browsers name a request's destination in `Sec-Fetch-Dest` (Chrome 80+, Firefox 90+, Safari 16.4+), but
only to potentially trustworthy origins: a plain `http://` site gets no `Sec-Fetch-*` headers, and apps
and command-line tools never send them. Those requests are typed from their `Accept` header, which
browsers still fill per destination (images `image/avif,image/webp,...`, style sheets `text/css,*/*;q=0.1`,
pages `text/html,...`); scripts, fonts and fetch() calls send `*/*` and so become "other" (rules without
type options still apply to them; `$script`-only rules do not).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["request_type", "source_url"]

_EMPTY = ""  # the `empty` destination: fetch()/XMLHttpRequest, beacons, pings; told apart by other headers

# Sec-Fetch-Dest values (the Fetch standard's destinations, plus `empty` and `websocket`) -> adblock types,
# following the webRequest types browsers give ad blockers for the same requests.
_DESTINATIONS: dict[str, str] = {
    "document": "document",
    "iframe": "subdocument",
    "frame": "subdocument",
    "fencedframe": "subdocument",
    "script": "script",
    "worker": "script",
    "sharedworker": "script",
    "serviceworker": "script",
    "audioworklet": "script",
    "paintworklet": "script",
    "sharedstorageworklet": "script",
    "style": "stylesheet",
    "image": "image",
    "font": "font",
    "audio": "media",
    "video": "media",
    "track": "media",
    "object": "object",
    "embed": "object",
    "websocket": "websocket",
    "empty": _EMPTY,
    # Everything else ("report", "manifest", "xslt", "json", "webidentity", "speculationrules", ...) is
    # "other", as adblock-rust types names it does not know.
}

# The first media range of `Accept` -> adblock type, for requests without Sec-Fetch-Dest.
_ACCEPTS: dict[str, str] = {
    "text/html": "document",
    "application/xhtml+xml": "document",
    "text/css": "stylesheet",
    "application/json": "xmlhttprequest",
    "text/event-stream": "xmlhttprequest",  # EventSource
    "application/javascript": "script",
    "text/javascript": "script",
    "application/x-javascript": "script",
    "application/ecmascript": "script",
    "application/ogg": "media",
    "application/font-woff": "font",
    "application/font-woff2": "font",
    "application/x-font-woff": "font",
}
_ACCEPT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("image/", "image"),
    ("video/", "media"),
    ("audio/", "media"),
    ("font/", "font"),
)


def request_type(headers: Mapping[str, str]) -> str:
    """The adblock resource type of a web request (one of `filters.network_index.REQUEST_TYPES`).

    `headers` are the request's headers, looked up with lower-case names (mitmproxy's `Headers` as they
    are; a plain dict with lower-case keys).

    1. `Sec-Fetch-Dest`, when sent: document -> "document"; iframe, frame, fencedframe -> "subdocument";
       script and the workers and worklets -> "script"; style -> "stylesheet"; image -> "image"; font ->
       "font"; audio, video, track -> "media"; object, embed -> "object"; websocket -> "websocket"; any
       other named destination (report, manifest, xslt, json...) -> "other". `empty` is a script's own
       request, told apart by `Sec-Fetch-Mode`: cors or same-origin -> "xmlhttprequest" (fetch(), XHR,
       EventSource); websocket -> "websocket"; a browser report (`application/csp-report`,
       `application/reports+json`) -> "other"; hyperlink auditing (`<a ping>`: `Content-Type:
       text/ping`, `Ping-To`) and no-cors -> "ping", since no-cors is how `navigator.sendBeacon` goes
       out (a rare `fetch(url, {mode: "no-cors"})` is taken for a beacon too).
    2. Without it (plain-http sites, older browsers, apps, curl), the first media range of `Accept`:
       text/css -> "stylesheet"; image/* -> "image"; audio/*, video/* -> "media"; font/* -> "font";
       JSON or text/event-stream -> "xmlhttprequest"; JavaScript -> "script". Then `X-Requested-With:
       XMLHttpRequest` -> "xmlhttprequest" (jQuery; Android WebView puts the app's name there instead:
       ignored). Then text/html or application/xhtml+xml -> "document": a frame cannot be told from a
       page, and is taken for a page, which adblock rules block only with `$document` (so a whole page
       is never blocked by an advert rule). Then `Upgrade: websocket` -> "websocket".
    3. Anything else (`Accept: */*`, no Accept): "other" when a `Referer` or `Origin` names a page that
       made the request (a script, font or fetch() on a plain-http page), else "document": a request
       with no hints at all is a typed address, a bookmark, or an app or curl fetching it directly,
       and is judged as a page (so download blocking, which applies to navigations only, applies).
    """
    dest = headers.get("sec-fetch-dest")
    if dest is None:
        return _without_destination(headers)
    kind = _DESTINATIONS.get(dest)
    if kind is None:
        kind = _DESTINATIONS.get(dest.strip().lower(), "other")
    return kind if kind is not _EMPTY else _empty_destination(headers)


# Each lookup in mitmproxy's Headers scans and decodes every header (a few microseconds with a browser's
# fifteen headers), so the functions below look up as few as they can, the telling ones first.


def _empty_destination(headers: Mapping[str, str]) -> str:
    """The type of a request with `Sec-Fetch-Dest: empty`: a script's fetch, a beacon, a ping, a report."""
    mode = headers.get("sec-fetch-mode")
    mode = mode.strip().lower() if mode is not None else ""
    if mode == "cors" or mode == "same-origin":
        return "xmlhttprequest"
    if mode == "websocket":
        return "websocket"
    content_type = headers.get("content-type")
    if content_type is not None:
        content_type = content_type.lower()
        if content_type.startswith("text/ping"):
            return "ping"
        if content_type.startswith(("application/csp-report", "application/reports+json")):
            return "other"
    if mode == "no-cors" or "ping-to" in headers:
        return "ping"
    return "xmlhttprequest"


def _without_destination(headers: Mapping[str, str]) -> str:
    """The type of a request without Sec-Fetch-Dest, from its Accept header and what else it says."""
    accept = headers.get("accept")
    kind = None
    if accept:
        first = accept.partition(",")[0].partition(";")[0].strip().lower()
        kind = _ACCEPTS.get(first)
        if kind is None:
            for prefix, by_prefix in _ACCEPT_PREFIXES:
                if first.startswith(prefix):
                    kind = by_prefix
                    break
            else:
                if first.endswith("+json"):
                    kind = "xmlhttprequest"
        if kind is not None and kind != "document":
            return kind
    requested_with = headers.get("x-requested-with")
    if requested_with is not None and requested_with.strip().lower() == "xmlhttprequest":
        return "xmlhttprequest"
    if kind is not None:
        return kind
    upgrade = headers.get("upgrade")
    if upgrade is not None and upgrade.strip().lower() == "websocket":
        return "websocket"
    return "other" if "referer" in headers or "origin" in headers else "document"


def source_url(headers: Mapping[str, str], url: str) -> str | None:
    """The page that made the request for `url`, for adblock's `$third-party`/`$domain=` checks, or None.

    `headers` as for `request_type` (lower-case names). In order:

    1. A top-level page (what `request_type` calls "document") is its own source: the request URL's
       origin (`scheme://host[:port]/`), as uBlock Origin and Brave give adblock rules a page's own
       address, not the page the child came from (the Referer of a link click).
    2. `Sec-Fetch-Site: none` (the browser itself asked: a typed address, a bookmark) -> None.
    3. `Referer`, if it is an absolute http(s) URL (browsers send only the origin, `https://site/`, to
       other sites by default; the filter needs only its host).
    4. `Origin`, unless it is "null" (sandboxed frames, data: pages, some redirects) or not http(s):
       returned with a `/` added (`https://site.example/`).
    5. `Sec-Fetch-Site: same-origin` with neither header (`Referrer-Policy: no-referrer`): the request
       URL's own origin, which is then exactly the source's origin.
    6. Otherwise None: the source cannot be named (a cross-site request under `no-referrer`, an app).

    With None the filter (filters.network_index) treats the source as unknown, as adblock-rust does:
    `$third-party` and `$first-party` do not restrict (rules with either apply, so an unknown source is
    neither first- nor third-party), `$domain=` lists do not restrict either, except that a rule filed
    only under its domains (exactly one `$domain=`, or no token and no `~domain`) does not apply.
    """
    dest = headers.get("sec-fetch-dest")
    site = None
    if dest is None:  # no fetch metadata
        if _without_destination(headers) == "document":
            return _origin(url)
    else:
        if dest == "document" or dest.strip().lower() == "document":
            return _origin(url)
        site = headers.get("sec-fetch-site")
        if site is not None:
            site = site.strip().lower()
            if site == "none":
                return None
    referer = headers.get("referer")
    if referer and _is_http_url(referer):
        return referer
    origin = headers.get("origin")
    if origin and _is_http_url(origin):
        return origin if origin.endswith("/") else origin + "/"
    if site == "same-origin":
        return _origin(url)
    return None


def _is_http_url(value: str) -> bool:
    """Is `value` an absolute http(s) URL with something after the `//`?"""
    if value.startswith("https://"):
        return len(value) > 8
    if value.startswith("http://"):
        return len(value) > 7
    head = value[:8].lower()
    return (head.startswith("https://") and len(value) > 8) or (head.startswith("http://") and len(value) > 7)


def _origin(url: str) -> str | None:
    """`scheme://authority/` of an absolute URL, or None for anything else."""
    at = url.find("://")
    if at <= 0:
        return None
    start = at + 3
    end = len(url)
    for stop in "/?#":
        cut = url.find(stop, start, end)
        if cut >= 0:
            end = cut
    if end == start:
        return None
    return url[:end] + "/"
