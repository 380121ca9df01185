"""The addon that scores pages: an HTML page for a profile with phrase limits is held (up to
`proxy.page_limit_kb`; past it mitmproxy streams the rest) and scored whole, and a page over a limit gets
the block page in its place. Every other response is streamed, never held, and its bytes counted for
the log."""

from __future__ import annotations

import re
from collections.abc import Callable

from mitmproxy import http

from appliance.proxy.answers import block, failed
from appliance.proxy.shared import Seen, Shared, seen_of
from profiles.decide import judge_text, with_page
from profiles.verdict import Action

_HTML = re.compile(r"^\s*(text/html|application/xhtml\+xml)", re.IGNORECASE)


class PageScores:
    """Holds or streams each response (`responseheaders`), and scores the held ones (`response`)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        seen = seen_of(flow, "responseheaders")
        response = flow.response
        if seen is None or response is None:
            return
        shared = self.shared
        try:
            rules = shared.live.policy.rules_for(seen.identity.profile)
            headers = response.headers
            size = headers.get("content-length")
            limit = shared.live.config.proxy.page_limit_kb * 1024
            if (
                rules.profile.phrases.limits
                and not rules.profile.bypass
                and _HTML.match(headers.get("content-type", ""))
                and (size is None or (size.isdigit() and int(size) <= limit))
            ):
                # Held (mitmproxy streams it anyway once it passes page_limit_kb) and scored whole.
                seen.score = True
                return
            response.stream = _counter(seen)
        except Exception:
            failed(shared, flow, seen, "responseheaders", streaming=True)

    def response(self, flow: http.HTTPFlow) -> None:
        seen = seen_of(flow, "response")
        if seen is None or not seen.score:
            return
        shared = self.shared
        try:
            if flow.response is not None and flow.response.raw_content is not None:
                seen.score = False
                text = flow.response.get_text(strict=False) or ""
                page = judge_text(text, shared.live.policy, seen.identity)
                if page.action is not Action.ALLOW and seen.verdict is not None:
                    seen.verdict = with_page(seen.verdict, page)
                    if seen.verdict.action is Action.BLOCK:
                        block(shared, flow, seen, seen.verdict)
        except Exception:
            failed(shared, flow, seen, "response")


def _counter(seen: Seen) -> Callable[[bytes], bytes]:
    def count(chunk: bytes) -> bytes:
        seen.sent += len(chunk)
        return chunk

    return count
