"""The adblock resource type and the requesting page of a web request, read from its headers.

Header sets are what browsers really send (names in lower case, as the functions look them up). Over
HTTPS browsers send `Sec-Fetch-*`; to plain-http sites, and from apps and curl, only `Accept` and the
Referer tell anything.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.proxy.resource import request_type, source_url
from filters.adblock import parse_adblock
from filters.compile import IndexBuilder
from filters.index import FilterIndex, SourceInfo
from filters.network_index import REQUEST_TYPES
from filters.report import ReportBuilder

CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
FIREFOX_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_PAGE_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
    "application/signed-exchange;v=b3;q=0.7"
)
CHROME_IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX_PAGE_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

Headers = dict[str, str]

CHROME_TYPED_NAVIGATION: Headers = {
    "host": "school.example",
    "upgrade-insecure-requests": "1",
    "user-agent": CHROME_UA,
    "accept": CHROME_PAGE_ACCEPT,
    "sec-fetch-site": "none",
    "sec-fetch-mode": "navigate",
    "sec-fetch-user": "?1",
    "sec-fetch-dest": "document",
    "accept-encoding": "gzip, deflate, br, zstd",
    "accept-language": "en-GB,en;q=0.9",
}
CHROME_LINK_CLICK: Headers = {
    **CHROME_TYPED_NAVIGATION,
    "sec-fetch-site": "cross-site",
    "referer": "https://search.example/",
}
CHROME_IMAGE: Headers = {
    "host": "tracker.example",
    "user-agent": CHROME_UA,
    "accept": CHROME_IMAGE_ACCEPT,
    "sec-fetch-site": "cross-site",
    "sec-fetch-mode": "no-cors",
    "sec-fetch-dest": "image",
    "referer": "https://news.example/",
}
CHROME_IFRAME: Headers = {
    "host": "ads.example",
    "upgrade-insecure-requests": "1",
    "user-agent": CHROME_UA,
    "accept": CHROME_PAGE_ACCEPT,
    "sec-fetch-site": "cross-site",
    "sec-fetch-mode": "navigate",
    "sec-fetch-dest": "iframe",
    "referer": "https://news.example/",
}
CHROME_STYLESHEET: Headers = {
    "accept": "text/css,*/*;q=0.1",
    "sec-fetch-site": "same-site",
    "sec-fetch-mode": "no-cors",
    "sec-fetch-dest": "style",
    "referer": "https://news.example/",
}
FIREFOX_SCRIPT: Headers = {
    "host": "cdn.ads.example",
    "user-agent": FIREFOX_UA,
    "accept": "*/*",
    "accept-language": "en-GB,en;q=0.5",
    "referer": "https://news.example/",
    "sec-fetch-dest": "script",
    "sec-fetch-mode": "no-cors",
    "sec-fetch-site": "cross-site",
}
FIREFOX_FONT: Headers = {
    "accept": "application/font-woff2;q=1.0,application/font-woff;q=0.9,*/*;q=0.8",
    "origin": "https://news.example",
    "referer": "https://news.example/",
    "sec-fetch-dest": "font",
    "sec-fetch-mode": "cors",
    "sec-fetch-site": "cross-site",
}
CHROME_VIDEO: Headers = {
    "accept": "*/*",
    "accept-encoding": "identity;q=1, *;q=0",
    "range": "bytes=0-",
    "sec-fetch-site": "cross-site",
    "sec-fetch-mode": "no-cors",
    "sec-fetch-dest": "video",
    "referer": "https://news.example/",
}
CHROME_FETCH: Headers = {
    "accept": "*/*",
    "origin": "https://news.example",
    "sec-fetch-site": "cross-site",
    "sec-fetch-mode": "cors",
    "sec-fetch-dest": "empty",
    "referer": "https://news.example/",
}
CHROME_SAME_ORIGIN_XHR: Headers = {
    "accept": "application/json, text/plain, */*",
    "content-type": "application/json",
    "sec-fetch-site": "same-origin",
    "sec-fetch-mode": "cors",
    "sec-fetch-dest": "empty",
    "referer": "https://school.example/chat",
}
CHROME_BEACON: Headers = {
    "content-type": "text/plain;charset=UTF-8",
    "sec-fetch-site": "cross-site",
    "sec-fetch-mode": "no-cors",
    "sec-fetch-dest": "empty",
    "referer": "https://news.example/",
}
CHROME_HYPERLINK_PING: Headers = {
    "content-type": "text/ping",
    "ping-from": "https://news.example/",
    "ping-to": "https://shop.example/",
    "sec-fetch-site": "cross-site",
    "sec-fetch-mode": "no-cors",
    "sec-fetch-dest": "empty",
}
CHROME_CSP_REPORT: Headers = {
    "content-type": "application/csp-report",
    "sec-fetch-site": "same-origin",
    "sec-fetch-mode": "no-cors",
    "sec-fetch-dest": "empty",
}
CHROME_WEBSOCKET: Headers = {
    "host": "chat.example",
    "connection": "Upgrade",
    "upgrade": "websocket",
    "origin": "https://game.example",
    "sec-websocket-version": "13",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    "sec-fetch-site": "cross-site",
    "sec-fetch-mode": "websocket",
    "sec-fetch-dest": "websocket",
}
APP_WEBSOCKET: Headers = {
    "host": "chat.example",
    "connection": "Upgrade",
    "upgrade": "WebSocket",
    "sec-websocket-version": "13",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
}
# Plain-http sites get no Sec-Fetch-* headers from any browser.
HTTP_CHROME_NAVIGATION: Headers = {
    "upgrade-insecure-requests": "1",
    "user-agent": CHROME_UA,
    "accept": CHROME_PAGE_ACCEPT,
    "referer": "http://old.example/",
}
HTTP_CHROME_IMAGE: Headers = {"accept": CHROME_IMAGE_ACCEPT, "referer": "http://old.example/"}
HTTP_FIREFOX_IMAGE: Headers = {"accept": "image/avif,image/webp,*/*", "referer": "http://old.example/"}
HTTP_SAFARI_IMAGE: Headers = {
    "accept": "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,"
    "image/svg+xml,image/*;q=0.8,*/*;q=0.5",
    "referer": "http://old.example/",
}
HTTP_STYLESHEET: Headers = {"accept": "text/css,*/*;q=0.1", "referer": "http://old.example/"}
HTTP_SCRIPT: Headers = {"accept": "*/*", "referer": "http://old.example/"}
HTTP_FIREFOX_VIDEO: Headers = {
    "accept": "video/webm,video/ogg,video/*;q=0.9,application/ogg;q=0.7,audio/*;q=0.6,*/*;q=0.5",
    "range": "bytes=0-",
    "referer": "http://old.example/",
}
HTTP_JQUERY_HTML: Headers = {
    "accept": "text/html, */*; q=0.01",
    "x-requested-with": "XMLHttpRequest",
    "referer": "http://old.example/",
}
HTTP_AXIOS: Headers = {"accept": "application/json, text/plain, */*", "referer": "http://old.example/"}
HTTP_EVENT_SOURCE: Headers = {"accept": "text/event-stream", "referer": "http://old.example/"}
ANDROID_WEBVIEW_PAGE: Headers = {"accept": CHROME_PAGE_ACCEPT, "x-requested-with": "com.example.kidsapp"}
CURL: Headers = {"host": "school.example", "user-agent": "curl/8.5.0", "accept": "*/*"}
APP_FETCH_WITH_REFERER: Headers = {"accept": "*/*", "referer": "https://app.example/"}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(CHROME_TYPED_NAVIGATION, "document", id="chrome-typed-navigation"),
        pytest.param(CHROME_LINK_CLICK, "document", id="chrome-link-click"),
        pytest.param(CHROME_IMAGE, "image", id="chrome-image"),
        pytest.param(CHROME_IFRAME, "subdocument", id="chrome-iframe"),
        pytest.param({**CHROME_IFRAME, "sec-fetch-dest": "frame"}, "subdocument", id="frame"),
        pytest.param({**CHROME_IFRAME, "sec-fetch-dest": "fencedframe"}, "subdocument", id="fencedframe"),
        pytest.param(CHROME_STYLESHEET, "stylesheet", id="chrome-stylesheet"),
        pytest.param(FIREFOX_SCRIPT, "script", id="firefox-script"),
        pytest.param({**FIREFOX_SCRIPT, "sec-fetch-dest": "serviceworker"}, "script", id="serviceworker"),
        pytest.param({**FIREFOX_SCRIPT, "sec-fetch-dest": "worker"}, "script", id="worker"),
        pytest.param(FIREFOX_FONT, "font", id="firefox-font"),
        pytest.param(CHROME_VIDEO, "media", id="chrome-video"),
        pytest.param({**CHROME_VIDEO, "sec-fetch-dest": "track"}, "media", id="track"),
        pytest.param({**CHROME_VIDEO, "sec-fetch-dest": "embed"}, "object", id="embed"),
        pytest.param({**CHROME_VIDEO, "sec-fetch-dest": "object"}, "object", id="object"),
        pytest.param(CHROME_FETCH, "xmlhttprequest", id="fetch-cross-site"),
        pytest.param(CHROME_SAME_ORIGIN_XHR, "xmlhttprequest", id="xhr-same-origin"),
        pytest.param(CHROME_BEACON, "ping", id="send-beacon"),
        pytest.param(CHROME_HYPERLINK_PING, "ping", id="a-ping"),
        pytest.param(CHROME_CSP_REPORT, "other", id="csp-report"),
        pytest.param({**CHROME_CSP_REPORT, "sec-fetch-dest": "report"}, "other", id="report-destination"),
        pytest.param({**CHROME_FETCH, "sec-fetch-dest": "manifest"}, "other", id="manifest"),
        pytest.param(
            {**CHROME_FETCH, "sec-fetch-dest": "fancy-new-thing"}, "other", id="unknown-destination"
        ),
        pytest.param({**CHROME_IMAGE, "sec-fetch-dest": " Image "}, "image", id="odd-case-destination"),
        pytest.param(CHROME_WEBSOCKET, "websocket", id="chrome-websocket"),
        pytest.param(APP_WEBSOCKET, "websocket", id="app-websocket-no-metadata"),
        pytest.param(HTTP_CHROME_NAVIGATION, "document", id="http-chrome-navigation"),
        pytest.param(HTTP_CHROME_IMAGE, "image", id="http-chrome-image"),
        pytest.param(HTTP_FIREFOX_IMAGE, "image", id="http-firefox-image"),
        pytest.param(HTTP_SAFARI_IMAGE, "image", id="http-safari-image"),
        pytest.param(HTTP_STYLESHEET, "stylesheet", id="http-stylesheet"),
        pytest.param(HTTP_SCRIPT, "other", id="http-script-accepts-anything"),
        pytest.param(HTTP_FIREFOX_VIDEO, "media", id="http-firefox-video"),
        pytest.param(HTTP_JQUERY_HTML, "xmlhttprequest", id="http-jquery-x-requested-with"),
        pytest.param(HTTP_AXIOS, "xmlhttprequest", id="http-axios-json"),
        pytest.param(HTTP_EVENT_SOURCE, "xmlhttprequest", id="http-event-source"),
        pytest.param(ANDROID_WEBVIEW_PAGE, "document", id="android-webview-app-name-ignored"),
        pytest.param(CURL, "document", id="curl-no-hints-is-a-page"),
        pytest.param({}, "document", id="no-headers-at-all"),
        pytest.param(APP_FETCH_WITH_REFERER, "other", id="accept-anything-from-a-page"),
        pytest.param(
            {"accept": "*/*", "origin": "https://app.example"}, "other", id="accept-anything-origin"
        ),
    ],
)
def test_request_type(headers: Headers, expected: str) -> None:
    assert request_type(headers) == expected
    assert expected in REQUEST_TYPES


@pytest.mark.parametrize(
    ("headers", "url", "expected"),
    [
        pytest.param(CHROME_IMAGE, "https://tracker.example/p.gif", "https://news.example/", id="referer"),
        pytest.param(
            {"origin": "https://game.example", "sec-fetch-site": "cross-site", "sec-fetch-dest": "empty"},
            "https://api.example/score",
            "https://game.example/",
            id="origin-only",
        ),
        pytest.param(
            {"origin": "null", "sec-fetch-site": "cross-site", "sec-fetch-dest": "empty"},
            "https://api.example/score",
            None,
            id="origin-null",
        ),
        pytest.param(
            {"sec-fetch-site": "none", "sec-fetch-dest": "empty", "referer": "https://news.example/"},
            "https://api.example/",
            None,
            id="sec-fetch-site-none",
        ),
        pytest.param(
            {"sec-fetch-site": "cross-site", "sec-fetch-dest": "image"},
            "https://tracker.example/p.gif",
            None,
            id="nothing-cross-site-no-referrer",
        ),
        pytest.param(
            {"sec-fetch-site": "same-site", "sec-fetch-dest": "image"},
            "https://img.news.example/p.gif",
            None,
            id="same-site-no-referrer",
        ),
        pytest.param(
            {"sec-fetch-site": "same-origin", "sec-fetch-dest": "empty", "sec-fetch-mode": "cors"},
            "https://school.example:8443/api/chat?room=1",
            "https://school.example:8443/",
            id="same-origin-no-referrer",
        ),
        pytest.param(
            {"referer": "android-app://com.google.android.gm/", "origin": "https://mail.example"},
            "https://img.example/a.png",
            "https://mail.example/",
            id="non-http-referer-falls-back-to-origin",
        ),
        pytest.param({"referer": "https://"}, "https://img.example/a.png", None, id="empty-referer-host"),
        pytest.param(
            {"referer": "HTTPS://News.Example/Page"},
            "https://img.example/a.png",
            "HTTPS://News.Example/Page",
            id="upper-case-scheme",
        ),
        pytest.param(
            CHROME_TYPED_NAVIGATION,
            "https://school.example/timetable",
            "https://school.example/",
            id="typed-page",
        ),
        pytest.param(
            CHROME_LINK_CLICK,
            "https://game.example/play?level=2",
            "https://game.example/",
            id="page-is-own-source",
        ),
        pytest.param(
            CHROME_IFRAME, "https://ads.example/frame", "https://news.example/", id="frame-has-its-parent"
        ),
        pytest.param(CURL, "http://school.example", "http://school.example/", id="curl-page-no-path"),
        pytest.param(HTTP_SCRIPT, "http://cdn.example/a.js", "http://old.example/", id="http-script-referer"),
        pytest.param(APP_WEBSOCKET, "https://chat.example/ws", None, id="app-websocket-unknown"),
        pytest.param({}, "not a url", None, id="document-without-a-url"),
    ],
)
def test_source_url(headers: Headers, url: str, expected: str | None) -> None:
    assert source_url(headers, url) == expected


def test_mitmproxy_headers_can_be_passed_as_they_are() -> None:
    http = pytest.importorskip("mitmproxy.http")
    headers = http.Headers(
        [
            (b"Accept", CHROME_IMAGE_ACCEPT.encode()),
            (b"Sec-Fetch-Site", b"cross-site"),
            (b"Sec-Fetch-Mode", b"no-cors"),
            (b"Sec-Fetch-Dest", b"image"),
            (b"Referer", b"https://news.example/"),
        ]
    )
    assert request_type(headers) == "image"
    assert source_url(headers, "https://tracker.example/p.gif") == "https://news.example/"


@pytest.fixture(scope="module")
def index() -> FilterIndex:
    b = IndexBuilder()
    report = ReportBuilder("t")
    ads = b.add_source(SourceInfo("easylist", "ads", "adblock", "easylist.txt"))
    rules = "||tracker.example^$third-party\n||cdn.ads.example/*.js$script\n||popups.example^$document"
    b.add_network_rules(ads, parse_adblock(rules.splitlines(), "easylist.txt", report))
    return FilterIndex(b.build(created="2026-11-24T12:00:00+00:00"))


@pytest.mark.parametrize(
    ("headers", "url", "blocked_by"),
    [
        pytest.param(
            CHROME_IMAGE, "https://tracker.example/p.gif", "||tracker.example^$third-party", id="pixel"
        ),
        pytest.param(
            {**CHROME_IMAGE, "referer": "https://tracker.example/home", "sec-fetch-site": "same-origin"},
            "https://tracker.example/p.gif",
            None,
            id="tracker-own-page-first-party",
        ),
        pytest.param(
            FIREFOX_SCRIPT, "https://cdn.ads.example/ad.js", "||cdn.ads.example/*.js$script", id="ad-script"
        ),
        pytest.param(CHROME_IMAGE, "https://cdn.ads.example/ad.js", None, id="script-rule-not-for-image"),
        pytest.param(CHROME_LINK_CLICK, "https://tracker.example/", None, id="visiting-the-site-itself"),
        pytest.param(
            CHROME_LINK_CLICK, "https://popups.example/win", "||popups.example^$document", id="document-rule"
        ),
    ],
)
def test_end_to_end_with_the_adblock_index(
    index: FilterIndex, headers: Headers, url: str, blocked_by: str | None
) -> None:
    match = index.match_url(url, source_url=source_url(headers, url), request_type=request_type(headers))
    assert [h.rule for h in match.hits if h.listed == "block"] == ([blocked_by] if blocked_by else [])


_HEADER_NAMES = st.sampled_from(
    [
        "sec-fetch-dest",
        "sec-fetch-mode",
        "sec-fetch-site",
        "accept",
        "referer",
        "origin",
        "upgrade",
        "content-type",
        "x-requested-with",
        "ping-to",
    ]
)


@given(st.dictionaries(_HEADER_NAMES, st.text(max_size=40)), st.text(max_size=60))
def test_any_headers_give_a_known_type_and_never_raise(headers: Headers, url: str) -> None:
    assert request_type(headers) in REQUEST_TYPES
    source = source_url(headers, url)
    assert source is None or "://" in source
