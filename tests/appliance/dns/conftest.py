"""The DNS filter's test bench: the sans-I/O core asked with a question's bytes (`Answering`: no socket,
upstream records handed to it from a `Zone`); and, end to end, a fake upstream resolver on loopback
(dnspython, UDP and TCP), the real server running on its own event loop in a thread, and a client that
asks from a chosen loopback address (the devices in the test configuration are told apart by their
127.0.0.x address)."""

from __future__ import annotations

import asyncio
import errno
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from dnslib import DNSRecord

from appliance.config import load_config
from appliance.dns.core import Counters, Reply, Resolution, resolve
from appliance.dns.server import DnsServer, make_server
from appliance.in_force.live import Client, Live, load_live
from appliance.lists import compile_lists
from appliance.resolver.cache import RecordCache

KIDS, TEENS, STRICT, STAFF, LIMITED = "127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15"
GUEST = "127.0.0.99"

PROFILES = """
profiles:
  guest:
    description: Devices nobody knows.
    blocked_categories: [adult, gambling, dating]
    safe_search: {enabled: true, youtube: moderate}
  kids:
    description: Children; blocks show the block page.
    blocked_categories: [adult, gambling, social-networks, chat, dating]
    safe_search: {enabled: true, youtube: strict}
    blocked_answer: block-page
  teens:
    description: Teenagers; blocks answer 0.0.0.0.
    blocked_categories: [adult]
    safe_search: {enabled: true, youtube: moderate}
    blocked_answer: zero
    log_allowed: event
  strict:
    description: Blocks answer no such name.
    blocked_categories: [adult]
    safe_search: {enabled: false}
    blocked_answer: nxdomain
  staff:
    description: A technician.
    bypass: true
"""


def config_text(
    data_dir: Path,
    profiles: Path,
    upstreams: list[str],
    extra: str = "",
    rate_limit: str = "",
    cache: str = "",
) -> str:
    """The demo configuration with absolute list paths, our test profiles, devices and upstreams;
    `cache` adds keys to `dns.cache` (`", failure_recheck_s: 2"`)."""
    shipped = resources.files("appliance") / "defaults"
    text = (shipped / "appliance.yaml").read_text(encoding="utf-8")
    text = text.replace("path: lists/", f"path: {shipped / 'lists'}/").split("\npolicy:")[0]
    ups = ", ".join(f'"{u}"' for u in upstreams)
    return f"""{text}
data_dir: {data_dir}
policy:
  timezone: Europe/London
  profiles: {profiles}
devices:
  - {{name: kids-tablet, network: {KIDS}, profile: kids}}
  - {{name: teen-laptop, network: {TEENS}, profile: teens}}
  - {{name: strict-pc, network: {STRICT}, profile: strict}}
  - {{name: tech-laptop, network: {STAFF}, profile: staff}}
  - {{name: limited-pc, network: {LIMITED}, profile: teens}}
dns:
  upstreams: [{ups}]
  upstream_timeout_s: 0.6
  servfail_after_s: 1.8
  cache: {{min_ttl: 0, serve_stale_s: 600{cache}}}
  block_page_addresses: ["192.168.50.1", "fd00::1"]
  rate_limit: {rate_limit or "{per_second: 100000, burst: 100000}"}
{extra}"""


# ---- upstream records ----


class Zone:
    """An upstream's fixed records: `records[(name, type)] = (ttl, [rdata text])`; names it does not
    know get NXDOMAIN with an SOA; `cname[name] = target` answers a CNAME chain."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], tuple[int, list[str]]] = {}
        self.cname: dict[str, str] = {}

    def add(self, name: str, rtype: str, *rdata: str, ttl: int = 300) -> None:
        self.records[(name, rtype)] = (ttl, list(rdata))

    def reply(self, query: dns.message.Message) -> dns.message.Message:
        """The upstream's reply to `query`."""
        q = query.question[0]
        name = q.name.to_text().rstrip(".").lower()
        rtype = dns.rdatatype.to_text(q.rdtype)
        reply = dns.message.make_response(query)
        owner = name
        if name in self.cname:
            owner = self.cname[name]
            reply.answer.append(dns.rrset.from_text(name + ".", 300, "IN", "CNAME", owner + "."))
        found = self.records.get((owner, rtype))
        if found is not None:
            ttl, rdata = found
            reply.answer.append(dns.rrset.from_text(owner + ".", ttl, "IN", rtype, *rdata))
        elif not any(n == owner for n, _ in self.records) and name not in self.cname:
            reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.authority.append(
                dns.rrset.from_text("test.", 300, "IN", "SOA", "ns.test. admin.test. 1 3600 600 86400 120")
            )
        return reply


def add_standard_records(zone: Zone) -> None:
    """The records every test's upstream has: an encyclopaedia, and the search engines' safe names."""
    zone.add("en.wikipedia.org", "A", "198.51.100.10")
    zone.add("en.wikipedia.org", "AAAA", "2001:db8::10")
    zone.add("forcesafesearch.google.com", "A", "216.239.38.120")  # only IPv4, as the real one
    zone.add("forcesafesearch.google.com", "HTTPS", '1 . alpn="h2,h3"')
    zone.add("www.google.com", "A", "142.250.1.1")
    zone.add("www.google.com", "HTTPS", '1 . alpn="h2,h3" ipv4hint="142.250.1.1"')
    for safe in ("restrict.youtube.com", "restrictmoderate.youtube.com", "strict.bing.com"):
        zone.add(safe, "A", "216.239.38.119")
        zone.add(safe, "AAAA", "2001:4860:4802:32::78")
    for safe in ("safe.duckduckgo.com", "strict-safe-search.ecosia.org", "safesearch.pixabay.com"):
        zone.add(safe, "A", "203.0.113.30")
    zone.add("familysearch.yandex.ru", "A", "213.180.193.56")


# ---- the sans-I/O core ----


class Answering:
    """The DNS filter's core over a compiled world, asked with a question's bytes: no socket, no event
    loop. Where the core asks for upstream records, `zone`'s are handed to it (through the record cache,
    as the upstream code stores them); `looked_up` lists those (name, type) look-ups."""

    def __init__(self, live: Live, zone: Zone) -> None:
        self.live, self.zone = live, zone
        self.counters = Counters()
        self.looked_up: list[tuple[str, str]] = []

    def client(self, source: str) -> Client:
        known = self.live.clients.get(source)
        return known if known is not None else self.live.client(source, None, time.monotonic())

    def ask_bytes(self, data: bytes, *, source: str = GUEST, tcp: bool = False) -> Reply | None:
        """The core's reply to `data` from `source`: at once, or after `zone`'s records (None: dropped)."""
        now = time.monotonic()
        client = self.client(source)
        done = resolve(
            data, client, self.live, now=now, wall=time.time(), udp=not tcp, counters=self.counters
        )
        if isinstance(done, Resolution):
            self.looked_up.append((done.name, dns.rdatatype.to_text(done.qtype)))
            query = dns.message.make_query(done.name, done.qtype)
            reply = DNSRecord.parse(self.zone.reply(query).to_wire(max_size=65535))
            cache = RecordCache(self.live.config.dns.cache)
            records = cache.store(done.name, done.qtype, reply.header.rcode, reply.rr, reply.auth, now)
            done = done.answered(records, now=time.monotonic(), wall=time.time())
        return done

    def ask(
        self,
        name: str,
        rtype: str = "A",
        *,
        source: str = GUEST,
        tcp: bool = False,
        edns: bool = False,
        payload: int = 1232,
    ) -> dns.message.Message:
        """The reply to a question for (`name`, `rtype`) from `source`, as the device reads it."""
        q = dns.message.make_query(name, rtype, use_edns=0 if edns else False, payload=payload)
        done = self.ask_bytes(q.to_wire(), source=source, tcp=tcp)
        assert done is not None
        return dns.message.from_wire(done.answer)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Live:
    """The policy in force over the demo lists, the test profiles and devices (compiled once a module)."""
    folder = tmp_path_factory.mktemp("world")
    profiles = folder / "profiles.yaml"
    profiles.write_text(PROFILES, encoding="utf-8")
    config = folder / "appliance.yaml"
    config.write_text(config_text(folder / "var", profiles, ["127.0.0.1:9"]), encoding="utf-8")
    compile_lists(load_config(config), now=datetime.now(UTC))
    return load_live(config)


@pytest.fixture
def zone() -> Zone:
    zone = Zone()
    add_standard_records(zone)
    return zone


@pytest.fixture
def core(world: Live, zone: Zone) -> Answering:
    """The core over `world` (each test's devices identified afresh, nothing remembered) and `zone`."""
    world.clients.clear()
    for fast in world.fast.values():
        fast.clear()
    return Answering(world, zone)


# ---- the fake upstream ----


class FakeUpstream(Zone):
    """An upstream resolver on loopback serving a `Zone`'s records. `truncate` names answer TC over UDP
    (full over TCP); `down` makes it drop every question."""

    def __init__(self) -> None:
        super().__init__()
        self.truncate: set[str] = set()
        self.down = False
        self.slow_suffix, self.slow_s = "", 0.0  # names ending so are answered only after slow_s
        self.asked: list[tuple[str, str, str]] = []  # (name, type, udp|tcp)
        # The port UDP was given may be taken for TCP (a connection's local port, one in TIME_WAIT after
        # a benchmark): then another pair is tried.
        for attempt in range(20):
            self._udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), self._udp_handler())
            port = self._udp.server_address[1]
            try:
                self._tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), self._tcp_handler())
                break
            except OSError as e:
                self._udp.server_close()
                if e.errno != errno.EADDRINUSE or attempt == 19:
                    raise
        self.address = f"127.0.0.1:{port}"
        for server in (self._udp, self._tcp):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        query = dns.message.from_wire(wire)
        q = query.question[0]
        name = q.name.to_text().rstrip(".").lower()
        rtype = dns.rdatatype.to_text(q.rdtype)
        self.asked.append((name, rtype, transport))
        if self.down:
            return None
        if self.slow_suffix and name.endswith(self.slow_suffix):
            time.sleep(self.slow_s)
        if transport == "udp" and name in self.truncate:
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.TC
            return reply.to_wire()
        reply = self.reply(query)
        # Over TCP any size goes (dnspython would hold a reply to the EDNS size the question offered).
        return reply.to_wire(max_size=65535 if transport == "tcp" else 0)

    def _udp_handler(self) -> type[socketserver.BaseRequestHandler]:
        upstream = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                out = upstream.answer(data, "udp")
                if out is not None:
                    sock.sendto(out, self.client_address)

        return Handler

    def _tcp_handler(self) -> type[socketserver.BaseRequestHandler]:
        upstream = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock = self.request
                sock.settimeout(5)
                length = int.from_bytes(_read(sock, 2), "big")
                out = upstream.answer(_read(sock, length), "tcp")
                if out is not None:
                    sock.sendall(len(out).to_bytes(2, "big") + out)

        return Handler

    def close(self) -> None:
        for server in (self._udp, self._tcp):
            server.shutdown()
            server.server_close()


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


# ---- the server under test ----


class Running:
    """The real DNS filter on 127.0.0.1 (and ::1) at a free port, on an event loop in a thread."""

    def __init__(self, config_path: Path, *, batched: bool = True) -> None:
        self.config_path = config_path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        live = load_live(config_path)
        self.server: DnsServer = make_server(live, [("127.0.0.1", 0)], config_path)
        self.server.batched = batched
        self.call(self.server.start([("127.0.0.1", 0)]))
        self.port = self.server.addresses[0][1]

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def query(
        self, name: str, rtype: str = "A", *, source: str = GUEST, tcp: bool = False, edns: bool = False
    ) -> dns.message.Message:
        q = dns.message.make_query(name, rtype, use_edns=0 if edns else False)
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port, source=source, timeout=5)
        return dns.query.udp(q, "127.0.0.1", port=self.port, source=source, timeout=5)

    def flush_log(self) -> None:
        """Hand the events gathered on the loop to the writer, and write them now."""

        async def hand_over() -> None:
            self.server.events.hand_over()

        self.call(hand_over())
        self.server.events.flush()

    def close(self) -> None:
        if not self.thread.is_alive():
            return
        self.call(self.server.stop())
        self.server.events.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def answers(reply: dns.message.Message) -> list[tuple[str, str, str]]:
    """(owner, type, data) of every answer record, owners without the trailing dot."""
    return [
        (rrset.name.to_text().rstrip("."), dns.rdatatype.to_text(rrset.rdtype), rd.to_text())
        for rrset in reply.answer
        for rd in rrset
    ]


def rcode(reply: dns.message.Message) -> str:
    return dns.rcode.to_text(reply.rcode())


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    add_standard_records(fake)
    yield fake
    fake.close()


@pytest.fixture
def make_dns(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Callable[..., Running]]:
    """Start the DNS filter over the demo lists, the test profiles and `upstream` (or given upstreams);
    `extra` adds configuration text."""
    started: list[Running] = []

    def start(
        extra: str = "",
        upstreams: list[str] | None = None,
        rate_limit: str = "",
        *,
        batched: bool = True,
        cache: str = "",
    ) -> Running:
        profiles = tmp_path / "profiles.yaml"
        profiles.write_text(PROFILES, encoding="utf-8")
        config = tmp_path / "appliance.yaml"
        ups = upstreams if upstreams is not None else [upstream.address]
        text = config_text(tmp_path / "var", profiles, ups, extra, rate_limit, cache)
        config.write_text(text, encoding="utf-8")
        compile_lists(load_config(config), now=datetime.now(UTC))
        running = Running(config, batched=batched)
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


@pytest.fixture
def shared_safesearch() -> Path:
    """../shared/data/safesearch (the rewrite lists AdGuard Home ships), or skip."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "data" / "safesearch"
        if candidate.is_dir():
            return candidate
    pytest.skip("../shared/data/safesearch is not here")
