"""The addon that answers a request whose site failed (it cannot be reached, refuses or closes the
connection, takes too long, its TLS fails, its answer is broken) with our kind "this site is not
answering" page, for every device, instead of mitmproxy's raw "502 Bad Gateway" page with its error text.

mitmproxy calls the `error` hook and then sends its own error page, whatever the hook did; `send_ours`
(called once by the worker) makes it send the response an addon left on the flow in that hook instead.
Only a request of which nothing from the site has reached the child yet gets the page: a response that
was already on its way is cut as before.
"""

from __future__ import annotations

from typing import Any

from mitmproxy import flow as mflow
from mitmproxy import http

from appliance.pages import not_answering_page
from appliance.proxy.shared import KEY, Shared, log

OURS = "childsafe_error_page"  # in flow.metadata: the response on the flow is our page for its error
_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Connection": "close",  # the site's connection is gone: the child's goes too once the page is sent
}


class ErrorPages:
    """Leaves the "not answering" page on a failed request (`error` hook), for `send_ours` to send."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is None or flow.error.msg == mflow.Error.KILLED_MESSAGE:
            return  # the site's answer was under way, or we closed the connection ourselves
        if flow.request.method == "CONNECT":
            return  # a tunnel's failure is the child's TLS connection's: no page can be shown in it
        try:
            seen = flow.metadata.get(KEY)
            host = seen.host if seen is not None and seen.host else ""
            settings = self.shared.live.config.proxy
            page = not_answering_page(host=host, helpline=settings.helpline, centre=settings.centre)
            flow.response = http.Response.make(502, page, _HEADERS)
            flow.metadata[OURS] = True
        except Exception:
            log.exception("could not make the not-answering page for %s", flow.request.url)


def send_ours() -> None:
    """Make mitmproxy send the response the `error` hook left on a flow (marked `OURS`) in place of its
    own error page, when nothing of the site's answer was sent yet and the child's request is whole.

    Wraps mitmproxy's `HttpStream.handle_protocol_error`; idempotent."""
    from mitmproxy.proxy.layers.http import HttpStream, SendHttp
    from mitmproxy.proxy.layers.http._events import (
        ResponseData,
        ResponseEndOfMessage,
        ResponseHeaders,
        ResponseProtocolError,
    )

    if getattr(HttpStream.handle_protocol_error, "_ours", False):
        return
    original = HttpStream.handle_protocol_error

    def handle_protocol_error(self: Any, event: Any) -> Any:
        steps = original(self, event)
        reply = None
        while True:
            try:
                command = steps.send(reply)
            except StopIteration:
                return
            response = self.flow.response
            if (
                isinstance(command, SendHttp)
                and isinstance(command.event, ResponseProtocolError)
                and command.connection is self.context.client
                and self.flow.metadata.get(OURS)
                and response is not None
                and self.client_state == self.state_done
            ):
                stream = self.stream_id
                yield SendHttp(ResponseHeaders(stream, response, False), self.context.client)
                yield SendHttp(ResponseData(stream, response.raw_content or b""), self.context.client)
                yield SendHttp(ResponseEndOfMessage(stream), self.context.client)
                reply = None
            else:
                reply = yield command

    handle_protocol_error._ours = True  # type: ignore[attr-defined]
    HttpStream.handle_protocol_error = handle_protocol_error  # type: ignore[method-assign]
