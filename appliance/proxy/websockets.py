"""The addon that reads websocket chat: each message a child sends is checked for personal information
and dropped if its profile blocks it (a flag or block is logged); a message that cannot be checked is
dropped for a child."""

from __future__ import annotations

from mitmproxy import http

from appliance.proxy.outbound import websocket_text
from appliance.proxy.shared import KEY, Shared, log, url_now
from profiles.decide import decide
from profiles.request import Request
from profiles.verdict import Action


class Websockets:
    """Decides each websocket message a child sends."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        """A chat message a child sends over a websocket: checked for personal information."""
        seen = flow.metadata.get(KEY)
        if seen is None or flow.websocket is None:
            return
        # mitmproxy keeps every message of the conversation on the flow: only this one is needed.
        del flow.websocket.messages[:-1]
        message = flow.websocket.messages[-1]
        if not message.from_client:
            return
        shared = self.shared
        try:
            if not shared.checks_sent(seen.identity):
                return
            text = websocket_text(message.content, message.is_text)
            if text is None:
                return
            url = url_now(flow, seen)
            verdict = decide(
                Request.web(url, request_type="websocket", outbound_text=text),
                shared.live.policy,
                seen.identity,
                shared.now(),
                seen.standing,
            )
        except Exception:
            shared.errors += 1
            log.exception("checking a websocket message failed")
            if not shared.fails_open(seen.identity):
                message.drop()
            return
        if verdict.action is Action.BLOCK:
            message.drop()
        if verdict.action is Action.BLOCK or verdict.flagged:
            host = seen.host
            shared.log(
                seen.who, verdict, host, "websocket", seen.started, "WS", url, 0, len(message.content), ""
            )
