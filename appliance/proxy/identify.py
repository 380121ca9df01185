"""The addon that says who asks and which site: every web request gets its `Seen` (the device's identity
and asker) and the host it is decided on (appliance/proxy/target.py), and loses any claim of the device's
own to be someone else (the X-Appliance-Client header is ours alone to send)."""

from __future__ import annotations

import time

from mitmproxy import http
from mitmproxy.proxy.mode_specs import TransparentMode

from appliance.forwarding import CLIENT_HEADER
from appliance.proxy.answers import failed
from appliance.proxy.shared import KEY, Seen, Shared
from appliance.proxy.target import request_target
from filters.names import is_address
from filters.urls import canonical_host


class Identify:
    """First of the web-request addons: the others find the request's `Seen` in `flow.metadata[KEY]`."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        shared = self.shared
        now = time.monotonic()
        seen: Seen | None = None
        shared.spoke(flow.client_conn)
        try:
            identity, who, standing = shared.client(flow.client_conn, now)
            seen = Seen(who, identity, now, standing)
            flow.metadata[KEY] = seen
            request = flow.request
            headers = request.headers
            # Who asked is named to the appliance's own pages by us alone (signed), never by a client.
            if CLIENT_HEADER in headers:
                del headers[CLIENT_HEADER]
            transparent = isinstance(flow.client_conn.proxy_mode, TransparentMode)
            target = request_target(
                address=request.host,
                host_header=request.host_header,
                address_is_chosen=transparent and is_address(canonical_host(request.host)),
            )
            if not target.decided:
                return  # decided as naming no usable site (appliance/proxy/enforce.py)
            seen.host = target.decided
            seen.sent_host = target.sent
            request.data.host = seen.host  # connected to the decided name (resolved in server_connect)
        except Exception:
            failed(shared, flow, seen, "requestheaders")
