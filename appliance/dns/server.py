"""The DNS filter's server: UDP and TCP on asyncio, a per-device rate limit, the fast path of remembered
answers, and the slow path that identifies, decides, acts and logs.

The fast path answers a query whose exact bytes (after the id) this profile has answered before and whose
answer is still valid: one dict look-up, the id patched in, one send, one event handed over. Everything
else goes the slow path: read the question strictly, `decide`, then answer from the verdict and, where the
name is allowed or rewritten, from the upstream records.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import signal
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dnslib import RR

from appliance.bindings import Bindings, Bound
from appliance.bundles.sets import report_loaded
from appliance.dns import answers
from appliance.dns.batch import BatchSocket
from appliance.dns.cache import RecordCache, Records
from appliance.dns.errors import Malformed, UpstreamFailed
from appliance.dns.live import FAST_ENTRIES, NEVER, Cached, Client, Live, changed, load_live, stamp_of
from appliance.dns.neighbours import Neighbours
from appliance.dns.resolution import cloaked
from appliance.dns.settings import split_host_port, system_resolvers
from appliance.dns.upstream import Server, Upstreams, UpstreamSettings, parse_servers
from appliance.dns.wire import (
    MAX_QUERY,
    TYPE_ANY,
    Question,
    Rcode,
    build,
    error_answer,
    qtype_name,
    read_question,
    truncated,
    ttl_offsets,
)
from appliance.event_log import EventLog
from appliance.events import What
from filters.errors import ApplianceError
from profiles.decide import decide
from profiles.policy import Special
from profiles.profile import BlockedAnswer
from profiles.request import Request
from profiles.verdict import Action, LogDetail, Step, Verdict

log = logging.getLogger(__name__)

TCP_IDLE_S = 10.0
TCP_MAX_CONNECTIONS = 256
PER_DEVICE_IN_FLIGHT = 128  # of the upstream set's 512: a quarter
RECV_BUFFER = 4 * 1024 * 1024
WATCH_EVERY_S = 2.0
HAND_OVER_S = 0.25


@dataclass
class Counters:
    """What the server has done since it started (for tests, logs and the dashboard)."""

    queries: int = 0
    fast: int = 0
    malformed: int = 0
    limited: int = 0
    servfail: int = 0
    stale: int = 0
    reloads: int = 0
    reload_errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    """What the slow path does with a question once decided: an answer now, or a look-up first."""

    verdict: Verdict
    what: What | None
    answer: bytes | None = None
    lookup: str | None = None  # the name to ask upstream (the asked name, or the safe-search target)
    until: float = NEVER  # how long the verdict holds (a scheduled profile: to the next minute)


Send = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class _Asking:
    """One question on the slow path: what was asked, by whom, under which policy, when, and how to
    answer (over UDP, answers are cut to the client's size and remembered for the fast path)."""

    q: Question
    data: bytes
    client: Client
    live: Live
    now: float
    reply: Send
    udp: bool


PORT_TRIES = 20  # for port 0: ports tried until one is free for both UDP and TCP


class DnsServer:
    """The server over one `Live` policy (swapped on reload), one upstream set and one event writer."""

    def __init__(
        self,
        live: Live,
        upstreams: Upstreams,
        events: EventLog,
        *,
        config_path: Path | None = None,
        neighbours: Neighbours | None = None,
    ) -> None:
        self.live = live
        self.upstreams = upstreams
        self.events = events
        self.config_path = config_path
        self.neighbours = neighbours or Neighbours(live.config.dns.leases)
        self.counters = Counters()
        self.bindings = Bindings(live.config.events_path, live.zone)
        self.bound: Bound | None = None
        self._seen_mark = 0.0
        rate = live.config.dns.rate_limit
        self._rate, self._burst = rate.per_second, float(rate.burst)
        self._handover: asyncio.TimerHandle | None = None
        self._ip_names: dict[object, str] = {}  # raw sender address -> its text (batched reads)
        self.batched = True  # recvmmsg/sendmmsg where the C library has them
        self._tasks: set[asyncio.Future[None]] = set()
        self._sockets: list[socket.socket] = []
        self._tcp: list[asyncio.Server] = []
        self._tcp_open = 0
        self._looking_up: dict[str, int] = {}  # upstream look-ups in flight per device
        self._watcher: asyncio.Task[None] | None = None
        self.addresses: list[tuple[str, int]] = []

    # ---- sockets ----

    async def start(self, listen: list[tuple[str, int]]) -> None:
        """Bind UDP and TCP on every address (port 0: any free port, the same for both) and serve."""
        loop = asyncio.get_running_loop()
        self.neighbours.refresh()
        for host, wanted in listen:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            # Port 0: the port UDP was given may be taken for TCP (another program's connection uses
            # it); then another is tried.
            for attempt in range(PORT_TRIES if wanted == 0 else 1):
                udp = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    if family == socket.AF_INET6:
                        udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    udp.bind((host, wanted))
                except OSError as e:
                    udp.close()
                    if (
                        family == socket.AF_INET6
                        and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)
                        and listen
                    ):
                        log.warning("not listening on [%s]:%d: this machine has no IPv6 there", host, wanted)
                        break
                    raise ApplianceError(f"cannot listen for DNS on {host}:{wanted}: {e.strerror}") from e
                port = udp.getsockname()[1]
                try:
                    tcp = await loop.create_server(
                        lambda: _TcpQueries(self), host, port, family=family, reuse_address=True
                    )
                except OSError as e:
                    udp.close()
                    if e.errno == errno.EADDRINUSE and attempt + 1 < PORT_TRIES and wanted == 0:
                        continue
                    raise ApplianceError(
                        f"cannot listen for DNS over TCP on {host}:{port}: {e.strerror}"
                    ) from e
                udp.setblocking(False)
                with contextlib.suppress(OSError):
                    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
                batch = BatchSocket(udp) if BatchSocket.available() and self.batched else None
                loop.add_reader(udp.fileno(), self._drain, udp, batch)
                self._sockets.append(udp)
                self._tcp.append(tcp)
                self.addresses.append((host, port))
                break
        if not self.addresses:
            raise ApplianceError("no address to listen on")
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch())
            self._hand_over_events()
            _settle_garbage()
        # Not in the main thread (tests), there are no signals: reloads come from the file watch.
        with contextlib.suppress(RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._watcher is not None:
            self._watcher.cancel()
        if self._handover is not None:
            self._handover.cancel()
            self._handover = None
        self.events.hand_over()
        self.bindings.close()
        for udp in self._sockets:
            loop.remove_reader(udp.fileno())
            udp.close()
        for tcp in self._tcp:
            tcp.close()
        for task in list(self._tasks):
            task.cancel()
        self._sockets, self._tcp = [], []

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the UDP fast path ----

    def _drain(self, udp: socket.socket, batch: BatchSocket | None) -> None:
        # The hot path. Locals for everything touched per packet; counters kept in locals and added once.
        if batch is not None:
            got = batch.receive()
            if batch.oversized:
                self.counters.malformed += batch.oversized
                batch.oversized = 0
            if not got:
                return
            size, received = batch.size, batch.received
            packets: list[tuple[bytes, Any]] = [(bytes(received[i * size : i * size + n]), i) for i, n in got]
        else:
            packets = []
            for _ in range(64):
                try:
                    packets.append(udp.recvfrom(MAX_QUERY + 1))
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
            if not packets:
                return
        send = udp.sendto
        monotonic = time.monotonic
        live = self.live
        clients = live.clients
        ip_names = self._ip_names
        rate, burst = self._rate, self._burst
        events = self.events
        log_ts, log_who, log_what, log_took, log_count = (
            events.ts.append,
            events.who.append,
            events.what.append,
            events.took.append,
            events.counted.append,
        )
        wall = time.time()  # one clock reading for the batch: the events' time to the millisecond
        fast = 0
        try:
            last_raw: object = None
            client = None
            for data, source in packets:
                now = monotonic()
                if batch is not None:
                    raw = batch.peer_key(source)
                    if raw != last_raw or client is None or now >= client.until:
                        # A batch mostly comes from a few devices: look up only when the sender changes.
                        ip = ip_names.get(raw)
                        if ip is None:
                            if len(ip_names) >= 65_536:
                                ip_names.clear()
                            ip = ip_names[raw] = batch.peer(source)[0]
                        client = clients.get(ip)
                        if client is None or now >= client.until:
                            client = self._identify(live, ip, now, client)
                        last_raw = raw
                else:
                    ip = source[0]
                    client = clients.get(ip)
                    if client is None or now >= client.until:
                        client = self._identify(live, ip, now, client)
                if rate:
                    # A token bucket per device: `rate` a second, up to `burst` saved up.
                    tokens = client.tokens + (now - client.last) * rate
                    client.last = now
                    if tokens < 1.0:
                        client.tokens = tokens
                        self.counters.limited += 1
                        reply = error_answer(data, Rcode.REFUSED)
                        if reply is not None:
                            _send_quietly(send, reply, self._address(batch, source))
                        continue
                    client.tokens = (burst if tokens > burst else tokens) - 1.0
                entry = client.fast.get(data[2:])
                if entry is not None and now < entry.expires:
                    if now >= entry.refresh_at:
                        entry.refresh(now)
                    if batch is not None:
                        batch.queue(source, data[:2] + entry.tail)
                    else:
                        _send_quietly(send, data[:2] + entry.tail, source)
                    fast += 1
                    what = entry.what
                    if what is not None:
                        if what.kept:
                            log_ts(wall)
                            log_who(client.who.key)
                            log_what(what.key)
                            log_took(monotonic() - now)
                        else:
                            log_count(what.key)
                    continue

                def reply_udp(answer: bytes, addr: object = self._address(batch, source)) -> None:
                    _send_quietly(send, answer, addr)

                try:
                    self._slow(data, client, now, reply_udp, udp=True)
                except Exception:  # a bug must cost one question, never the server
                    log.exception("answering %r from %s failed", data[:64], ip)
        finally:
            if batch is not None:
                batch.send()
            self.counters.queries += len(packets)
            self.counters.fast += fast

    @staticmethod
    def _address(batch: BatchSocket | None, source: Any) -> Any:
        """Where to send an answer: the (address, port) of a batch slot, or the address as received."""
        return batch.peer(source) if batch is not None else source

    def _identify(self, live: Live, ip: str, now: float, before: Client | None) -> Client:
        client = live.client(ip, self.neighbours.mac_of(ip), now, before)
        self.events.define(client.who)
        return client

    def _hand_over_events(self) -> None:
        """Every quarter second: the events gathered so far go to the writer as one batch, and a change
        of sign-ins or devices in the store is taken in."""
        self.events.hand_over()
        live = self.live
        bound = self.bindings.poll(time.time())
        if bound is not None:
            self.bound = bound
            live.bind(bound)
        self._handover = asyncio.get_running_loop().call_later(HAND_OVER_S, self._hand_over_events)

    def _spend(self, client: Client, now: float) -> bool:
        """Take a token from the device's bucket (the slow-path twin of the check in `_drain`);
        False when it has none left."""
        if not self._rate:
            return True
        tokens = client.tokens + (now - client.last) * self._rate
        client.last = now
        if tokens < 1.0:
            client.tokens = tokens
            self.counters.limited += 1
            return False
        client.tokens = min(self._burst, tokens) - 1.0
        return True

    # ---- the slow path ----

    def _slow(self, data: bytes, client: Client, now: float, reply: Send, *, udp: bool) -> None:
        try:
            q = read_question(data)
        except Malformed as e:
            self.counters.malformed += 1
            if e.rcode is not None:
                answer = error_answer(data, e.rcode, e.question, edns=e.edns)
                if answer is not None:
                    reply(answer)
            return
        if q.host is None or q.qtype == TYPE_ANY:
            # A name no list can judge is refused; ANY gets NOTIMP (RFC 8482 allows it).
            reply(build(q, Rcode.REFUSED if q.host is None else Rcode.NOTIMP))
            return
        asking = _Asking(q, data, client, self.live, now, reply, udp)
        try:
            plan = self._plan(asking)
        except Exception:
            log.exception("deciding %s for %s failed", q.host, client.who.client)
            self.counters.servfail += 1
            reply(build(q, Rcode.SERVFAIL))
            return
        if plan.answer is not None:
            self._finish(asking, plan, plan.answer, plan.until)
            return
        assert plan.lookup is not None
        records = self.upstreams.cache.fresh(plan.lookup, q.qtype, now)
        if records is not None:
            self._answer_records(asking, plan, records, stale=False)
            return
        ip = client.who.client
        if self._looking_up.get(ip, 0) >= PER_DEVICE_IN_FLIGHT:
            # One device asking for hundreds of new names at once gets SERVFAIL for the excess, so
            # that the centre's share of upstream questions stays free for everyone else.
            self.counters.servfail += 1
            reply(build(q, Rcode.SERVFAIL))
            return
        self._looking_up[ip] = self._looking_up.get(ip, 0) + 1
        self._spawn(self._look_up(asking, plan))

    def _plan(self, asking: _Asking) -> _Plan:
        q, live, now = asking.q, asking.live, asking.now
        policy = live.policy
        host = q.host
        assert host is not None
        verdict = decide(Request(host), policy, asking.client.identity, datetime.now(live.zone))
        what = (
            What.of("dns", host, qtype_name(q.qtype), verdict) if verdict.log is not LogDetail.NONE else None
        )
        rules = policy.rules_for(verdict.profile)
        until = now + (60.0 - time.time() % 60.0) if rules.scheduled else NEVER
        if verdict.action is Action.BLOCK:
            special = policy.host_facts(host).special
            if special in (Special.CANARY_NXDOMAIN, Special.CANARY_NODATA):
                answer = answers.canary(q, nxdomain=special is Special.CANARY_NXDOMAIN)
            else:
                answer = answers.blocked(q, rules.profile.blocked_answer, live.config.dns.block)
            return _Plan(verdict, what, answer=answer, until=until)
        if verdict.reasons and verdict.reasons[0].step is Step.PORTAL:
            # The centre's own pages (appliance.lan): the appliance's addresses, as for a block page.
            answer = answers.blocked(q, BlockedAnswer.BLOCK_PAGE, live.config.dns.block)
            return _Plan(verdict, what, answer=answer, until=until)
        if verdict.action is Action.REWRITE and verdict.safe_search is not None:
            return _Plan(verdict, what, lookup=verdict.safe_search.host, until=until)
        return _Plan(verdict, what, lookup=host, until=until)

    async def _look_up(self, asking: _Asking, plan: _Plan) -> None:
        assert plan.lookup is not None
        q = asking.q
        # Help services are never named in any log, the system's included.
        shown = (q.host or "") if plan.what is not None else "a help service"
        ip = asking.client.who.client
        try:
            records, stale = await self.upstreams.resolve(plan.lookup, q.qtype)
            self._answer_records(asking, plan, records, stale=stale)
        except UpstreamFailed as e:
            log.warning("SERVFAIL for %s: %s", shown, str(e).replace(plan.lookup, shown))
        except Exception:  # an upstream answer dnslib reads but cannot write back, say
            log.exception("answering %s failed", shown)
        else:
            return
        finally:
            left = self._looking_up.get(ip, 1) - 1
            if left > 0:
                self._looking_up[ip] = left
            else:
                self._looking_up.pop(ip, None)
        self.counters.servfail += 1
        asking.reply(build(q, Rcode.SERVFAIL))
        self._log(asking, plan.what)

    def _answer_records(self, asking: _Asking, plan: _Plan, records: Records, *, stale: bool) -> None:
        q, live = asking.q, asking.live
        answer_rrs, authority = records.aged(time.monotonic(), stale=stale)
        safe = plan.verdict.safe_search if plan.verdict.action is Action.REWRITE else None
        if safe is not None:
            answer = answers.rewritten(q, safe.host, records.rcode, answer_rrs, authority)
        else:
            blocked = self._cloaked(answer_rrs, asking.client, live)
            if blocked is not None:
                what = What.of("dns", q.host or "", qtype_name(q.qtype), blocked)
                rules = live.policy.rules_for(blocked.profile)
                answer = answers.blocked(q, rules.profile.blocked_answer, live.config.dns.block)
                plan = _Plan(blocked, what, until=plan.until)
            else:
                answer = answers.forwarded(q, records.rcode, answer_rrs, authority)
        if stale:
            self.counters.stale += 1
            self._reply(asking, answer)
            self._log(asking, plan.what)
            return
        self._finish(asking, plan, answer, min(plan.until, records.expires))

    def _cloaked(self, answer_rrs: list[RR], client: Client, live: Live) -> Verdict | None:
        """A CNAME in an allowed name's answer that leads to a blocked name blocks the answer too."""
        zone = live.zone
        return cloaked(
            answer_rrs, lambda name: decide(Request(name), live.policy, client.identity, datetime.now(zone))
        )

    def _finish(self, asking: _Asking, plan: _Plan, answer: bytes, until: float) -> None:
        """Send the answer, remember it for the fast path while it holds (UDP only), log the event."""
        sent = self._reply(asking, answer)
        if asking.udp and asking.q.plain and until > asking.now:
            fast = asking.client.fast
            # One budget for the whole appliance, shared by the profiles.
            cap = FAST_ENTRIES // max(1, len(asking.live.policy.profiles))
            if len(fast) >= cap:
                for key in list(fast)[: cap // 10 or 1]:
                    del fast[key]
            offsets = ttl_offsets(sent) if plan.lookup is not None else ()
            fast[asking.data[2:]] = Cached(sent, until, plan.what, asking.now, offsets)
        self._log(asking, plan.what)

    def _reply(self, asking: _Asking, answer: bytes) -> bytes:
        if asking.udp and len(answer) > asking.q.udp_size:
            answer = truncated(answer)
        asking.reply(answer)
        return answer

    def _log(self, asking: _Asking, what: What | None) -> None:
        if what is not None:
            took = time.monotonic() - asking.now
            self.events.add(time.time(), asking.client.who, what, took)

    # ---- TCP ----

    def answer_tcp(self, data: bytes, ip: str, reply: Send) -> None:
        now = time.monotonic()
        self.counters.queries += 1
        live = self.live
        client = live.clients.get(ip)
        if client is None or now >= client.until:
            client = self._identify(live, ip, now, client)
        if not self._spend(client, now):
            answer = error_answer(data, Rcode.REFUSED)
            if answer is not None:
                reply(answer)
            return
        self._slow(data, client, now, reply, udp=False)

    # ---- reloads ----

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            # Answers remembered since the last tick are long-lived: collect the young generations'
            # garbage (cycles from failed look-ups included: cheap, they are young), then put the rest
            # out of the collector's sight, so no full collection ever walks the remembered answers.
            gc.collect(1)
            gc.freeze()
            try:
                if self.neighbours.refresh():
                    self.live.clients.clear()  # an address has a new device: identify again
                live = self.live
                self._report_signed_in(live)
                if changed(live):
                    await self.reload()
            except Exception:  # the watch must outlive any one bad reload
                log.exception("watching for changes failed")

    def _report_signed_in(self, live: Live) -> None:
        """Signed-in devices that asked since the last look keep their sessions from the idle time-out."""
        since, self._seen_mark = self._seen_mark, time.monotonic()
        for ip, client in live.clients.items():
            child = client.identity.child
            if child is not None and client.last >= since:
                self.events.seen.add((child.id, ip))

    async def reload(self) -> bool:
        """Load the configuration, lists and policy anew and swap them in; on any error keep the
        running policy, log why, and return False."""
        loop = asyncio.get_running_loop()
        try:
            new = await loop.run_in_executor(None, load_live, self.config_path)
        except ApplianceError as e:
            log.error("reload refused, the running policy stays: %s", e)
            self.counters.reload_errors.append(str(e))
            # Do not retry the same broken files every few seconds: wait for their next change.
            self.live.stamp = stamp_of(self.live.config)
            return False
        if self.bound is not None:
            new.bind(self.bound)
        self.live = new
        _settle_garbage()
        self.counters.reloads += 1
        if new.config.sync:
            report_loaded(new.config.data_dir, "dns", new.config.set_dir)
        log.info("reloaded: %d profiles, lists from %s", len(new.policy.profiles), new.config.index_path)
        return True


def _settle_garbage() -> None:
    """Move everything alive now (the policy, the compiled lists' objects) out of the garbage
    collector's sight, and let it run less often: the answers remembered by the hot path are long-lived,
    and walking them all is what a full collection would spend its pauses on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


def _send_quietly(send: Callable[..., int], data: bytes, addr: object) -> None:
    # A full send buffer or a vanished client: over UDP there is no one to tell.
    with contextlib.suppress(OSError):
        send(data, addr)


class _TcpQueries(asyncio.Protocol):
    """DNS over TCP: two-byte length, then the message; several queries per connection, answered as
    they are ready. Oversized frames close the connection; a connection idle for TCP_IDLE_S closes."""

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.ip = ""
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._tcp_open += 1
        if self.server._tcp_open > TCP_MAX_CONNECTIONS:
            transport.close()
            return
        peer = transport.get_extra_info("peername")
        self.ip = peer[0] if peer else ""
        self._touch()

    def _touch(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        assert self.transport is not None
        self.idle = asyncio.get_running_loop().call_later(TCP_IDLE_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._touch()
        while len(self.buffer) >= 2:
            (length,) = struct.unpack_from("!H", self.buffer)
            if length > MAX_QUERY or length < 12:
                self.server.counters.malformed += 1
                assert self.transport is not None
                self.transport.close()
                self.buffer = b""
                return
            if len(self.buffer) < 2 + length:
                return
            frame, self.buffer = self.buffer[2 : 2 + length], self.buffer[2 + length :]
            self.server.answer_tcp(frame, self.ip, self._write)

    def _write(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(struct.pack("!H", len(answer)) + answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._tcp_open -= 1
        if self.idle is not None:
            self.idle.cancel()


def upstream_servers(live: Live, listening: list[tuple[str, int]]) -> tuple[Server, ...]:
    """The configured upstreams, else the machine's resolvers less our own addresses."""
    configured = live.config.dns.upstreams
    if configured:
        return parse_servers(configured)
    ours = frozenset(host for host, port in listening if port == 53)
    found = system_resolvers(exclude=ours)
    if not found:
        # Blocks, safe-search rewrites of cached names and bypass checks still work; the rest is SERVFAIL.
        log.warning(
            "%s: no upstream resolver (none in /etc/resolv.conf): allowed names get SERVFAIL until "
            "dns.upstreams is set, for example [9.9.9.9, 149.112.112.112]",
            live.config.origin,
        )
    return parse_servers(found)


def make_server(live: Live, listen: list[tuple[str, int]], config_path: Path | None) -> DnsServer:
    """A server over `live` with its upstreams, cache and event writer (not yet listening)."""
    dns = live.config.dns
    settings = UpstreamSettings(upstream_servers(live, listen), dns.try_timeout_s, dns.servfail_after_s)
    upstreams = Upstreams(settings, RecordCache(dns.cache))
    events = EventLog(live.config.events_path, live.zone, live.config.store)
    return DnsServer(live, upstreams, events, config_path=config_path)


def parse_listen(texts: tuple[str, ...] | list[str]) -> list[tuple[str, int]]:
    return [split_host_port(t, 53) for t in texts]
