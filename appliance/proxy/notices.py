"""The addon that tells a child their time is nearly up: on an intercepted HTML page for a signed-in child
with WARN_MINUTES or fewer left of a budget (`Standing.left.warned`), a small notice at the top of the
page's <body> ("5 minutes of games left today"). Never on anything but a whole HTML document (not in
frames, not on scripts, images or downloads), never where it could break the page: a page whose content
security policy forbids inline styles, or which has no <body> tag, is left as it came."""

from __future__ import annotations

import re
from collections.abc import Mapping

from markupsafe import escape
from mitmproxy import http

from appliance.proxy.shared import Shared, log, seen_of
from profiles.categories import Category
from profiles.controls import INTERNET, Left

_HTML = re.compile(r"^\s*(text/html|application/xhtml\+xml)", re.IGNORECASE)
_BODY = re.compile(rb"<body\b[^>]*>", re.IGNORECASE)
_META_CSP = re.compile(rb"<meta[^>]+http-equiv\s*=\s*[\"']?content-security-policy", re.IGNORECASE)
_NOTICE = (
    '<div role="status" style="all:initial;display:block;margin:0;padding:6px 12px;'
    "background:#fff3cd;color:#3d2e00;border-bottom:1px solid #e0c36b;"
    'font:15px/1.4 sans-serif;text-align:center">{}</div>'
)


class Notices:
    """Holds the warned child's HTML pages (`responseheaders`) and puts the notice in (`response`).
    After PageScores, which streams every page it does not score: a page to be noticed is held again."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def _wanted(self, flow: http.HTTPFlow, hook: str) -> Left | None:
        """What is left of the asking child's budget, where this response should carry the notice."""
        seen = seen_of(flow, hook)
        response = flow.response
        if seen is None or response is None or seen.standing.left is None:
            return None
        left = seen.standing.left
        if not left.warned or response.status_code != 200:
            return None
        headers = response.headers
        if not _HTML.match(headers.get("content-type", "")):
            return None
        if flow.request.headers.get("sec-fetch-dest", "document") != "document":
            return None  # a frame, a script's fetch: only the page itself
        return left

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None:
            return
        try:
            if self._wanted(flow, "responseheaders") is None:
                return
            size = response.headers.get("content-length")
            limit = self.shared.live.config.proxy.page_limit_kb * 1024
            if size is None or (size.isdigit() and int(size) <= limit):
                response.stream = False  # held (mitmproxy streams it anyway past page_limit_kb)
        except Exception:
            log.exception("deciding on a time notice failed; the page goes as it came")

    def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or response.raw_content is None:
            return
        try:
            left = self._wanted(flow, "response")
            if left is None or not inline_styles_allowed(response.headers):
                # A page that forbids inline styles would refuse the notice's (and report it to the
                # site as a violation): it goes without the notice.
                return
            content = response.content
            if content is None or _META_CSP.search(content[:8192]):
                return  # (a policy in the page itself: not read here, so left alone)
            body = _BODY.search(content)
            if body is None:
                return
            categories = self.shared.live.policy.categories.categories
            notice = _NOTICE.format(escape(notice_text(left, categories))).encode()
            response.content = content[: body.end()] + notice + content[body.end() :]
        except Exception:
            log.exception("adding a time notice failed; the page goes as it came")


def notice_text(left: Left, categories: Mapping[str, Category]) -> str:
    """ "5 minutes of games left today", one part per warned budget."""
    parts = []
    for name in sorted(left.warned):
        if name == INTERNET:
            minutes, what = left.internet or 0, "internet"
        else:
            category = categories.get(name)
            minutes = left.categories.get(name, 0)
            what = category.title.lower() if category is not None else name
        parts.append(f"{minutes} minute{'' if minutes == 1 else 's'} of {what} left today")
    return "; ".join(parts)


def inline_styles_allowed(headers: http.Headers) -> bool:
    """Whether the page's Content-Security-Policy headers (every one must allow it) let an inline
    `style` attribute apply: no style directive at all, or 'unsafe-inline' without nonces or hashes
    (which make browsers ignore 'unsafe-inline')."""
    for policy in headers.get_all("content-security-policy"):
        directives: dict[str, list[str]] = {}
        for part in policy.split(";"):
            words = part.split()
            if words:
                directives.setdefault(words[0].lower(), [w.lower() for w in words[1:]])
        sources = next(
            (directives[d] for d in ("style-src-attr", "style-src", "default-src") if d in directives), None
        )
        if sources is None:
            continue
        if "'unsafe-inline'" not in sources or any(
            s.startswith(("'nonce-", "'sha256-", "'sha384-", "'sha512-")) for s in sources
        ):
            return False
    return True
