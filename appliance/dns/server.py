"""The DNS filter's server: UDP and TCP on asyncio, a per-device rate limit, the fast path of remembered
answers, and the slow path's I/O around the sans-I/O core (core.py).

The fast path answers a query whose exact bytes (after the id) this profile has answered before and whose
answer is still valid: one dict look-up, the id patched in, one send, one event handed over. Everything
else goes the slow path: the core reads the question strictly, `decide`s, and answers from the verdict
or asks for upstream records; the server looks them up (the record cache, else the upstreams) and hands
them back to the core for the answer.
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
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.dns.batch import BatchSocket
from appliance.dns.core import Counters, RateLimiter, Reply, Resolution, resolve
from appliance.dns.wire import MAX_QUERY, error_answer
from appliance.events.recording import EventLog
from appliance.events.values import Answer
from appliance.in_force.follower import HAND_OVER_S, WATCH_S, Follower
from appliance.in_force.live import Client, Live
from appliance.net import Neighbours
from appliance.resolver.errors import UpstreamFailed
from appliance.resolver.protocol import Rcode
from appliance.resolver.upstream import Upstreams, upstreams_for
from filters.errors import ApplianceError

log = logging.getLogger(__name__)

# DNS over TCP (read at each use, so tests may patch them). One device may hold TCP_PER_DEVICE
# connections (`dns.tcp_connections_per_device`) of the TCP_MAX_CONNECTIONS in all.
TCP_IDLE_S = 10.0  # no whole question and no answer for this long: the connection is closed
TCP_FRAME_S = 3.0  # the most one question may take to arrive whole, once its first byte has
TCP_MAX_CONNECTIONS = 256
TCP_IN_FLIGHT = 16  # a connection's questions being answered at once; past it, it is not read
TCP_WRITE_HIGH = 64 * 1024  # answers a client has not read yet; past it, it is not read
TCP_WRITE_MAX = 512 * 1024  # the answers still in flight then may add to that; past this, it is closed
PER_DEVICE_IN_FLIGHT = 128  # of the upstream set's 512: a quarter
RECV_BUFFER = 4 * 1024 * 1024


Send = Callable[[bytes], None]


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
        self.follower = Follower(live, role="dns", config_path=config_path, events=events, log=log)
        self.upstreams = upstreams
        self.events = events
        self.config_path = config_path
        self.neighbours = neighbours or Neighbours(live.config.dns.leases)
        self.counters = Counters()
        self.counters.reload_errors = self.follower.reload_errors  # one record, the follower's
        self._seen_mark = 0.0
        rate = live.config.dns.rate_limit
        self.limiter = RateLimiter(rate.per_second, rate.burst)
        self._handover: asyncio.Task[None] | None = None
        self._ip_names: dict[object, str] = {}  # raw sender address -> its text (batched reads)
        self.batched = True  # recvmmsg/sendmmsg where the C library has them
        self._tasks: set[asyncio.Future[None]] = set()
        self._sockets: list[socket.socket] = []
        self._tcp: list[asyncio.Server] = []
        self.tcp_open: dict[str, set[_TcpQueries]] = {}  # open TCP connections by device address
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
            self._watcher = asyncio.ensure_future(self.follower.watch(WATCH_S, self._tick, self._reloaded))
            self.follower.hand_over(time.time())
            self._handover = asyncio.ensure_future(self.follower.hand_over_every(HAND_OVER_S, _ignore))
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
        self.follower.close()
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
        spend = self.limiter.spend if self.limiter.on else None
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
                if spend is not None and not spend(client, now):
                    self.counters.limited += 1
                    reply = error_answer(data, Rcode.REFUSED)
                    if reply is not None:
                        _send_quietly(send, reply, self._address(batch, source))
                    continue
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

    # ---- the slow path ----

    def _slow(self, data: bytes, client: Client, now: float, reply: Send, *, udp: bool) -> None:
        """Answer through the core: at once, from the record cache, or after an upstream look-up."""
        done = resolve(
            data,
            client,
            self.live,
            now=now,
            wall=time.time(),
            udp=udp,
            counters=self.counters,
            active=self.events.activity,
        )
        if done is None:
            return
        if isinstance(done, Reply):
            self._send(client, now, reply, done)
            return
        records = self.upstreams.cache.fresh(done.name, done.qtype, now)
        if records is not None:
            self._send(client, now, reply, done.answered(records, now=time.monotonic(), wall=time.time()))
            return
        ip = client.who.client
        if self._looking_up.get(ip, 0) >= PER_DEVICE_IN_FLIGHT:
            # One device asking for hundreds of new names at once gets SERVFAIL for the excess, so
            # that the centre's share of upstream questions stays free for everyone else.
            reply(done.turned_away().answer)
            return
        self._looking_up[ip] = self._looking_up.get(ip, 0) + 1
        self._spawn(self._look_up(done, client, now, reply))

    async def _look_up(self, resolution: Resolution, client: Client, now: float, reply: Send) -> None:
        # Help services are never named in any log, the system's included.
        shown = resolution.asked if resolution.what is not None else "a help service"
        ip = client.who.client
        try:
            records, stale = await self.upstreams.resolve(resolution.name, resolution.qtype)
            answered = resolution.answered(records, now=time.monotonic(), wall=time.time(), stale=stale)
            self._send(client, now, reply, answered)
        except UpstreamFailed as e:
            log.warning("SERVFAIL for %s: %s", shown, str(e).replace(resolution.name, shown))
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
        self._send(client, now, reply, resolution.failed())

    def _send(self, client: Client, now: float, reply: Send, done: Reply) -> None:
        """Send the core's reply and log its event (the time taken: since the question came, `now`)."""
        reply(done.answer)
        self._log(client, now, done.what)

    def _log(self, client: Client, now: float, what: Answer | None) -> None:
        if what is not None:
            self.events.add(time.time(), client.who, what, time.monotonic() - now)

    # ---- TCP ----

    def answer_tcp(self, data: bytes, ip: str, reply: Send) -> None:
        now = time.monotonic()
        self.counters.queries += 1
        live = self.live
        client = live.clients.get(ip)
        if client is None or now >= client.until:
            client = self._identify(live, ip, now, client)
        if not self.limiter.spend(client, now):
            self.counters.limited += 1
            answer = error_answer(data, Rcode.REFUSED)
            if answer is not None:
                reply(answer)
            return
        self._slow(data, client, now, reply, udp=False)

    # ---- reloads ----

    @property
    def live(self) -> Live:
        """The policy in force (the follower swaps it whole on reload)."""
        return self.follower.live

    def _tick(self) -> None:
        """Every WATCH_S, before the follower looks at the files."""
        # Answers remembered since the last tick are long-lived: collect the young generations'
        # garbage (cycles from failed look-ups included: cheap, they are young), then put the rest
        # out of the collector's sight, so no full collection ever walks the remembered answers.
        gc.collect(1)
        gc.freeze()
        if self.neighbours.refresh():
            self.live.clients.clear()  # an address has a new device: identify again
        self._report_signed_in(self.live)

    def _report_signed_in(self, live: Live) -> None:
        """Signed-in devices that asked since the last look keep their sessions from the idle time-out."""
        since, self._seen_mark = self._seen_mark, time.monotonic()
        for ip, client in live.clients.items():
            child = client.identity.child
            if child is not None and client.last >= since:
                self.events.seen.add((child.id, ip))

    async def reload(self) -> bool:
        """Load the configuration, lists and policy anew and swap them in; on any error keep the
        running policy, log why (in `counters.reload_errors`), and return False."""
        new = await self.follower.reload()
        if new is None:
            return False
        self._reloaded(new)
        return True

    def _reloaded(self, new: Live) -> None:
        _settle_garbage()
        self.counters.reloads = self.follower.reloads
        log.info("reloaded: %d profiles, lists from %s", len(new.policy.profiles), new.config.index_path)


def _ignore(_: object) -> None:
    pass


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
    """DNS over TCP: two-byte length, then the message; several questions per connection, answered as
    they are ready (RFC 7766).

    One device may hold `dns.tcp_connections_per_device` connections of TCP_MAX_CONNECTIONS in all; past
    either, a new connection is closed at once. A connection is not read while TCP_IN_FLIGHT of its
    questions are being answered or TCP_WRITE_HIGH bytes of answers wait for the client to read them, so
    a client that asks without reading costs a bounded buffer (closed if the answers still in flight
    take it past TCP_WRITE_MAX). It is closed after TCP_IDLE_S without a whole question or an answer
    (bytes trickled one by one do not count), when one question takes more than TCP_FRAME_S to arrive
    whole, or at a frame of an impossible length. Each refusal and close is counted in `Counters`."""

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.ip = ""
        self.slot = False  # holds one of the device's slots
        self.in_flight: weakref.WeakSet[_TcpReply] = weakref.WeakSet()  # replies the server still holds
        self.writing_paused = False  # the transport's buffer is over TCP_WRITE_HIGH
        self.reading_paused = False
        self.pumping = False
        self.active = 0.0  # the loop's time of the last whole question or answer
        self.frame_since: float | None = None  # when the first byte of an unfinished question came
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        server = self.server
        peer = transport.get_extra_info("peername")
        self.ip = peer[0] if peer else ""
        mine = server.tcp_open.get(self.ip)
        if mine is not None and len(mine) >= server.live.config.dns.tcp_per_device:
            server.counters.tcp_refused_device += 1
            transport.close()
            return
        if sum(map(len, server.tcp_open.values())) >= TCP_MAX_CONNECTIONS:
            server.counters.tcp_refused_full += 1
            transport.close()
            return
        server.tcp_open.setdefault(self.ip, set()).add(self)
        self.slot = True
        transport.set_write_buffer_limits(high=TCP_WRITE_HIGH)
        self.active = asyncio.get_running_loop().time()
        self._arm(self.active + TCP_IDLE_S)

    # ---- the clock ----

    def _arm(self, at: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = at
        self.timer = asyncio.get_running_loop().call_at(at, self._check_clock)

    def _deadline(self) -> tuple[float, bool]:
        """When the connection is to close, and whether for a question too slow to arrive whole."""
        idle = self.active + TCP_IDLE_S
        if self.frame_since is not None and self.frame_since + TCP_FRAME_S < idle:
            return self.frame_since + TCP_FRAME_S, True
        return idle, False

    def _check_clock(self) -> None:
        # Activity only moves `active` on; the timer, once due, looks whether the deadline has moved.
        self.timer = None
        if self.transport is None or self.transport.is_closing():
            return
        at, slow = self._deadline()
        if asyncio.get_running_loop().time() < at:
            self._arm(at)
            return
        if slow:
            self.server.counters.tcp_closed_slow += 1
        else:
            self.server.counters.tcp_closed_idle += 1
        self._close()

    def _close(self) -> None:
        assert self.transport is not None
        # Answers the client never read would keep a closing connection open for ever: drop them.
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()

    # ---- reading, with flow control ----

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._pump()

    def _pump(self) -> None:
        """Hand over the whole questions buffered while the connection may take more, then pause or
        resume reading."""
        transport = self.transport
        if self.pumping or transport is None or transport.is_closing():
            return  # (an answer written while handing over: the loop below goes on)
        self.pumping = True
        buffer, pos = self.buffer, 0
        try:
            while not self._full() and len(buffer) - pos >= 2:
                (length,) = struct.unpack_from("!H", buffer, pos)
                if length > MAX_QUERY or length < 12:
                    self.server.counters.malformed += 1
                    self.server.counters.tcp_closed_bad_frame += 1
                    buffer, pos = b"", 0
                    self._close()
                    return
                end = pos + 2 + length
                if len(buffer) < end:
                    break
                frame, pos = buffer[pos + 2 : end], end
                self.active = asyncio.get_running_loop().time()
                self.frame_since = None
                reply = _TcpReply(self)
                self.in_flight.add(reply)
                self.server.answer_tcp(frame, self.ip, reply)
                # A question the server dropped (a response, say) is held by no one now: out of the set.
                del reply
                if transport.is_closing():
                    return
        finally:
            self.buffer = buffer[pos:]
            self.pumping = False
        self._partial()
        if self._full():
            if not self.reading_paused:
                self.reading_paused = True
                self.server.counters.tcp_paused += 1
                transport.pause_reading()
        elif self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()

    def _full(self) -> bool:
        return self.writing_paused or len(self.in_flight) >= TCP_IN_FLIGHT

    def _partial(self) -> None:
        """Start the clock of an unfinished question (and stop it when there is none)."""
        buffer = self.buffer
        unfinished = len(buffer) == 1 or (
            len(buffer) >= 2 and len(buffer) < 2 + struct.unpack_from("!H", buffer)[0]
        )
        if not unfinished:
            self.frame_since = None
        elif self.frame_since is None:
            self.frame_since = asyncio.get_running_loop().time()
            if self.frame_since + TCP_FRAME_S < self.timer_at:
                self._arm(self.frame_since + TCP_FRAME_S)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._pump()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._pump()

    # ---- answering ----

    def answered(self, reply: _TcpReply, answer: bytes) -> None:
        self.in_flight.discard(reply)
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() + 2 + len(answer) > TCP_WRITE_MAX:
            # Reading stopped at TCP_WRITE_HIGH; the answers in flight then went on arriving (big ones).
            self.server.counters.tcp_closed_unread += 1
            transport.abort()
            return
        transport.write(struct.pack("!H", len(answer)) + answer)
        self.active = asyncio.get_running_loop().time()
        self._pump()  # a place in flight is free again

    def connection_lost(self, exc: Exception | None) -> None:
        if self.slot:
            self.slot = False
            mine = self.server.tcp_open.get(self.ip)
            if mine is not None:
                mine.discard(self)
                if not mine:
                    del self.server.tcp_open[self.ip]
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.buffer = b""


class _TcpReply:
    """The way back for one question on a TCP connection: called once with its answer. The connection
    counts it in flight while the server holds it (an upstream look-up)."""

    __slots__ = ("__weakref__", "queries")

    def __init__(self, queries: _TcpQueries) -> None:
        self.queries: _TcpQueries | None = queries

    def __call__(self, answer: bytes) -> None:
        queries, self.queries = self.queries, None
        if queries is not None:
            queries.answered(self, answer)


def make_server(live: Live, listen: list[tuple[str, int]], config_path: Path | None) -> DnsServer:
    """A server over `live` with its upstreams, cache and event writer (not yet listening)."""
    events = EventLog(live.config.events_path, live.zone, live.config.store)
    return DnsServer(live, upstreams_for(live, listen), events, config_path=config_path)
