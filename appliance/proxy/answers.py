"""The appliance's answers in place of a site: its own pages, the block page (with the report form) and,
when deciding fails, the "temporarily unavailable" page for a child (fail closed)."""

from __future__ import annotations

import time

from mitmproxy import http

from appliance.pages import ASK_PATH, ReportForm, ask_offered, block_page, unavailable_page
from appliance.proxy.report import REPORT_PATH, Blocked, blocked_summary, make_token
from appliance.proxy.shared import Seen, Shared, log, url_of
from profiles.verdict import Verdict

_PAGE_HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


def answer(flow: http.HTTPFlow, seen: Seen | None, status: int, body: str | bytes, kind: str = "") -> None:
    """Answer `flow` ourselves (`kind`: the content type, HTML by default); the site is not asked."""
    headers = dict(_PAGE_HEADERS)
    if kind:
        headers["Content-Type"] = kind
    flow.response = http.Response.make(status, body, headers)
    if seen is not None:
        seen.ours = True


def block(
    shared: Shared, flow: http.HTTPFlow, seen: Seen, verdict: Verdict, *, streaming: bool = False
) -> None:
    """The block page for `verdict`, with a report form (a signed token) where the request named a site."""
    settings = shared.live.config.proxy
    host = seen.host
    form: ReportForm | None = None
    ask: ReportForm | None = None
    if host:  # a request that named no site has nowhere to post a report to
        blocked = Blocked(host, blocked_summary(verdict), time.time(), seen.who.client)
        token = make_token(shared.authority.report_key, blocked)
        form = ReportForm(url_of(flow.request.scheme, host, flow.request.port, REPORT_PATH), token)
        if ask_offered(verdict):  # the same signed token, to "ask to use this site" (own_pages.py)
            ask = ReportForm(url_of(flow.request.scheme, host, flow.request.port, ASK_PATH), token)
    categories = shared.live.policy.categories.categories
    page = block_page(
        verdict,
        categories,
        host or "this site",
        report=form,
        helpline=settings.helpline,
        centre=settings.centre,
        ask=ask,
        left=seen.standing.left,
    )
    replace(shared, flow, seen, 403, page, streaming)


def replace(
    shared: Shared, flow: http.HTTPFlow, seen: Seen | None, status: int, page: str, streaming: bool
) -> None:
    """Answer with `page` in place of the site. `streaming`: the origin's answer headers are in
    (responseheaders), so ours go out instead and its body is dropped as it comes."""
    if streaming:
        answer(flow, seen, status, page)
        assert flow.response is not None
        body = flow.response.raw_content or b""
        flow.response.stream = lambda chunk: body if chunk == b"" else b""
        return
    request = flow.request
    size = request.headers.get("content-length", "0")
    if flow.response is None and (
        request.stream
        or "transfer-encoding" in request.headers
        or not size.isdigit()
        or int(size) > shared.live.config.proxy.page_limit_kb * 1024
    ):
        # A large upload to a blocked place: it is not read in, the connection is closed.
        if seen is not None:
            seen.ours = True
        flow.kill()
        return
    answer(flow, seen, status, page)


def failed(
    shared: Shared, flow: http.HTTPFlow, seen: Seen | None, hook: str, *, streaming: bool = False
) -> None:
    """Deciding raised in `hook`: fail closed for children (the "temporarily unavailable" page), open for
    a profile with `on_error: allow`; either way the addons after this one leave the flow alone in `hook`.
    Logged either way; the connection is always answered. `streaming` as for `replace`."""
    shared.errors += 1
    log.exception("deciding %s failed", flow.request.url)
    if seen is not None:
        seen.done_in = hook
        if shared.fails_open(seen.identity):
            return
    settings = shared.live.config.proxy
    page = unavailable_page(helpline=settings.helpline, centre=settings.centre)
    try:
        replace(shared, flow, seen, 503, page, streaming)
    except Exception:
        log.exception("could not answer with the unavailable page; closing the connection")
        flow.kill()
