"""The monitoring addon: every connection and web request through mitmproxy is identified, decided,
acted on and logged.

TLS from devices the appliance may not decrypt is decided on the ClientHello's SNI name (in
`next_layer`, so a blocked name can be cut before anything reaches the site): allowed names pass through
untouched, blocked ones are closed, flagged ones pass and are logged. Web requests (plain HTTP, and HTTPS
of centre-managed devices whose profile allows interception) are decided on their URL, request type and
source page; bodies a child sends are read for personal information; HTML pages are scored against the
profile's phrase limits (up to `page_limit_kb`: larger pages and every other type are streamed, never
held); downloads are judged by their name too.

If deciding raises, a child's request gets the "temporarily unavailable" page (fail closed) and a
profile with `on_error: allow` (staff) is let through; either way the error is logged and the
connection is answered, never left hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
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

from appliance.bindings import Bindings, Bound
from appliance.dns.live import Live, changed, load_live, stamp_of
from appliance.dns.neighbours import Neighbours
from appliance.dns.settings import split_host_port
from appliance.event_log import EventLog
from appliance.events import What, Who
from appliance.forwarding import CLIENT_HEADER, is_own_address
from appliance.proxy.ca import Authority
from appliance.proxy.outbound import outbound_text, websocket_text
from appliance.proxy.pages import ReportForm, block_page, certificate_page, reported_page, unavailable_page
from appliance.proxy.report import (
    REPORT_PATH,
    Blocked,
    blocked_summary,
    make_token,
    read_token,
)
from appliance.proxy.resource import request_type, source_url
from appliance.proxy.settings import ProxySettings
from filters.errors import ApplianceError
from profiles.decide import child_report, decide, judge_text, may_intercept, with_page
from profiles.identity import Identity, identify
from profiles.profile import OnError
from profiles.request import Channel, Request
from profiles.search_terms import extract_search
from profiles.verdict import Action, Step, Verdict

log = logging.getLogger("appliance.proxy")

KEY = "childsafe"  # our state in flow.metadata
IDENTITY_TTL_S = 10.0  # an address is identified again after this (a new lease, a sign-in)
HAND_OVER_S = 0.25
WATCH_S = 2.0
_HTML = re.compile(r"^\s*(text/html|application/xhtml\+xml)", re.IGNORECASE)
_FILENAME = re.compile(r"""filename\*?\s*=\s*(?:UTF-8'[^']*')?"?([^";]+)""", re.IGNORECASE)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PAGE_HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
_CA_PATHS = frozenset({"/ca", "/ca/", "/ca.pem", "/ca.crt", "/ca.der", "/ca.cer"})


class Seen:
    """What the addon knows of one flow between its hooks."""

    __slots__ = ("identity", "inspect", "ours", "report", "score", "sent", "started", "verdict", "who")

    def __init__(self, who: Who, identity: Identity, started: float) -> None:
        self.who = who
        self.identity = identity
        self.started = started
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


class Monitor:
    """The mitmproxy addon. One per proxy worker; everything it reads is swapped whole on reload."""

    def __init__(
        self,
        live: Live,
        authority: Authority,
        events_log: EventLog | None,
        config_path: Path | None = None,
        neighbours: Neighbours | None = None,
    ) -> None:
        self.live = live
        self.authority = authority
        self.events = events_log
        self.config_path = config_path
        self.neighbours = neighbours or Neighbours(live.config.dns.leases)
        self.neighbours.refresh()
        self._clients: dict[str, tuple[float, Identity, Who]] = {}
        self._whats: dict[tuple[int, str, str], tuple[Verdict, What]] = {}
        self.errors = 0
        self.reloads = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.bindings = Bindings(live.config.events_path, live.zone)
        self.bound: Bound | None = None

    # ---- lifetime ----

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._hand_over()))
        self._tasks.append(loop.create_task(self._watch()))

    def done(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.bindings.close()
        if self.events is not None:
            self.events.hand_over()
            self.events.close()

    async def _hand_over(self) -> None:
        while True:
            await asyncio.sleep(HAND_OVER_S)
            if self.events is not None:
                self.events.hand_over()
            self.follow_bindings()

    def follow_bindings(self) -> None:
        """Take in a sign-in, sign-out or device change from the store (polled every HAND_OVER_S)."""
        bound = self.bindings.poll(time.time())
        if bound is not None:
            self.bound = bound
            self.live.bind(bound)
            self._clients.clear()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            try:
                if self.neighbours.refresh():
                    self._clients.clear()
                if changed(self.live):
                    await self.reload()
            except Exception:  # the watch must outlive any one bad reload
                log.exception("watching for changes failed")

    async def reload(self) -> bool:
        """Load configuration, lists and policy anew and swap them in; on error keep the running ones."""
        loop = asyncio.get_running_loop()
        try:
            new = await loop.run_in_executor(None, load_live, self.config_path)
        except ApplianceError as e:
            log.error("reload refused, the running policy stays: %s", e)
            self.live.stamp = stamp_of(self.live.config)
            return False
        if self.bound is not None:
            new.bind(self.bound)
        self.live = new
        self._clients.clear()
        self._whats.clear()
        self.reloads += 1
        log.info("reloaded: %d profiles", len(new.policy.profiles))
        return True

    # ---- who ----

    def _who(self, client: Client, now: float) -> tuple[Identity, Who]:
        ip = client.peername[0] if client.peername else ""
        if ip.startswith("::ffff:"):
            ip = ip[7:]
        known = self._clients.get(ip)
        if known is not None and known[0] > now:
            if known[1].child is not None and self.events is not None:
                self.events.seen.add((known[1].child.id, ip))  # in use: the session is not idle
            return known[1], known[2]
        live = self.live
        identity = identify(ip, self.neighbours.mac_of(ip), live.devices, live.sessions, self._now())
        who = known[2] if known is not None and known[1] == identity else Who.of(ip, identity)
        if len(self._clients) >= 65_536:
            self._clients.clear()
        self._clients[ip] = (now + IDENTITY_TTL_S, identity, who)
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

    # ---- TLS: decided on the SNI name ----

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Never connect to the appliance itself (loopback or any of its own addresses: its SSH, its DNS
        filter, its dashboard seen from inside), but for the portal's port and the configured
        `reachable_local_ports`. The name is resolved here and the connection made to the address
        checked, so a name that changes its answer in between cannot slip through."""
        address = data.server.address
        if address is None:
            return
        host, port = address
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return  # mitmproxy's own connection attempt fails and says why
        if not infos:
            return
        resolved = str(infos[0][4][0])
        if any(is_own_address(str(info[4][0])) for info in infos) and port not in self._local_ports():
            data.server.error = f"{host}:{port} is the appliance itself: not reachable through its proxy"
            log.warning(
                "refused a connection to the appliance itself (%s:%d) for %s",
                host,
                port,
                data.client.peername[0] if data.client.peername else "?",
            )
            return
        data.server.address = (resolved, port)

    def _local_ports(self) -> set[int]:
        config = self.live.config
        ports = set(config.proxy.reachable_local_ports)
        with contextlib.suppress(ValueError):
            ports.add(split_host_port(config.dashboard.listen, 80)[1])
        return ports

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        chosen = nextlayer.layer
        if not isinstance(chosen, layers.ServerTLSLayer | layers.ClientTLSLayer):
            return
        context = nextlayer.context
        if context.client.tls_established or context.server.tls_established:
            return  # a protocol inside TLS we already decided on
        data = nextlayer.data_client()
        try:
            hello = parse_client_hello(data)
        except ValueError:
            return  # not TLS after all: mitmproxy reports it
        if hello is None:
            nextlayer.layer = None  # wait for the whole ClientHello
            return
        now = time.monotonic()
        identity: Identity | None = None
        try:
            identity, who = self._who(context.client, now)
            if may_intercept(self.live.policy, identity):
                return  # decrypted: every request inside is decided on its own
            host = (hello.sni or (context.server.address[0] if context.server.address else "")).lower()
            host = host.rstrip(".")
            verdict = decide(Request(host, None, Channel.TLS), self.live.policy, identity, self._now())
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
        self._log(who, verdict, host, "tls", now, "CONNECT", f"https://{host}/", status, 0, "")

    # ---- web requests ----

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        now = time.monotonic()
        seen: Seen | None = None
        try:
            identity, who = self._who(flow.client_conn, now)
            seen = Seen(who, identity, now)
            flow.metadata[KEY] = seen
            request = flow.request
            # Who really asked, for the appliance's own dashboard and portal behind this proxy: they see
            # the proxy's address, and must neither take a child for staff nor sign the proxy in. Set,
            # never appended: a client cannot choose what is sent.
            request.headers[CLIENT_HEADER] = who.client
            if self._own_pages(flow, seen):
                return
            headers = request.headers
            plain = _plain(headers)
            url = request.pretty_url
            verdict = decide(
                Request.web(url, source_url=source_url(plain, url), request_type=request_type(plain)),
                self.live.policy,
                identity,
                self._now(),
            )
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
            elif request.method in _BODY_METHODS:
                request.stream = True
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
        if seen is None or seen.ours:
            return
        if seen.report:
            self._report(flow, seen)
            return
        if not seen.inspect:
            return
        try:
            request = flow.request
            text = outbound_text(request.headers.get("content-type", ""), request.raw_content or b"")
            if text is None:
                return
            url = request.pretty_url
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
        url = f"{flow.request.scheme}://{flow.request.pretty_host}/{name}"
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
        message = flow.websocket.messages[-1]
        if not message.from_client:
            return
        try:
            if not self._checks_sent(seen.identity):
                return
            text = websocket_text(message.content, message.is_text)
            if text is None:
                return
            url = flow.request.pretty_url
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
            host = flow.request.pretty_host
            self._log(
                seen.who, verdict, host, "websocket", seen.started, "WS", url, 0, len(message.content), ""
            )

    # ---- acting ----

    def _own_pages(self, flow: http.HTTPFlow, seen: Seen) -> bool:
        """The report button's post (on any host) and the certificate pages (on the portal's hosts)."""
        request = flow.request
        path = request.path.split("?", 1)[0]
        if path == REPORT_PATH and request.method == "POST":
            seen.report = True
            return True
        if path in _CA_PATHS and request.pretty_host in self.live.config.policy.portal_hosts:
            self._certificate(flow, seen, path)
            return True
        return False

    def _report(self, flow: http.HTTPFlow, seen: Seen) -> None:
        form = flow.request.urlencoded_form
        blocked = read_token(self.authority.report_key, form.get("token", ""), time.time())
        if blocked is None:
            self._answer(
                flow,
                seen,
                400,
                "<!doctype html><title>Not sent</title><p>This report could not be "
                "sent. Please ask a member of staff.</p>",
            )
            return
        rules = self.live.policy.rules_for(seen.identity.profile)
        verdict = child_report(rules.name, blocked.why, form.get("note", ""))
        seen.verdict = verdict
        settings = self.live.config.proxy
        self._answer(flow, seen, 200, reported_page(helpline=settings.helpline, centre=settings.centre))
        flow.metadata["childsafe_host"] = blocked.host

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
        host = flow.request.pretty_host
        token = make_token(self.authority.report_key, Blocked(host, blocked_summary(verdict), time.time()))
        form = ReportForm(f"{flow.request.scheme}://{flow.request.authority or host}{REPORT_PATH}", token)
        categories = self.live.policy.categories.categories
        page = block_page(
            verdict, categories, host, report=form, helpline=settings.helpline, centre=settings.centre
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
        log.exception("deciding %s failed", flow.request.pretty_url)
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
            host = flow.metadata.get("childsafe_host") or flow.request.pretty_host
            url = flow.request.pretty_url
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
        who: Who,
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
            channel = "tls" if detail == "tls" else "http"
            what = What.of(channel, host, detail, verdict)
            if len(self._whats) >= 50_000:
                self._whats.clear()
            self._whats[key] = (verdict, what)
        if what.kept:
            url = _kept_url(url, verdict)
        self.events.add_request(
            time.time(), who, what, time.monotonic() - started, method, url, status, size, terms
        )


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
