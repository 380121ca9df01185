"""Asking the upstream resolvers: failover across several, a timeout per try and a deadline per
question, UDP with a TCP retry when the answer is truncated, EDNS0, one question in flight per name, and
RFC 8767's failure recheck: after a failed refresh, an expired name is answered stale at once while the
upstream is asked again in the background, rather than every question waiting out the deadline first.

Each UDP try uses a fresh connected socket: the kernel picks a random source port and drops packets from
any other address, and the id is random, so an off-path forger must guess both.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from dnslib import QTYPE, RR, DNSRecord
from dnslib.dns import EDNS0, DNSError
from dnslib.label import DNSLabelError

from appliance.in_force.live import Live
from appliance.net import split_host_port, system_resolvers
from appliance.resolver.cache import RecordCache, Records
from appliance.resolver.errors import UpstreamFailed
from appliance.resolver.protocol import OUR_UDP, Rcode

log = logging.getLogger(__name__)

NOT_YET = float("inf")  # a name's retry time while its background refresh is in flight


@dataclass(frozen=True)
class Server:
    """One upstream resolver."""

    host: str
    port: int = 53

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class UpstreamSettings:
    servers: tuple[Server, ...]
    try_timeout_s: float = 0.8
    deadline_s: float = 1.8  # SERVFAIL (or a stale answer) before clients give up on us
    max_in_flight: int = 512


class _Answer(asyncio.DatagramProtocol):
    def __init__(self, want: int, future: asyncio.Future[bytes]) -> None:
        self.want, self.future = want, future

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) >= 2 and struct.unpack_from("!H", data)[0] == self.want and not self.future.done():
            self.future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class Upstreams:
    """Resolves (name, type) through the cache and the upstream servers. Lives on one event loop."""

    def __init__(self, settings: UpstreamSettings, cache: RecordCache) -> None:
        self.settings = settings
        self.cache = cache
        self._preferred = 0
        self._in_flight: dict[tuple[str, int], asyncio.Future[Records]] = {}
        self.failures = 0
        # RFC 8767's failure recheck. Names whose last upstream question failed, with when they may be
        # asked again; and until when every upstream counts as silent (a question none of them answered
        # at all: a black-holed line), which answers every expired name stale at once.
        self._failing: dict[tuple[str, int], float] = {}
        self._silent_until = 0.0
        self.background = 0  # refreshes started behind a stale answer

    async def resolve(self, name: str, qtype: int) -> tuple[Records, bool]:
        """The records for (name, qtype) and whether they are stale (every upstream failed).

        A name whose last upstream question failed less than `cache.failure_recheck_s` ago, or any name
        while every upstream is silent, is answered stale at once if it has a stale answer; the upstream
        is asked again in the background (one question per name, at most once per recheck period).
        Raises UpstreamFailed when nothing answered before the deadline and nothing stale is kept.
        """
        now = time.monotonic()
        fresh = self.cache.fresh(name, qtype, now)
        if fresh is not None:
            return fresh, False
        key = (name, qtype)
        retry_at = self._failing.get(key)
        if retry_at is not None or now < self._silent_until:
            stale = self.cache.stale(name, qtype, now)
            if stale is not None:
                if retry_at is None or now >= retry_at:
                    self._refresh(key)
                return stale, True
        pending = self._in_flight.get(key)
        if pending is None:
            if len(self._in_flight) >= self.settings.max_in_flight:
                return self._stale_or_fail(name, qtype, "too many questions in flight")
            pending = self._start(key)
        try:
            return await asyncio.shield(pending), False
        except UpstreamFailed as e:
            return self._stale_or_fail(name, qtype, str(e))

    def _start(self, key: tuple[str, int]) -> asyncio.Future[Records]:
        pending = asyncio.ensure_future(self._ask(*key))
        self._in_flight[key] = pending
        pending.add_done_callback(lambda _f: self._in_flight.pop(key, None))
        return pending

    def _refresh(self, key: tuple[str, int]) -> None:
        """Ask for `key` in the background (a stale answer went out), unless it is already asked."""
        if key in self._in_flight or len(self._in_flight) >= self.settings.max_in_flight:
            return
        # Until this question ends, the next ones for the name wait for no one: no retry before then.
        self._failing[key] = NOT_YET
        self.background += 1

        def done(future: asyncio.Future[Records]) -> None:
            if self._failing.get(key) == NOT_YET:  # ended neither way (cancelled, a bug): ask anew next time
                del self._failing[key]
            if not future.cancelled():
                future.exception()  # its outcome is in the cache or the failure recheck: no one awaits it

        self._start(key).add_done_callback(done)

    def _failed(self, key: tuple[str, int], now: float, *, silent: bool) -> None:
        recheck = self.cache.settings.failure_recheck_s
        failing = self._failing
        if not recheck:  # (turned off: every question asks again, and waits)
            failing.pop(key, None)
            return
        if key not in failing and len(failing) >= self.cache.settings.entries:
            for old in list(failing)[: len(failing) // 10 or 1]:  # the oldest tenth (insertion order)
                del failing[old]
        failing.pop(key, None)
        failing[key] = now + recheck
        if silent:
            self._silent_until = now + recheck

    def _stale_or_fail(self, name: str, qtype: int, why: str) -> tuple[Records, bool]:
        stale = self.cache.stale(name, qtype, time.monotonic())
        if stale is None:
            raise UpstreamFailed(f"{name} {QTYPE.get(qtype, qtype)}: {why}")
        return stale, True

    async def _ask(self, name: str, qtype: int) -> Records:
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.deadline_s
        servers, errors = s.servers, []
        refused: set[int] = set()  # servers that said no (or are not there): not asked again
        attempt = 0
        while len(refused) < len(servers) and (left := deadline - loop.time()) > 0.01:
            index = (self._preferred + attempt) % len(servers)
            attempt += 1
            if index in refused:
                continue
            server = servers[index]
            try:
                rcode, answer, authority = await self._ask_one(
                    server, name, qtype, min(s.try_timeout_s, left)
                )
            except TimeoutError:
                errors.append(f"{server}: no answer in time")
                continue  # a lost packet: this server may be asked again while time is left
            except (OSError, DNSError, DNSLabelError, ValueError, EOFError) as e:
                errors.append(f"{server}: {type(e).__name__} {e}".rstrip())
                refused.add(index)
                continue
            if rcode not in (Rcode.NOERROR, Rcode.NXDOMAIN):
                known = rcode in Rcode._value2member_map_
                errors.append(f"{server}: answered {Rcode(rcode).name if known else rcode}")
                refused.add(index)
                continue
            self._preferred = index
            self._failing.pop((name, qtype), None)
            self._silent_until = 0.0
            return self.cache.store(name, qtype, rcode, answer, authority, time.monotonic())
        self.failures += 1
        # Silent: every try timed out; a refusal or an error answer is a server that is there.
        self._failed((name, qtype), time.monotonic(), silent=not refused and bool(servers))
        if not servers:
            raise UpstreamFailed("no upstream resolver is configured (dns.upstreams)")
        self._preferred = (self._preferred + 1) % len(servers)
        raise UpstreamFailed("no upstream answered: " + "; ".join(errors[-len(servers) :]))

    async def _ask_one(
        self, server: Server, name: str, qtype: int, timeout: float
    ) -> tuple[int, list[RR], list[RR]]:
        query = DNSRecord.question(name or ".")
        query.q.qtype = qtype  # by number: dnslib names only the types it knows
        query.header.id = secrets.randbits(16)
        query.add_ar(EDNS0(udp_len=OUR_UDP))
        wire = query.pack()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        data = await asyncio.wait_for(self._udp(server, wire, query.header.id), timeout)
        reply = DNSRecord.parse(data)
        if reply.header.tc:
            # The TCP retry has what is left of this try's time, not a fresh timeout.
            data = await asyncio.wait_for(self._tcp(server, wire), max(0.01, deadline - loop.time()))
            reply = DNSRecord.parse(data)
        _check(reply, query)
        return reply.header.rcode, list(reply.rr), list(reply.auth)

    async def _udp(self, server: Server, wire: bytes, ident: int) -> bytes:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Answer(ident, future), remote_addr=(server.host, server.port), family=server.family
        )
        try:
            transport.sendto(wire)
            return await future
        finally:
            transport.close()

    async def _tcp(self, server: Server, wire: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()


def _check(reply: DNSRecord, query: DNSRecord) -> None:
    """Refuse an answer that is not to our question (a forger or a confused server)."""
    if reply.header.id != query.header.id or not reply.header.qr:
        raise ValueError("an answer with the wrong id")
    if len(reply.questions) != 1:
        raise ValueError("an answer without our question")
    q = reply.questions[0]
    if q.qtype != query.q.qtype or str(q.qname).lower() != str(query.q.qname).lower():
        raise ValueError("an answer to another question")


def parse_servers(texts: Sequence[str]) -> tuple[Server, ...]:
    """`9.9.9.9`, `9.9.9.9:53`, `[2620:fe::fe]:53` or `2620:fe::fe` as servers; ValueError if bad."""
    import ipaddress

    servers = []
    for text in texts:
        host, port = split_host_port(text, 53)
        ipaddress.ip_address(host)
        servers.append(Server(host, port))
    return tuple(servers)


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


def upstreams_for(live: Live, listening: list[tuple[str, int]]) -> Upstreams:
    """The upstreams the DNS filter asks, and the proxy with it: `upstream_servers`, the per-try and give-up
    deadlines of `dns`, and a record cache of `dns.cache`'s size."""
    dns = live.config.dns
    settings = UpstreamSettings(upstream_servers(live, listening), dns.try_timeout_s, dns.servfail_after_s)
    return Upstreams(settings, RecordCache(dns.cache))


def parse_listen(texts: tuple[str, ...] | list[str]) -> list[tuple[str, int]]:
    """The DNS filter's listening addresses (`dns.listen`, port 53 unless given)."""
    return [split_host_port(t, 53) for t in texts]
