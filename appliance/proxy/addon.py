"""The monitoring addon: every connection and web request through mitmproxy is identified, decided,
acted on and logged.

One decision per connection, on what is actually connected to: a CONNECT target is decided like any
request; TLS from devices the appliance may not decrypt is decided on the ClientHello's name (in
`next_layer`, so a blocked name is cut before anything reaches the site), and a TLS name that differs from
the CONNECT target is decided on the strictest reading and flagged as a way round the filter; a web request
is decided on the site it names (Host header) and, if it was addressed to another, on that too
(appliance/proxy/target.py). The connection then goes to the decided name as the appliance resolves it for
that device (`server_connect`, appliance/dns/resolution.py), never to an address the client chose.
Anything that is neither HTTP nor TLS, TLS without a name in transparent mode and a request without a
usable host are refused for children and logged (`proxy.raw_services` lists approved exceptions).

Web requests (plain HTTP, and HTTPS of centre-managed devices whose profile allows interception) are
decided on their URL, request type and source page; bodies a child sends are read for personal
information; HTML pages are scored against the profile's phrase limits (up to `page_limit_kb`: larger
pages and every other type are streamed, never held); downloads are judged by their name too.

If deciding raises, a child's request gets the "temporarily unavailable" page (fail closed) and a
profile with `on_error: allow` (staff) is let through; either way the error is logged and the
connection is answered, never left hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from mitmproxy import http
from mitmproxy.connection import Client
from mitmproxy.proxy import commands, events, layer, layers, server_hooks
from mitmproxy.proxy.layer import Layer
from mitmproxy.proxy.layers.tls import parse_client_hello
from mitmproxy.proxy.mode_specs import TransparentMode

from appliance.config.proxy import ProxySettings
from appliance.events.recording import EventLog
from appliance.events.values import Answer, Asker
from appliance.forwarding import CLIENT_HEADER, forwarding_key, stamp
from appliance.in_force.follower import HAND_OVER_S, WATCH_S, Follower
from appliance.in_force.live import IDENTITY_TTL, Live, asker_of
from appliance.net import Neighbours, is_own_address, split_host_port
from appliance.pages import ReportForm, block_page, certificate_page, reported_page, unavailable_page
from appliance.proxy.ca import Authority
from appliance.proxy.limits import Admission
from appliance.proxy.outbound import outbound_text, websocket_text
from appliance.proxy.report import (
    REPORT_PATH,
    Blocked,
    SpentTokens,
    blocked_summary,
    make_token,
    read_token,
)
from appliance.proxy.resource import request_type, source_url
from appliance.proxy.target import local_and_unlisted, request_target, usable_host
from appliance.resolver.cache import RecordCache
from appliance.resolver.resolution import Resolver
from appliance.resolver.upstream import Upstreams, UpstreamSettings
from filters.names import is_address
from filters.urls import canonical_host
from profiles.connection import named_and_sent, named_by_address, undecidable
from profiles.decide import child_report, decide, judge_text, may_intercept, with_page
from profiles.identity import Identity
from profiles.policy import Special
from profiles.profile import OnError
from profiles.request import Channel, Request
from profiles.search_terms import extract_search
from profiles.verdict import Action, Step, Verdict

log = logging.getLogger("appliance.proxy")

KEY = "childsafe"  # our state in flow.metadata
_PORTAL = Special.PORTAL
# The event's channel by what the addon logged: a tunnel's decision is a TLS one; raw traffic is "tcp".
_CHANNELS = {"tls": "tls", "connect": "tls", "raw": "tcp"}
OWN_ADDRESSES_EVERY = 30  # watch ticks between fresh looks at the appliance's own addresses
REPORT_MAX_BYTES = 16 * 1024  # a report form: a token and a note of at most 500 characters
_HTML = re.compile(r"^\s*(text/html|application/xhtml\+xml)", re.IGNORECASE)
_FILENAME = re.compile(r"""filename\*?\s*=\s*(?:UTF-8'[^']*')?"?([^";]+)""", re.IGNORECASE)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PAGE_HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
_CA_PATHS = frozenset({"/ca", "/ca/", "/ca.pem", "/ca.crt", "/ca.der", "/ca.cer"})
_NOT_SENT = (
    "<!doctype html><title>Not sent</title>"
    "<p>This report could not be sent. Please ask a member of staff.</p>"
)
# Layers that relay bytes mitmproxy cannot read as HTTP or TLS: never chosen for a child unless the
# centre approved the service (proxy.raw_services).
_RAW_LAYERS = tuple(
    getattr(layers, name)
    for name in ("TCPLayer", "UDPLayer", "DNSLayer", "RawQuicLayer")
    if hasattr(layers, name)
)


class Seen:
    """What the addon knows of one flow between its hooks."""

    __slots__ = (
        "host",
        "identity",
        "inspect",
        "ours",
        "report",
        "score",
        "sent",
        "started",
        "verdict",
        "who",
    )

    def __init__(self, who: Asker, identity: Identity, started: float) -> None:
        self.who = who
        self.identity = identity
        self.started = started
        self.host = ""  # the host decided on (and connected to)
        self.verdict: Verdict | None = None
        self.ours = False  # the response is ours (block page, report, certificate)
        self.inspect = False  # the request body is read for personal information
        self.report = False  # the block page's report form, read in `request` (with its body)
        self.score = False  # the response is an HTML page to score
        self.sent = 0  # bytes of a streamed response


class Cut(Layer):
    """Closes the client's connection: a blocked TLS name, before anything reaches the site."""

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Start | events.DataReceived):
            yield commands.CloseConnection(self.context.client)


def make_resolver(live: Live) -> Resolver:
    """Filtered resolution over the DNS filter's upstreams (dns.upstreams, else the machine's own)."""
    from appliance.resolver.upstream import parse_listen, upstream_servers  # the DNS filter's own choice

    dns = live.config.dns
    servers = upstream_servers(live, parse_listen(dns.listen))
    settings = UpstreamSettings(servers, dns.try_timeout_s, dns.servfail_after_s)
    return Resolver(Upstreams(settings, RecordCache(dns.cache)))


def _url(scheme: str, host: str, port: int, path: str) -> str:
    default = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}{'' if port == default else f':{port}'}{path or '/'}"


class Monitor:
    """The mitmproxy addon. One per proxy worker; everything it reads is swapped whole on reload."""

    def __init__(
        self,
        live: Live,
        authority: Authority,
        events_log: EventLog | None,
        config_path: Path | None = None,
        neighbours: Neighbours | None = None,
        *,
        resolver: Resolver | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.follower = Follower(live, role="proxy", config_path=config_path, events=events_log, log=log)
        self.authority = authority
        self.events = events_log
        self.config_path = config_path
        self.neighbours = neighbours or Neighbours(live.config.dns.leases)
        self.neighbours.refresh()
        self.resolver = resolver or make_resolver(live)
        self.admission = admission
        self.forwarding = forwarding_key(live.config.data_dir)
        self.spent = SpentTokens(live.config.data_dir / "reports-spent")
        self._clients: dict[str, tuple[float, Identity, Asker]] = {}
        self._whats: dict[tuple[int, str, str], tuple[Verdict, Answer]] = {}
        self.errors = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._ticks = 0

    # ---- lifetime ----

    @property
    def live(self) -> Live:
        """The policy in force (the follower swaps it whole on reload)."""
        return self.follower.live

    @property
    def reloads(self) -> int:
        return self.follower.reloads

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self.follower.hand_over_every(HAND_OVER_S, self._bound)))
        self._tasks.append(loop.create_task(self.follower.watch(WATCH_S, self._tick, self._reloaded)))

    def done(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.follower.close()
        if self.events is not None:
            self.events.hand_over()
            self.events.close()

    def follow_bindings(self) -> None:
        """Hand the events over and take in a sign-in, sign-out or device change from the store (as the
        follower does every HAND_OVER_S)."""
        bound = self.follower.hand_over(time.time())
        if bound is not None:
            self._bound(bound)

    def _bound(self, _: object) -> None:
        self._clients.clear()

    def _tick(self) -> None:
        """Every WATCH_S, before the follower looks at the files."""
        self._ticks += 1
        if self._ticks % OWN_ADDRESSES_EVERY == 0:
            is_own_address.cache_clear()  # the WAN address may change (a new DHCP lease)
        if self.neighbours.refresh():
            self._clients.clear()

    async def reload(self) -> bool:
        """Load configuration, lists and policy anew and swap them in; on error keep the running ones
        (and record why, in `follower.reload_errors`)."""
        new = await self.follower.reload()
        if new is None:
            return False
        self._reloaded(new)
        return True

    def _reloaded(self, new: Live) -> None:
        self.resolver = make_resolver(new)
        self._clients.clear()
        self._whats.clear()
        log.info("reloaded: %d profiles", len(new.policy.profiles))

    # ---- who ----

    def _who(self, client: Client, now: float) -> tuple[Identity, Asker]:
        ip = client.peername[0] if client.peername else ""
        if ip.startswith("::ffff:"):
            ip = ip[7:]
        known = self._clients.get(ip)
        if known is not None and known[0] > now:
            if known[1].child is not None and self.events is not None:
                self.events.seen.add((known[1].child.id, ip))  # in use: the session is not idle
            return known[1], known[2]
        identity = self.live.identify(ip, self.neighbours.mac_of(ip))
        who = asker_of(ip, identity, known[1:] if known is not None else None)
        if len(self._clients) >= 65_536:
            self._clients.clear()
        self._clients[ip] = (now + IDENTITY_TTL, identity, who)
        return identity, who

    def _now(self) -> datetime:
        return datetime.now(self.live.zone)

    def _fails_open(self, identity: Identity | None) -> bool:
        if identity is None:
            return False
        try:
            return self.live.policy.rules_for(identity.profile).profile.on_error is OnError.ALLOW
        except Exception:
            return False

    @staticmethod
    def _url_now(flow: http.HTTPFlow, seen: Seen) -> str:
        """The request's URL on its decided host, with its query as it is now (safe search adds to it)."""
        request = flow.request
        return _url(request.scheme, seen.host, request.port, request.path) if seen.host else request.url

    def _spoke(self, client: Client) -> None:
        if self.admission is not None:
            self.admission.spoke(client.peername)

    # ---- where a connection goes ----

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Connect to the decided name as the appliance resolves it for this device (appliance/dns/
        resolution.py): never to an address the device chose, never to a blocked name or one whose
        answer leads to a blocked name. The appliance itself (loopback, any of its own addresses) is
        reached only on the portal's port and `reachable_local_ports`, and the portal's port only by the
        portal's names or the appliance's own address: a name that merely resolves to the appliance is
        refused there (DNS rebinding)."""
        address = data.server.address
        if address is None:
            return
        host, port = canonical_host(str(address[0])), int(address[1])
        identity: Identity | None = None
        try:
            identity, who = self._who(data.client, time.monotonic())
            portal = False
            if is_address(host):
                candidates: tuple[str, ...] = (host,)
            else:
                resolved = await self.resolver.resolve(host, identity, self.live)
                if resolved.blocked is not None:
                    data.server.error = f"{host} is blocked for this device"
                    self._log(
                        who,
                        resolved.blocked,
                        host,
                        "connect",
                        time.monotonic(),
                        "CONNECT",
                        f"{host}:{port}",
                        0,
                        0,
                        "",
                    )
                    return
                if not resolved.addresses:
                    data.server.error = f"cannot resolve {host}: {resolved.error}"
                    return
                candidates = resolved.addresses
                portal = bool(resolved.verdict.reasons) and resolved.verdict.reasons[0].step is Step.PORTAL
            if any(is_own_address(a) for a in candidates):
                if not self._may_reach_self(port, by_name=portal or is_address(host)):
                    data.server.error = (
                        f"{host}:{port} is the appliance itself: not reachable through its proxy"
                    )
                    log.warning(
                        "refused a connection to the appliance itself (%s:%d) for %s", host, port, who.client
                    )
                    return
            elif self._local_refused(candidates[0], identity):
                # The centre's own networks (staff PCs, the Internet router's admin page) are not the web.
                data.server.error = (
                    f"{host}:{port} is on the centre's own network: not reachable for children"
                )
                what = f"an address on the centre's own network ({candidates[0]})"
                verdict = undecidable(self.live.policy, identity, what)
                self._log(
                    who, verdict, host, "connect", time.monotonic(), "CONNECT", f"{host}:{port}", 0, 0, ""
                )
                return
            data.server.address = (candidates[0], port)
        except Exception:
            self.errors += 1
            log.exception("resolving %s failed", host)
            if not self._fails_open(identity):
                data.server.error = f"cannot connect to {host}: the appliance failed to decide"

    def _may_reach_self(self, port: int, *, by_name: bool) -> bool:
        """May a connection go to the appliance's own `port`? `by_name`: it was asked for by a portal
        name or the appliance's own address (not by some name that resolves here)."""
        config = self.live.config
        if port in config.proxy.reachable_local_ports:
            return True
        with contextlib.suppress(ValueError):
            return by_name and port == split_host_port(config.dashboard.listen, 80)[1]
        return False

    def _local_refused(self, address: str, identity: Identity) -> bool:
        """Is `address` a local network's (not listed in proxy.reachable_networks) and the asker no staff?"""
        if not local_and_unlisted(address, self.live.config.proxy.reachable_networks):
            return False
        return self.live.policy.rules_for(identity.profile).bypass is None

    def _help_service(self, host: str) -> bool:
        return bool(host) and self.live.policy.host_facts(host).special is Special.HELP

    def _to_appliance(self, host: str) -> bool:
        """Is `host` the appliance's own pages (a portal name, or one of its own addresses)?"""
        if is_address(host):
            return is_own_address(host)
        return self.live.policy.host_facts(host).special is _PORTAL

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """A CONNECT (regular mode): the target is decided like any request, and a blocked one is refused
        before anything is contacted. What is inside is decided in `next_layer` (TLS, or nothing else)."""
        now = time.monotonic()
        identity: Identity | None = None
        request = flow.request
        self._spoke(flow.client_conn)
        try:
            identity, who = self._who(flow.client_conn, now)
            host = canonical_host(request.host)
            request.data.host = host  # mitmproxy connects the tunnel to `request.host`
            if may_intercept(self.live.policy, identity):
                return  # a centre device: the block page is shown inside the tunnel, request by request
            verdict = decide(Request(host, None, Channel.TLS), self.live.policy, identity, self._now())
        except Exception:
            self.errors += 1
            log.exception("deciding a CONNECT failed")
            if not self._fails_open(identity):
                flow.response = http.Response.make(503, b"The centre's filter cannot decide this just now.\n")
            return
        if verdict.action is Action.BLOCK:
            flow.response = http.Response.make(
                403, b"Blocked by the centre's filter.\n", {"Content-Type": "text/plain; charset=utf-8"}
            )
            target = f"{host}:{request.port}"
            self._log(who, verdict, host, "connect", now, "CONNECT", target, 403, 0, "")

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
        context = nextlayer.context
        now = time.monotonic()
        identity: Identity | None = None
        address = context.server.address
        host = canonical_host(str(address[0])) if address else ""
        port = int(address[1]) if address else 0
        self._spoke(context.client)
        try:
            identity, who = self._who(context.client, now)
            policy = self.live.policy
            if (host, port) in self.live.config.proxy.raw_services:
                verdict = decide(Request(host, None, Channel.TLS), policy, identity, self._now())
            else:
                what = f"traffic that is neither web nor TLS, to {host or 'an unknown host'}:{port}"
                verdict = undecidable(policy, identity, what)
        except Exception:
            self.errors += 1
            log.exception("deciding a connection failed")
            if not self._fails_open(identity):
                nextlayer.layer = Cut(context)
            return
        if verdict.action is Action.BLOCK:
            nextlayer.layer = Cut(context)
        if self._help_service(host):
            return  # refused all the same, and never named in a log
        self._log(
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
        self._spoke(context.client)
        address = context.server.address
        port = int(address[1]) if address else 443
        try:
            identity, who = self._who(context.client, now)
            transparent = isinstance(context.client.proxy_mode, TransparentMode)
            sent = canonical_host(str(address[0])) if address else ""
            if transparent and is_address(sent):
                sent = ""  # the address the device connected to: not a name it named
            named = (usable_host(hello.sni) or "") if hello is not None and hello.sni else ""
            policy = self.live.policy
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
                verdict = decide(Request(host, None, Channel.TLS), policy, identity, self._now())
                if is_address(host):
                    verdict = named_by_address(verdict, policy, identity, host)
                if mismatch:
                    other = decide(Request(sent, None, Channel.TLS), policy, identity, self._now())
                    if _help(verdict) and other.action is Action.BLOCK:
                        host = sent  # a help service is never named in a log
                    verdict = named_and_sent(verdict, other, named_host=named, sent_host=sent)
                if intercepted and verdict.action is not Action.BLOCK:
                    self._log(who, verdict, host, "tls", now, "CONNECT", f"https://{host}/", 200, 0, "")
                    return
        except Exception:
            self.errors += 1
            log.exception("deciding a TLS connection failed")
            if not self._fails_open(identity):
                nextlayer.layer = Cut(context)
            else:
                nextlayer.layer = layers.TCPLayer(context, ignore=True)
            return
        if verdict.action is Action.BLOCK:
            nextlayer.layer = Cut(context)
            status = 0
        else:
            nextlayer.layer = layers.TCPLayer(context, ignore=True)
            status = 200
        if self._help_service(host) and verdict.action is Action.BLOCK:
            return  # (broken TLS to a help service) refused, never named in a log
        self._log(who, verdict, host, "tls", now, "CONNECT", f"https://{host or 'unnamed'}/", status, 0, "")

    # ---- web requests ----

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        now = time.monotonic()
        seen: Seen | None = None
        self._spoke(flow.client_conn)
        try:
            identity, who = self._who(flow.client_conn, now)
            seen = Seen(who, identity, now)
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
            policy = self.live.policy
            if not target.decided:
                verdict = undecidable(policy, identity, "a web request that names no usable site")
                seen.verdict = verdict
                seen.host = ""
                if verdict.action is Action.BLOCK:
                    self._block(flow, seen, verdict)
                return
            host = seen.host = target.decided
            request.data.host = host  # connected to the decided name (resolved in server_connect)
            path = request.path
            url = _url(request.scheme, host, request.port, path)
            if self._to_appliance(host):
                headers[CLIENT_HEADER] = stamp(self.forwarding, who.client, time.time())
            if self._own_pages(flow, seen, path):
                return
            plain = _plain(headers)
            source, kind = source_url(plain, url), request_type(plain)
            verdict = decide(
                Request.web(url, source_url=source, request_type=kind), policy, identity, self._now()
            )
            if is_address(host) and not self._to_appliance(host):
                verdict = named_by_address(verdict, policy, identity, host)
            if target.sent:
                sent_url = _url(request.scheme, target.sent, request.port, path)
                other = decide(
                    Request.web(sent_url, source_url=source, request_type=kind), policy, identity, self._now()
                )
                if _help(verdict) and other.action is Action.BLOCK:
                    # A help service is never named in a log, nor what was asked of it.
                    seen.host = target.sent
                    flow.metadata["childsafe_url"] = _url(request.scheme, target.sent, request.port, "/")
                verdict = named_and_sent(verdict, other, named_host=host, sent_host=target.sent)
            seen.verdict = verdict
            if verdict.action is Action.BLOCK:
                self._block(flow, seen, verdict)
                return
            if verdict.action is Action.REWRITE and verdict.safe_search is not None:
                for name, value in verdict.safe_search.params:
                    request.query[name] = value
                for name, value in verdict.safe_search.headers:
                    headers[name] = value
            if request.method in _BODY_METHODS and self._reads_sent(identity, headers):
                seen.inspect = True  # read whole (it is small) and checked in `request`
            elif _has_body(headers):
                request.stream = True  # never held: only what is checked is read in
        except Exception:
            self._failed(flow, seen)

    def _checks_sent(self, identity: Identity) -> bool:
        """Does this profile have what a child sends checked for personal information?"""
        profile = self.live.policy.rules_for(identity.profile).profile
        return profile.personal_info.action is not Action.ALLOW and not profile.bypass

    def _reads_sent(self, identity: Identity, headers: http.Headers) -> bool:
        """Is what this request sends read for personal information (a small form, JSON or text)?"""
        if not self._checks_sent(identity):
            return False
        size = headers.get("content-length")
        limit = self.live.config.proxy.upload_limit_kb * 1024
        if size is None or not size.isdigit() or int(size) > limit:
            return False  # chunked or large: an upload, streamed
        kind = headers.get("content-type", "").lower()
        return kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data", "text/")) or (
            "json" in kind
        )

    def request(self, flow: http.HTTPFlow) -> None:
        seen = flow.metadata.get(KEY)
        if seen is None:
            return
        if seen.report:
            self._report(flow, seen)
            return
        if seen.ours or not seen.inspect:
            return
        try:
            request = flow.request
            text = outbound_text(request.headers.get("content-type", ""), request.raw_content or b"")
            if text is None:
                return
            url = self._url_now(flow, seen)
            plain = _plain(request.headers)
            verdict = decide(
                Request.web(
                    url,
                    source_url=source_url(plain, url),
                    request_type=request_type(plain),
                    outbound_text=text,
                ),
                self.live.policy,
                seen.identity,
                self._now(),
            )
            seen.verdict = verdict
            if verdict.action is Action.BLOCK:
                self._block(flow, seen, verdict)
        except Exception:
            self._failed(flow, seen)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        seen = flow.metadata.get(KEY)
        response = flow.response
        if seen is None or response is None or seen.ours:
            return
        try:
            rules = self.live.policy.rules_for(seen.identity.profile)
            headers = response.headers
            if response.status_code == 101 and rules.bypass is None and not _websocket(flow.request.headers):
                # A switch to a protocol other than websockets: mitmproxy would relay it raw, undecided.
                upgrade = flow.request.headers.get("upgrade", "")[:40] or "an unnamed protocol"
                what = f"a switch from the web to another protocol ({upgrade})"
                seen.verdict = undecidable(self.live.policy, seen.identity, what)
                flow.kill()
                return
            disposition = headers.get("content-disposition")
            if disposition and rules.downloads:
                blocked = self._download(flow, seen, disposition)
                if blocked:
                    return
            size = headers.get("content-length")
            limit = self.live.config.proxy.page_limit_kb * 1024
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
            self._failed(flow, seen, streaming=True)

    def _download(self, flow: http.HTTPFlow, seen: Seen, disposition: str) -> bool:
        """A file the child would save: judged by its name as a navigation to it. True if blocked."""
        found = _FILENAME.search(disposition)
        if found is None:
            return False
        name = found.group(1).strip().rsplit("/", 1)[-1]
        url = _url(flow.request.scheme, seen.host, flow.request.port, f"/{name}")
        verdict = decide(Request.web(url), self.live.policy, seen.identity, self._now())
        if verdict.action is not Action.BLOCK or not any(r.step is Step.DOWNLOAD for r in verdict.reasons):
            return False
        seen.verdict = verdict
        self._block(flow, seen, verdict, streaming=True)
        return True

    def response(self, flow: http.HTTPFlow) -> None:
        seen = flow.metadata.get(KEY)
        if seen is None:
            return
        try:
            if seen.score and flow.response is not None and flow.response.raw_content is not None:
                seen.score = False
                text = flow.response.get_text(strict=False) or ""
                page = judge_text(text, self.live.policy, seen.identity)
                if page.action is not Action.ALLOW and seen.verdict is not None:
                    seen.verdict = with_page(seen.verdict, page)
                    if seen.verdict.action is Action.BLOCK:
                        self._block(flow, seen, seen.verdict)
        except Exception:
            self._failed(flow, seen)
        self._log_flow(flow, seen)

    def error(self, flow: http.HTTPFlow) -> None:
        seen = flow.metadata.get(KEY)
        if seen is not None:
            self._log_flow(flow, seen)

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
        try:
            if not self._checks_sent(seen.identity):
                return
            text = websocket_text(message.content, message.is_text)
            if text is None:
                return
            url = self._url_now(flow, seen)
            verdict = decide(
                Request.web(url, request_type="websocket", outbound_text=text),
                self.live.policy,
                seen.identity,
                self._now(),
            )
        except Exception:
            self.errors += 1
            log.exception("checking a websocket message failed")
            if not self._fails_open(seen.identity):
                message.drop()
            return
        if verdict.action is Action.BLOCK:
            message.drop()
        if verdict.action is Action.BLOCK or verdict.flagged:
            host = seen.host
            self._log(
                seen.who, verdict, host, "websocket", seen.started, "WS", url, 0, len(message.content), ""
            )

    # ---- acting ----

    def _own_pages(self, flow: http.HTTPFlow, seen: Seen, path: str) -> bool:
        """The report button's post (on any host) and the certificate pages (on the portal's hosts)."""
        request = flow.request
        path = path.split("?", 1)[0]
        if path == REPORT_PATH and request.method == "POST":
            seen.report = True
            # Ours whatever happens next: "not sent" stands unless `_report` accepts the report, and the
            # form never goes on to the site (a large or unmeasured body is not even read).
            self._answer(flow, seen, 400, _NOT_SENT)
            size = request.headers.get("content-length", "")
            if request.stream or not size.isdigit() or int(size) > REPORT_MAX_BYTES:
                log.warning("refused a report form of %s bytes from %s", size or "unknown", seen.who.client)
                flow.kill()
            return True
        if path in _CA_PATHS and seen.host in self.live.config.policy.portal_hosts:
            self._certificate(flow, seen, path)
            return True
        return False

    def _report(self, flow: http.HTTPFlow, seen: Seen) -> None:
        """A report form posted back: accepted once, from the device that was shown the block, on the
        blocked host; anything else keeps the "not sent" answer `_own_pages` gave."""
        try:
            form = flow.request.urlencoded_form
            now = time.time()
            blocked = read_token(self.authority.report_key, form.get("token", ""), now)
            if (
                blocked is None
                or blocked.host != seen.host
                or blocked.device != seen.who.client
                or not self.spent.spend(blocked.nonce, now)
            ):
                log.warning(
                    "refused a report from %s: forged, used, expired or for another host", seen.who.client
                )
                return
            rules = self.live.policy.rules_for(seen.identity.profile)
            seen.verdict = child_report(rules.name, blocked.why, form.get("note", ""))
            settings = self.live.config.proxy
            self._answer(flow, seen, 200, reported_page(helpline=settings.helpline, centre=settings.centre))
            flow.metadata["childsafe_host"] = blocked.host
        except Exception:
            self.errors += 1
            log.exception("reading a report failed: answered as not sent")

    def _certificate(self, flow: http.HTTPFlow, seen: Seen, path: str) -> None:
        ca = self.authority
        if path.endswith((".der", ".cer")):
            self._answer(flow, seen, 200, ca.cert_der, "application/x-x509-ca-cert")
        elif path.endswith((".pem", ".crt")):
            self._answer(flow, seen, 200, ca.cert_pem, "application/x-pem-file")
        else:
            page = certificate_page(
                centre=self.live.config.proxy.centre,
                fingerprint_sha256=ca.fingerprint,
                pem_url="/ca.pem",
                der_url="/ca.der",
            )
            self._answer(flow, seen, 200, page)

    def _answer(
        self, flow: http.HTTPFlow, seen: Seen | None, status: int, body: str | bytes, kind: str = ""
    ) -> None:
        headers = dict(_PAGE_HEADERS)
        if kind:
            headers["Content-Type"] = kind
        flow.response = http.Response.make(status, body, headers)
        if seen is not None:
            seen.ours = True

    def _block(self, flow: http.HTTPFlow, seen: Seen, verdict: Verdict, *, streaming: bool = False) -> None:
        settings = self.live.config.proxy
        host = seen.host
        form: ReportForm | None = None
        if host:  # a request that named no site has nowhere to post a report to
            blocked = Blocked(host, blocked_summary(verdict), time.time(), seen.who.client)
            token = make_token(self.authority.report_key, blocked)
            form = ReportForm(_url(flow.request.scheme, host, flow.request.port, REPORT_PATH), token)
        categories = self.live.policy.categories.categories
        page = block_page(
            verdict,
            categories,
            host or "this site",
            report=form,
            helpline=settings.helpline,
            centre=settings.centre,
        )
        self._replace(flow, seen, 403, page, streaming)

    def _replace(
        self, flow: http.HTTPFlow, seen: Seen | None, status: int, page: str, streaming: bool
    ) -> None:
        """Answer with `page` in place of the site. `streaming`: the origin's answer headers are in
        (responseheaders), so ours go out instead and its body is dropped as it comes."""
        if streaming:
            self._answer(flow, seen, status, page)
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
            or int(size) > self.live.config.proxy.page_limit_kb * 1024
        ):
            # A large upload to a blocked place: it is not read in, the connection is closed.
            if seen is not None:
                seen.ours = True
            flow.kill()
            return
        self._answer(flow, seen, status, page)

    def _failed(self, flow: http.HTTPFlow, seen: Seen | None, *, streaming: bool = False) -> None:
        """Deciding raised: fail closed for children (the "temporarily unavailable" page), open for a
        profile with `on_error: allow`. Logged either way; the connection is always answered.
        `streaming` as for `_replace` (raised in responseheaders)."""
        self.errors += 1
        log.exception("deciding %s failed", flow.request.url)
        if seen is not None and self._fails_open(seen.identity):
            return
        settings = self.live.config.proxy
        page = unavailable_page(helpline=settings.helpline, centre=settings.centre)
        try:
            self._replace(flow, seen, 503, page, streaming)
        except Exception:
            log.exception("could not answer with the unavailable page; closing the connection")
            flow.kill()

    # ---- logging ----

    def _log_flow(self, flow: http.HTTPFlow, seen: Seen) -> None:
        verdict = seen.verdict
        if verdict is None or self.events is None:
            return
        try:
            response = flow.response
            status = response.status_code if response is not None and flow.error is None else 0
            if response is None:
                size = 0
            elif response.raw_content is not None:
                size = len(response.raw_content)
            else:
                size = seen.sent
            host = flow.metadata.get("childsafe_host") or seen.host
            url = flow.metadata.get("childsafe_url") or self._url_now(flow, seen)
            terms = ""
            if verdict.flagged and any(r.step is Step.WATCH_LIST for r in verdict.reasons):
                search = extract_search(url)
                terms = search.terms if search is not None else ""
            kind = "report" if verdict.reasons and verdict.reasons[0].step is Step.CHILD_REPORT else "web"
            self._log(
                seen.who, verdict, host, kind, seen.started, flow.request.method, url, status, size, terms
            )
        except Exception:
            log.exception("logging a request failed")

    def _log(
        self,
        who: Asker,
        verdict: Verdict,
        host: str,
        detail: str,
        started: float,
        method: str,
        url: str,
        status: int,
        size: int,
        terms: str,
    ) -> None:
        if self.events is None:
            return
        key = (id(verdict), host, detail)
        known = self._whats.get(key)
        if known is not None and known[0] is verdict:
            what = known[1]
        else:
            channel = _CHANNELS.get(detail, "http")
            what = Answer.of(channel, host, detail, verdict)
            if len(self._whats) >= 50_000:
                self._whats.clear()
            self._whats[key] = (verdict, what)
        if what.kept:
            url = _kept_url(url, verdict)
        self.events.add_request(
            time.time(), who, what, time.monotonic() - started, method, url, status, size, terms
        )


def _websocket(headers: http.Headers) -> bool:
    return "websocket" in headers.get("upgrade", "").lower()


def _help(verdict: Verdict) -> bool:
    return any(r.step is Step.HELP_SERVICE for r in verdict.reasons)


def _has_body(headers: http.Headers) -> bool:
    size = headers.get("content-length", "0")
    return "transfer-encoding" in headers or not size.isdigit() or int(size) > 0


def _plain(headers: http.Headers) -> dict[str, str]:
    """The request's headers as a dict with lower-case names: mitmproxy's `Headers` costs a few
    microseconds per look-up (it searches and decodes its fields every time)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers.fields}


def _kept_url(url: str, verdict: Verdict) -> str:
    """The URL as the log may keep it: whole for a block or a flag (staff must see what it was), without
    its query for an allowed request kept under `log_allowed: event` (a query carries searches, ids)."""
    if verdict.action is Action.BLOCK or verdict.flagged:
        return url
    return url.split("?", 1)[0]


def _counter(seen: Seen) -> Callable[[bytes], bytes]:
    def count(chunk: bytes) -> bytes:
        seen.sent += len(chunk)
        return chunk

    return count


def addon_options(settings: ProxySettings) -> dict[str, Any]:
    """The mitmproxy options the addon relies on (set by the worker)."""
    return {
        # Upstream connections are opened only when needed: a blocked name is never contacted.
        "connection_strategy": "lazy",
        # An HTML page is held for scoring up to the limit; past it, mitmproxy streams the rest.
        "stream_large_bodies": f"{max(1, settings.page_limit_kb)}k",
    }
