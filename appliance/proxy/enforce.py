"""The addon that decides web requests: on their URL, request type and source page (and on the other
site a request was addressed to, if any), with safe search written into what goes on and the block page
in place of a blocked site; bodies a child sends (small forms, JSON, text) are read and checked for
personal information, anything larger is streamed, never held; a switch to a protocol other than
websockets is refused. If deciding raises, a child gets the "temporarily unavailable" page (fail closed)
and a profile with `on_error: allow` (staff) is let through."""

from __future__ import annotations

from mitmproxy import http

from appliance.proxy.answers import block, failed
from appliance.proxy.outbound import outbound_text
from appliance.proxy.resource import request_type, source_url
from appliance.proxy.shared import Shared, help_reason, plain, seen_of, url_now, url_of
from filters.names import is_address
from profiles.connection import named_and_sent, named_by_address, undecidable
from profiles.decide import decide
from profiles.identity import Identity
from profiles.request import Request
from profiles.verdict import Action

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class Enforce:
    """Decides each web request once its head is in, and again on its body where that is read."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        seen = seen_of(flow, "requestheaders")
        if seen is None:
            return
        shared = self.shared
        try:
            request = flow.request
            policy = shared.live.policy
            identity = seen.identity
            host = seen.host
            if not host:
                verdict = undecidable(policy, identity, "a web request that names no usable site")
                seen.verdict = verdict
                if verdict.action is Action.BLOCK:
                    block(shared, flow, seen, verdict)
                return
            path = request.path
            url = url_of(request.scheme, host, request.port, path)
            headers = plain(request.headers)
            source, kind = source_url(headers, url), request_type(headers)
            verdict = decide(
                Request.web(url, source_url=source, request_type=kind),
                policy,
                identity,
                shared.now(),
                seen.standing,
            )
            if is_address(host) and not shared.to_appliance(host):
                verdict = named_by_address(verdict, policy, identity, host)
            if seen.sent_host:
                sent = seen.sent_host
                sent_url = url_of(request.scheme, sent, request.port, path)
                other = decide(
                    Request.web(sent_url, source_url=source, request_type=kind),
                    policy,
                    identity,
                    shared.now(),
                    seen.standing,
                )
                if help_reason(verdict) and other.action is Action.BLOCK:
                    # A help service is never named in a log, nor what was asked of it.
                    seen.host = sent
                    flow.metadata["childsafe_url"] = url_of(request.scheme, sent, request.port, "/")
                verdict = named_and_sent(verdict, other, named_host=host, sent_host=sent)
            seen.verdict = verdict
            if verdict.action is Action.BLOCK:
                block(shared, flow, seen, verdict)
                return
            if verdict.action is Action.REWRITE and verdict.safe_search is not None:
                for name, value in verdict.safe_search.params:
                    request.query[name] = value
                for name, value in verdict.safe_search.headers:
                    request.headers[name] = value
            if request.method in _BODY_METHODS and self._reads_sent(identity, request.headers):
                seen.inspect = True  # read whole (it is small) and checked in `request`
            elif _has_body(request.headers):
                request.stream = True  # never held: only what is checked is read in
        except Exception:
            failed(shared, flow, seen, "requestheaders")

    def _reads_sent(self, identity: Identity, headers: http.Headers) -> bool:
        """Is what this request sends read for personal information (a small form, JSON or text)?"""
        if not self.shared.checks_sent(identity):
            return False
        size = headers.get("content-length")
        limit = self.shared.live.config.proxy.upload_limit_kb * 1024
        if size is None or not size.isdigit() or int(size) > limit:
            return False  # chunked or large: an upload, streamed
        kind = headers.get("content-type", "").lower()
        return kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data", "text/")) or (
            "json" in kind
        )

    def request(self, flow: http.HTTPFlow) -> None:
        """A body read whole (`inspect`): decided again with what it sends."""
        seen = seen_of(flow, "request")
        if seen is None or not seen.inspect:
            return
        shared = self.shared
        try:
            request = flow.request
            text = outbound_text(request.headers.get("content-type", ""), request.raw_content or b"")
            if text is None:
                return
            url = url_now(flow, seen)
            headers = plain(request.headers)
            verdict = decide(
                Request.web(
                    url,
                    source_url=source_url(headers, url),
                    request_type=request_type(headers),
                    outbound_text=text,
                ),
                shared.live.policy,
                seen.identity,
                shared.now(),
                seen.standing,
            )
            seen.verdict = verdict
            if verdict.action is Action.BLOCK:
                block(shared, flow, seen, verdict)
        except Exception:
            failed(shared, flow, seen, "request")

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """A switch to a protocol other than websockets: mitmproxy would relay it raw, undecided."""
        seen = seen_of(flow, "responseheaders")
        response = flow.response
        if seen is None or response is None or response.status_code != 101:
            return
        shared = self.shared
        try:
            rules = shared.live.policy.rules_for(seen.identity.profile)
            if rules.bypass is None and not _websocket(flow.request.headers):
                upgrade = flow.request.headers.get("upgrade", "")[:40] or "an unnamed protocol"
                what = f"a switch from the web to another protocol ({upgrade})"
                seen.verdict = undecidable(shared.live.policy, seen.identity, what)
                seen.done_in = "responseheaders"  # refused: the addons after this one leave it alone
                flow.kill()
        except Exception:
            failed(shared, flow, seen, "responseheaders", streaming=True)


def _websocket(headers: http.Headers) -> bool:
    return "websocket" in headers.get("upgrade", "").lower()


def _has_body(headers: http.Headers) -> bool:
    size = headers.get("content-length", "0")
    return "transfer-encoding" in headers or not size.isdigit() or int(size) > 0
