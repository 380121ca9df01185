"""The addon that decides connections before any request: a CONNECT target like any request (refused
before anything is contacted); TLS from devices the appliance may not decrypt on the ClientHello's name
(in `next_layer`, so a blocked name is cut before anything reaches the site; on a device's own phone
that may trust the centre's certificate, proxy/trust.py, intercepted to show the block page instead), a
TLS name that differs from the CONNECT target on the strictest reading (flagged as a way round the
filter); anything that is neither HTTP nor TLS, and TLS without a name in transparent mode, refused
for children and logged (`proxy.raw_services` lists approved exceptions)."""

from __future__ import annotations

import time

from mitmproxy import http
from mitmproxy.proxy import commands, events, layer, layers
from mitmproxy.proxy.layer import Layer
from mitmproxy.proxy.layers.tls import parse_client_hello
from mitmproxy.proxy.mode_specs import TransparentMode

from appliance.proxy.shared import Shared, help_reason, log
from appliance.proxy.target import usable_host
from filters.names import is_address
from filters.urls import canonical_host
from profiles.connection import named_and_sent, named_by_address, undecidable
from profiles.decide import decide, may_intercept
from profiles.identity import Identity
from profiles.request import Channel, Request
from profiles.verdict import Action

# Layers that relay bytes mitmproxy cannot read as HTTP or TLS: never chosen for a child unless the
# centre approved the service (proxy.raw_services).
_RAW_LAYERS = tuple(
    getattr(layers, name)
    for name in ("TCPLayer", "UDPLayer", "DNSLayer", "RawQuicLayer")
    if hasattr(layers, name)
)


class Cut(Layer):
    """Closes the client's connection: a blocked TLS name, before anything reaches the site."""

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Start | events.DataReceived):
            yield commands.CloseConnection(self.context.client)


class Connections:
    """Decides CONNECT targets, TLS names and traffic that is not the web."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """A CONNECT (regular mode): the target is decided like any request, and a blocked one is refused
        before anything is contacted. What is inside is decided in `next_layer` (TLS, or nothing else)."""
        shared = self.shared
        now = time.monotonic()
        identity: Identity | None = None
        request = flow.request
        shared.spoke(flow.client_conn)
        try:
            identity, who, standing = shared.client(flow.client_conn, now)
            host = canonical_host(request.host)
            request.data.host = host  # mitmproxy connects the tunnel to `request.host`
            policy = shared.live.policy
            if may_intercept(policy, identity):
                return  # a centre device: the block page is shown inside the tunnel, request by request
            verdict = decide(Request(host, None, Channel.TLS), policy, identity, shared.now(), standing)
        except Exception:
            shared.errors += 1
            log.exception("deciding a CONNECT failed")
            if not shared.fails_open(identity):
                flow.response = http.Response.make(503, b"The centre's filter cannot decide this just now.\n")
            return
        if verdict.action is Action.BLOCK:
            if (
                not is_address(host)
                and shared.trust.trusts(who.client, now) is not False
                and shared.own_device(identity)
            ):
                return  # a device's own phone that may trust our certificate: decided on its TLS name
            flow.response = http.Response.make(
                403, b"Blocked by the centre's filter.\n", {"Content-Type": "text/plain; charset=utf-8"}
            )
            target = f"{host}:{request.port}"
            shared.log(who, verdict, host, "connect", now, "CONNECT", target, 403, 0, "")
            shared.count(identity, standing, verdict)

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        """What a new connection (or a CONNECT tunnel) carries: TLS is decided on its name here; anything
        that is neither HTTP nor TLS is refused for children."""
        chosen = nextlayer.layer
        context = nextlayer.context
        if isinstance(chosen, layers.ServerTLSLayer | layers.ClientTLSLayer):
            if not (context.client.tls_established or context.server.tls_established):
                self._tls(nextlayer)
        elif isinstance(chosen, _RAW_LAYERS):
            self._raw(nextlayer)

    def _raw(self, nextlayer: layer.NextLayer) -> None:
        shared = self.shared
        context = nextlayer.context
        now = time.monotonic()
        identity: Identity | None = None
        address = context.server.address
        host = canonical_host(str(address[0])) if address else ""
        port = int(address[1]) if address else 0
        shared.spoke(context.client)
        try:
            identity, who, standing = shared.client(context.client, now)
            policy = shared.live.policy
            if (host, port) in shared.live.config.proxy.raw_services:
                verdict = decide(Request(host, None, Channel.TLS), policy, identity, shared.now(), standing)
            else:
                what = f"traffic that is neither web nor TLS, to {host or 'an unknown host'}:{port}"
                verdict = undecidable(policy, identity, what)
        except Exception:
            shared.errors += 1
            log.exception("deciding a connection failed")
            if not shared.fails_open(identity):
                nextlayer.layer = Cut(context)
            return
        if verdict.action is Action.BLOCK:
            nextlayer.layer = Cut(context)
        if shared.help_service(host):
            return  # refused all the same, and never named in a log
        shared.log(
            who,
            verdict,
            host,
            "raw",
            now,
            "RAW",
            f"{host}:{port}",
            0 if verdict.action is Action.BLOCK else 200,
            0,
            "",
        )

    def _tls(self, nextlayer: layer.NextLayer) -> None:
        shared = self.shared
        context = nextlayer.context
        try:
            hello = parse_client_hello(nextlayer.data_client())
        except Exception:
            hello = None  # looked like TLS and is not: judged below as a connection that names no site
        else:
            if hello is None:
                nextlayer.layer = None  # wait for the whole ClientHello
                return
        now = time.monotonic()
        identity: Identity | None = None
        own = False  # a blocked name of this connection may be intercepted to show the block page
        shared.spoke(context.client)
        address = context.server.address
        port = int(address[1]) if address else 443
        try:
            identity, who, standing = shared.client(context.client, now)
            transparent = isinstance(context.client.proxy_mode, TransparentMode)
            sent = canonical_host(str(address[0])) if address else ""
            if transparent and is_address(sent):
                sent = ""  # the address the device connected to: not a name it named
            named = (usable_host(hello.sni) or "") if hello is not None and hello.sni else ""
            policy = shared.live.policy
            if hello is None:
                verdict = undecidable(policy, identity, "traffic that looks like TLS and is not")
                host = sent
            elif not named and not sent:
                verdict = undecidable(policy, identity, "a TLS connection that names no site")
                host = ""
            else:
                host = named or sent
                context.server.address = (host, port)  # connected to the decided name, resolved by us
                intercepted = may_intercept(policy, identity)
                mismatch = bool(named and sent and named != sent)
                if intercepted and not mismatch:
                    return  # decrypted: every request inside is decided on its own
                # Naming one site, by name: on a child's or guest's own device, the block page if it
                # trusts our certificate (Shared.own_device). The centre's devices and staff's as before.
                own = not mismatch and bool(named) and not is_address(host)
                verdict = decide(Request(host, None, Channel.TLS), policy, identity, shared.now(), standing)
                if is_address(host):
                    verdict = named_by_address(verdict, policy, identity, host)
                if mismatch:
                    other = decide(Request(sent, None, Channel.TLS), policy, identity, shared.now(), standing)
                    if help_reason(verdict) and other.action is Action.BLOCK:
                        host = sent  # a help service is never named in a log
                    verdict = named_and_sent(verdict, other, named_host=named, sent_host=sent)
                if intercepted and verdict.action is not Action.BLOCK:
                    shared.log(who, verdict, host, "tls", now, "CONNECT", f"https://{host}/", 200, 0, "")
                    shared.count(identity, standing, verdict)
                    return
        except Exception:
            shared.errors += 1
            log.exception("deciding a TLS connection failed")
            if not shared.fails_open(identity):
                nextlayer.layer = Cut(context)
            else:
                nextlayer.layer = layers.TCPLayer(context, ignore=True)
            return
        shown = False
        if verdict.action is Action.BLOCK:
            shown = (
                own
                and shared.own_device(identity)
                and shared.trust.may_show_certificate(who.client, context.client.id, now)
            )
            if not shown:
                nextlayer.layer = Cut(context)
            status = 0
        else:
            nextlayer.layer = layers.TCPLayer(context, ignore=True)
            status = 200
        if shared.help_service(host) and verdict.action is Action.BLOCK:
            if shown:
                nextlayer.layer = Cut(context)  # (broken TLS to a help service) never intercepted
            return  # refused, never named in a log
        # A device that may trust our certificate (proxy/trust.py) is left to mitmproxy to intercept:
        # the block page is shown inside, and nothing is sent to the site. The attempt is logged here
        # either way, as one whose TLS was cut.
        shared.log(who, verdict, host, "tls", now, "CONNECT", f"https://{host or 'unnamed'}/", status, 0, "")
        shared.count(identity, standing, verdict)
