"""Bad input: whatever a client sends, the filter answers FORMERR, NOTIMP or REFUSED, or drops it, and
keeps answering everyone else. Nothing crashes it, nothing makes it loop, and it never answers a response.

Packets are built with dnslib and scapy (well-formed parts) and by hand (the malformed parts), sent over
raw sockets to the real server on loopback; the valid questions that prove it still works are dnspython's.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dns.message
import pytest
from dnslib import CLASS, QTYPE, DNSHeader, DNSQuestion, DNSRecord, EDNSOption
from dnslib.dns import EDNS0
from dnslib.label import DNSBuffer
from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRROPT
from scapy.packet import fuzz

from appliance.config import load_config
from appliance.lists import compile_lists
from tests.appliance.dns.conftest import (
    GUEST,
    LIMITED,
    PROFILES,
    FakeUpstream,
    Running,
    answers,
    config_text,
    rcode,
)

ID = 0x1234
WIKIPEDIA = [("en.wikipedia.org", "A", "198.51.100.10")]
NO_REPLY_S = 0.3  # how long "dropped" waits for a reply that must not come
REPLY_S = 2.0  # how long an expected reply may take (loopback and a fake upstream: milliseconds)


# ---- building packets ----


def header(*, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0, ident: int = ID, **flags: int) -> bytes:
    """A DNS header (dnslib) with the given counts and flags; RD set unless told otherwise."""
    buffer = DNSBuffer()
    DNSHeader(id=ident, q=qd, a=an, auth=ns, ar=ar, **({"rd": 1} | flags)).pack(buffer)
    return bytes(buffer.data)


def question(name: str = "en.wikipedia.org", qtype: int = QTYPE.A, qclass: int = CLASS.IN) -> bytes:
    """A well-formed question section entry (dnslib)."""
    buffer = DNSBuffer()
    DNSQuestion(name, qtype, qclass).pack(buffer)
    return bytes(buffer.data)


def name(*labels: bytes) -> bytes:
    """A name on the wire from raw labels, however wrong (no checks: that is the point)."""
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def opt(*, version: int = 0, size: int = 1232, options: bytes = b"") -> bytes:
    """An OPT record (dnslib), optionally with one option whose data is `options`."""
    buffer = DNSBuffer()
    opts = [EDNSOption(10, options)] if options else []
    EDNS0(udp_len=size, version=version, opts=opts).pack(buffer)
    return bytes(buffer.data)


def padded(size: int) -> bytes:
    """A valid question with EDNS, padded (an OPT option) to exactly `size` bytes."""
    bare = header(ar=1) + question() + opt(options=b"x")
    return header(ar=1) + question() + opt(options=b"x" * (1 + size - len(bare)))


A_IN = struct.pack("!HH", QTYPE.A, CLASS.IN)
QUERY = header() + question()
LONG_LABELS = (b"a" * 63, b"b" * 63, b"c" * 63)


# ---- talking to the server ----


def udp_socket(source: str = GUEST) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    return sock


def ask_raw(running: Running, packet: bytes, wait: float, source: str = GUEST) -> bytes | None:
    """Send `packet` over UDP; the first reply within `wait` seconds, or None."""
    with udp_socket(source) as sock:
        sock.settimeout(wait)
        sock.sendto(packet, ("127.0.0.1", running.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def tcp_connect(running: Running, source: str = GUEST) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", running.port), timeout=REPLY_S, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def frame(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"the server closed the connection after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> bytes:
    (length,) = struct.unpack("!H", read_exactly(sock, 2))
    return read_exactly(sock, length)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (EOF or reset) rather than answering or waiting."""
    sock.settimeout(REPLY_S)
    try:
        return sock.recv(65535) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def question_of(packet: bytes) -> bytes:
    """The (well-formed) question section of `packet`: its name, type and class."""
    end = 12
    while packet[end]:
        end += 1 + packet[end]
    return packet[12 : end + 5]


@dataclass(frozen=True)
class Reply:
    ident: int
    qr: bool
    opcode: int
    rcode: int
    qdcount: int

    @classmethod
    def of(cls, data: bytes) -> Reply:
        ident, flags, qdcount = struct.unpack_from("!HHH", data)
        rcode = flags & 0xF
        if data[-11:-8] == b"\x00\x00\x29":  # an OPT record last: the rcode's upper bits are in it
            rcode |= data[-6] << 4
        return cls(ident, bool(flags & 0x8000), (flags >> 11) & 0xF, rcode, qdcount)


RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5, "BADVERS": 16}


def still_answers(running: Running, *, tcp: bool = True) -> None:
    """A valid question (dnspython) is answered correctly over UDP, and over TCP unless told not to."""
    for over_tcp in (False, True) if tcp else (False,):
        reply = running.query("en.wikipedia.org", "A", source=GUEST, tcp=over_tcp)
        assert rcode(reply) == "NOERROR", f"tcp={over_tcp}"
        assert answers(reply) == WIKIPEDIA, f"tcp={over_tcp}"


@dataclass
class Bench:
    """The running filter, and every error its event loop reported since the test began: an exception
    escaping a callback or a task, which is what a crash looks like under asyncio (the loop survives)."""

    running: Running
    errors: list[dict[str, Any]] = field(default_factory=list)

    def loop_errors(self) -> list[str]:
        return [f"{ctx.get('message')}: {ctx.get('exception')!r}" for ctx in self.errors]


@pytest.fixture(scope="module")
def module_upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    fake.add("en.wikipedia.org", "A", "198.51.100.10")
    fake.add("en.wikipedia.org", "AAAA", "2001:db8::10")
    fake.add("familysearch.yandex.ru", "A", "213.180.193.56")
    fake.add("safe.duckduckgo.com", "A", "203.0.113.30")
    yield fake
    fake.close()


def start_bench(tmp: Path, upstream: FakeUpstream, rate_limit: str = "") -> Bench:
    """`make_dns` for a whole module: one server takes every bad packet of the module in turn (stopping the
    fake upstream takes a second, which a fresh server per row would pay ninety times)."""
    profiles = tmp / "profiles.yaml"
    profiles.write_text(PROFILES, encoding="utf-8")
    config = tmp / "appliance.yaml"
    text = config_text(tmp / "var", profiles, [upstream.address], rate_limit=rate_limit)
    config.write_text(text, encoding="utf-8")
    compile_lists(load_config(config), now=datetime.now(UTC))
    bench = Bench(Running(config))
    loop = bench.running.loop
    loop.call_soon_threadsafe(loop.set_exception_handler, lambda _loop, ctx: bench.errors.append(ctx))
    return bench


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, module_upstream: FakeUpstream) -> Iterator[Bench]:
    bench = start_bench(tmp_path_factory.mktemp("dns"), module_upstream)
    yield bench
    bench.running.close()


@pytest.fixture
def server(shared: Bench) -> Bench:
    """The module's server, with a clean list of loop errors and proof that it answers before the test."""
    still_answers(shared.running)
    shared.errors.clear()
    return shared


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, module_upstream: FakeUpstream) -> Iterator[Bench]:
    bench = start_bench(tmp_path_factory.mktemp("dns"), module_upstream, "{per_second: 1, burst: 3}")
    yield bench
    bench.running.close()


# ---- 1. the truth table ----


def case(ident: str, packet: bytes, outcome: str) -> Any:
    """One row: `outcome` is an rcode answered with the packet's id and opcode, or "dropped" (no reply)."""
    return pytest.param(packet, outcome, id=ident)


# (id, packet, what the server does: an rcode with the same id, or "dropped": no reply at all)
BAD_UDP = [
    # Too short or too long to be a query: dropped, never answered.
    case("empty", b"", "dropped"),
    case("header-1-byte", QUERY[:1], "dropped"),
    case("header-2-bytes", QUERY[:2], "dropped"),
    case("header-4-bytes", QUERY[:4], "dropped"),
    case("header-11-bytes", QUERY[:11], "dropped"),
    case("oversized-4097-bytes", padded(4097), "dropped"),
    case("oversized-9000-bytes", padded(9000), "dropped"),
    # Responses are never answered: answering them invites loops between servers.
    case("response-qr-set", header(qr=1) + question(), "dropped"),
    case("response-qr-set-with-servfail", header(qr=1, rcode=2) + question(), "dropped"),
    case("response-qr-set-opcode-update", header(qr=1, opcode=5) + question(), "dropped"),
    case("response-qr-set-qdcount-0", header(qr=1, qd=0), "dropped"),
    case("response-qr-set-pointer-loop", header(qr=1) + b"\xc0\x0c" + A_IN, "dropped"),
    # Other opcodes than QUERY: NOTIMP (the opcode echoed).
    case("opcode-1-iquery", header(opcode=1) + question(), "NOTIMP"),
    case("opcode-2-status", header(opcode=2) + question(), "NOTIMP"),
    case("opcode-4-notify", header(opcode=4) + question(), "NOTIMP"),
    case("opcode-5-update", header(opcode=5) + question(), "NOTIMP"),
    case("opcode-15", header(opcode=15) + question(), "NOTIMP"),
    # Exactly one question, or FORMERR.
    case("qdcount-0", header(qd=0), "FORMERR"),
    case("qdcount-0-with-a-question", header(qd=0) + question(), "FORMERR"),
    case("qdcount-2", header(qd=2) + question() + question("www.google.com"), "FORMERR"),
    case("qdcount-65535", header(qd=65535) + question(), "FORMERR"),
    # Label lengths: 1..63 are labels; 0x40-0xBF are reserved types, 0xC0-0xFF compression pointers.
    case("label-length-64", header() + name(b"a" * 64, b"org") + A_IN, "FORMERR"),
    case("label-length-0x41-extended", header() + b"\x41\x00" + A_IN, "FORMERR"),
    case("label-length-0x80", header() + b"\x80" + b"a" * 0x40 + b"\x00" + A_IN, "FORMERR"),
    case("label-length-0xbf", header() + b"\xbf" + b"a" * 40 + b"\x00" + A_IN, "FORMERR"),
    case("pointer-to-itself", header() + b"\xc0\x0c" + A_IN, "FORMERR"),
    case("label-then-pointer-back-loop", header() + b"\x02en\xc0\x0c" + A_IN, "FORMERR"),
    case("pointer-forward-to-a-name", header() + b"\xc0\x12" + A_IN + name(b"en", b"org"), "FORMERR"),
    case("pointer-past-the-end", header() + b"\xff\xff" + A_IN, "FORMERR"),
    # Names that end too early or run too long.
    case("name-runs-past-the-end", header() + b"\x09wikipedia\x03or", "FORMERR"),
    case("name-without-root-label", header() + b"\x02en\x09wikipedia\x03org", "FORMERR"),
    case("name-only-a-length-byte", header() + b"\x3f", "FORMERR"),
    case("name-longer-than-255", header() + name(*LONG_LABELS, b"d" * 63, b"e") + A_IN, "FORMERR"),
    case(
        "name-of-256-bytes",
        header() + name(*LONG_LABELS, b"d" * 62) + A_IN,
        "FORMERR",
    ),
    case(
        "name-of-256-bytes-binary",
        header() + name(*LONG_LABELS, b"d" * 61 + b"\x01") + A_IN,
        "FORMERR",
    ),
    case("name-of-255-bytes-is-asked", header() + name(*LONG_LABELS, b"d" * 61) + A_IN, "NXDOMAIN"),
    # Type and class.
    case("no-type-and-class", header() + name(b"en", b"wikipedia", b"org"), "FORMERR"),
    case("type-without-class", header() + name(b"en", b"wikipedia", b"org") + b"\x00\x01", "FORMERR"),
    case("class-cut-short", header() + name(b"en", b"wikipedia", b"org") + b"\x00\x01\x00", "FORMERR"),
    case("class-ch", header() + question("version.bind", QTYPE.TXT, CLASS.CH), "NOTIMP"),
    case("class-hs", header() + question(qclass=CLASS.Hesiod), "NOTIMP"),
    case("class-any", header() + question(qclass=255), "NOTIMP"),
    case("class-0", header() + question(qclass=0), "NOTIMP"),
    case("type-any", header() + question(qtype=QTYPE.ANY), "NOTIMP"),
    # EDNS: the OPT record must be whole, and version 0.
    case("arcount-1-but-nothing-there", header(ar=1) + question(), "FORMERR"),
    case("opt-rdata-runs-past-the-end", header(ar=1) + question() + opt(options=b"12345678")[:-3], "FORMERR"),
    case("opt-rdlength-says-more", header(ar=1) + question() + opt()[:-2] + b"\x00\x10", "FORMERR"),
    case(
        "opt-fixed-part-cut-short",
        header(ar=1) + question() + opt()[:6],
        "FORMERR",
    ),
    case("edns-version-1", header(ar=1) + question() + opt(version=1), "BADVERS"),  # RFC 6891 6.1.3
    case("edns-version-255", header(ar=1) + question() + opt(version=255), "BADVERS"),
    # Names no list can hold: REFUSED (with the question as the client spelt it).
    case("space-in-a-label", header() + name(b"en wiki", b"org") + A_IN, "REFUSED"),
    case("nul-byte-in-a-label", header() + name(b"en\x00", b"org") + A_IN, "REFUSED"),
    case("binary-byte-in-a-label", header() + name(b"\xff\xfe", b"org") + A_IN, "REFUSED"),
    case("dot-inside-a-label", header() + name(b"en.wikipedia", b"org") + A_IN, "REFUSED"),
    case("utf8-in-a-label", header() + name("café".encode(), b"org") + A_IN, "REFUSED"),
    # Well-formed but odd: answered normally.
    case("largest-query-4096-bytes", padded(4096), "NOERROR"),
    case("answer-count-in-a-query-is-ignored", header(an=1) + question(), "NOERROR"),
    case("mixed-case-name", header() + question("EN.WikiPedia.ORG"), "NOERROR"),
]


@pytest.mark.parametrize(("packet", "outcome"), BAD_UDP)
def test_a_bad_udp_packet_gets_its_answer_or_none_and_the_server_answers_on(server, packet, outcome):
    running = server.running
    reply = ask_raw(running, packet, NO_REPLY_S if outcome == "dropped" else REPLY_S)
    if outcome == "dropped":
        assert reply is None, f"answered {Reply.of(reply) if len(reply) >= 12 else reply!r}"
    else:
        assert reply is not None, "no reply"
        got = Reply.of(reply)
        assert got.ident == ID
        assert got.qr
        assert got.opcode == (packet[2] >> 3) & 0xF  # the opcode echoed
        assert got.rcode == RCODES[outcome]
        if got.qdcount:  # the question echoed byte for byte, the name's case as the client spelt it
            assert reply[12:].startswith(question_of(packet))
    still_answers(running)
    assert server.loop_errors() == []


def test_every_short_header_is_dropped(server):
    running = server.running
    malformed = running.server.counters.malformed
    with udp_socket() as sock:
        for length in range(12):
            sock.sendto(QUERY[:length], ("127.0.0.1", running.port))
        sock.settimeout(NO_REPLY_S)
        with pytest.raises(TimeoutError):
            sock.recv(65535)
    assert running.server.counters.malformed - malformed == 12
    still_answers(running)
    assert server.loop_errors() == []


OVER_THE_LIMIT = [
    pytest.param(header(qr=1) + question(), id="a-response"),
    pytest.param(header(qr=1, rcode=5) + question(), id="a-refused-response"),
    pytest.param(QUERY[:4], id="a-4-byte-packet"),
]


@pytest.mark.parametrize("packet", OVER_THE_LIMIT)
def test_over_its_rate_limit_a_device_still_gets_no_answer_to_a_response_or_junk(limited, packet):
    running = limited.running
    codes = [rcode(running.query("en.wikipedia.org", source=LIMITED)) for _ in range(6)]
    assert codes[-1] == "REFUSED"  # burst 3 at 1 a second: over the limit
    reply = ask_raw(running, packet, NO_REPLY_S, source=LIMITED)
    assert reply is None, f"answered {Reply.of(reply) if len(reply) >= 12 else reply!r}"


# ---- 2. fuzzing ----

FUZZ_PACKETS = 3000
FUZZ_BATCH = 500
FUZZ_CHUNK = 50  # sent back to back, then wait for the server to have read them (no kernel drops)
WORDS = (b"en", b"wikipedia", b"org", b"www", b"google", b"com", b"example", b"xn--caf-dma", b"_dmarc", b"*")


def random_label(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.6:
        return rng.choice(WORDS)
    if kind < 0.8:
        return bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789-_") for _ in range(rng.randint(1, 63)))
    # Odd bytes, but no dot: scapy and dnslib would split the label there.
    return bytes(rng.choice(b"ab \x00\x01\x7f\xc0\xff/@\\") for _ in range(rng.randint(1, 20)))


def random_name(rng: random.Random, most: int = 6) -> bytes:
    return b".".join(random_label(rng) for _ in range(rng.randint(1, most)))


def random_type(rng: random.Random) -> int:
    return rng.choice((1, 1, 1, 28, 28, 65, 5, 15, 16, 41, 250, 251, 252, 255, 0, rng.getrandbits(16)))


def scapy_random_fields(rng: random.Random) -> bytes:
    """A scapy DNS message with every header field, count and record drawn at random."""
    questions = [
        DNSQR(
            qname=random_name(rng),
            qtype=random_type(rng),
            qclass=1 if rng.random() < 0.85 else rng.choice((3, 4, 254, 255, rng.getrandbits(16))),
        )
        for _ in range(rng.choice((0, 1, 1, 1, 1, 2)))
    ]
    records = [
        DNSRR(rrname=random_name(rng, 3), type=1, ttl=rng.getrandbits(32), rdata="192.0.2.1")
        for _ in range(rng.choice((0, 0, 1, 2)))
    ]
    counts = {
        key: rng.choice((None, None, 0, 1, 2, rng.getrandbits(16)))
        for key in ("qdcount", "ancount", "nscount", "arcount")
    }
    fields = {key: value for key, value in counts.items() if value is not None}
    return bytes(
        DNS(
            id=rng.getrandbits(16),
            qr=int(rng.random() < 0.1),
            opcode=0 if rng.random() < 0.85 else rng.choice((1, 2, 4, 5, 15)),
            aa=rng.getrandbits(1),
            tc=rng.getrandbits(1),
            rd=rng.getrandbits(1),
            ra=rng.getrandbits(1),
            z=rng.getrandbits(1),
            ad=rng.getrandbits(1),
            cd=rng.getrandbits(1),
            rcode=rng.choice((0, 0, 0, rng.getrandbits(4))),
            qd=questions,
            an=records,
            ar=[DNSRROPT(rclass=rng.choice((512, 1232, 4096, 0)))] if rng.random() < 0.3 else [],
            **fields,
        )
    )


def scapy_fuzzed(rng: random.Random) -> bytes:
    """scapy's fuzz(): every field not given is random (scapy draws from `random`, seeded from `rng`)."""
    template = rng.choice(
        (
            # All of it random: almost all refused on the header (QR, opcode) or the class.
            lambda: DNS(qd=[DNSQR()]),
            lambda: DNS(qd=[DNSQR()], an=[DNSRR()], ar=[DNSRROPT()]),
            # A standard query of class IN: the rest random (counts, flags, the name's bytes, the OPT).
            lambda: DNS(qr=0, opcode=0, qd=[DNSQR(qclass=1)]),
            lambda: DNS(qr=0, opcode=0, qd=[DNSQR(qname=random_name(rng), qclass=1)], ar=[DNSRROPT()]),
            lambda: DNS(qr=0, opcode=0, qd=[DNSQR(qname=random_name(rng), qclass=1)], an=[DNSRR()]),
        )
    )
    packet = template()
    random.seed(rng.getrandbits(32))
    return bytes(fuzz(packet))


def dnslib_mutated(rng: random.Random) -> bytes:
    """A valid dnslib question, then one to four random mutations of its bytes."""
    names = ("en.wikipedia.org", "www.google.com", "a.b.c.d.e.example", "xn--caf-dma.example")
    record = DNSRecord.question(rng.choice(names), rng.choice(("A", "AAAA", "HTTPS", "MX", "TXT")))
    record.header.id = rng.getrandbits(16)
    if rng.random() < 0.4:
        record.add_ar(EDNS0(udp_len=rng.choice((512, 1232, 4096))))
    data = bytearray(record.pack())
    for _ in range(rng.randint(1, 4)):
        how, at = rng.random(), rng.randrange(len(data) + 1)
        if how < 0.3 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)  # flip a bit
        elif how < 0.45 and data:
            data[min(at, len(data) - 1)] = rng.getrandbits(8)  # overwrite a byte
        elif how < 0.6:
            del data[at:]  # truncate
        elif how < 0.75:
            data[at:at] = rng.randbytes(rng.randint(1, 8))  # insert junk
        elif how < 0.85:  # a compression pointer: to the question's name, to itself, anywhere
            data[at:at] = struct.pack("!H", 0xC000 | rng.choice((12, at, rng.getrandbits(14))))
        elif how < 0.95:
            del data[at : at + rng.randint(1, 8)]  # cut a piece out
        else:
            data[at:at] = data[: rng.randint(1, 40)]  # repeat the start
    return bytes(data)


def fuzz_packets(rng: random.Random, count: int) -> list[bytes]:
    makers = (scapy_random_fields, scapy_fuzzed, dnslib_mutated)
    saved = random.getstate()  # scapy's fuzz() draws from `random`: seeded per packet, restored after
    try:
        return [makers[i % len(makers)](rng) for i in range(count)]
    finally:
        random.setstate(saved)


def send_paced(running: Running, sock: socket.socket, packets: list[bytes], replies: list[bytes]) -> None:
    """Send `packets` in chunks; after each, wait until the server has read them all (its query count),
    so none is lost in a full socket buffer, and collect whatever came back so far."""
    counters = running.server.counters
    for start in range(0, len(packets), FUZZ_CHUNK):
        chunk = packets[start : start + FUZZ_CHUNK]
        target = counters.queries + len(chunk)
        for packet in chunk:
            sock.sendto(packet, ("127.0.0.1", running.port))
        deadline = time.monotonic() + REPLY_S
        while counters.queries < target and time.monotonic() < deadline:
            time.sleep(0.002)
        drain(sock, replies)


def drain(sock: socket.socket, replies: list[bytes]) -> None:
    sock.setblocking(False)
    try:
        while True:
            replies.append(sock.recv(65535))
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)


def test_thousands_of_fuzzed_packets_never_stop_the_server(server):
    running = server.running
    counters = running.server.counters
    rng = random.Random(1234)
    packets = fuzz_packets(rng, FUZZ_PACKETS)
    still_answers(running)
    queries, malformed = counters.queries, counters.malformed
    replies: list[bytes] = []
    with udp_socket() as sock:
        for start in range(0, FUZZ_PACKETS, FUZZ_BATCH):
            send_paced(running, sock, packets[start : start + FUZZ_BATCH], replies)
            still_answers(running, tcp=False)
        time.sleep(0.5)  # the last answers from upstream
        drain(sock, replies)
    still_answers(running)

    batches = FUZZ_PACKETS // FUZZ_BATCH
    assert counters.queries - queries >= FUZZ_PACKETS + batches  # every packet was read
    assert counters.malformed - malformed >= FUZZ_PACKETS // 2
    assert running.thread.is_alive()
    assert running.loop.is_running()
    assert server.loop_errors() == []
    # Every reply is a response to something we sent: never a query, never more than one per packet.
    sent_ids = {packet[:2] for packet in packets if len(packet) >= 2}
    assert len(replies) <= FUZZ_PACKETS
    assert all(Reply.of(reply).qr for reply in replies)
    assert {reply[:2] for reply in replies} <= sent_ids


# ---- 3. TCP framing ----


def dnslib_query(name: str, qtype: str, ident: int) -> bytes:
    record = DNSRecord.question(name, qtype)
    record.header.id = ident
    return bytes(record.pack())


GOOD = dnslib_query("en.wikipedia.org", "A", 0x4242)


def check_wikipedia(data: bytes, ident: int) -> None:
    reply = dns.message.from_wire(data)
    assert reply.id == ident
    assert rcode(reply) == "NOERROR"
    assert answers(reply) == WIKIPEDIA


def tcp_truncated_then_closed(sock: socket.socket) -> None:
    sock.sendall(struct.pack("!H", 100) + GOOD[:10])
    sock.close()


def tcp_truncated_then_silent(sock: socket.socket) -> None:
    sock.sendall(struct.pack("!H", 100) + GOOD[:10])
    sock.settimeout(NO_REPLY_S)
    with pytest.raises(TimeoutError):  # nothing to answer yet, and the connection stays open
        sock.recv(65535)


def tcp_bad_length(length: int) -> Callable[[socket.socket], None]:
    def run(sock: socket.socket) -> None:
        sock.sendall(struct.pack("!H", length) + GOOD[: min(length, 40)])
        assert closed_by_server(sock)

    return run


def tcp_then_good_on_same_connection(message: bytes, first: str) -> Callable[[socket.socket], None]:
    """`message` in a frame gets `first` (an rcode, "nothing", or "anything": random bytes); either way
    the connection stays open and a good query sent in the same write is answered."""

    def run(sock: socket.socket) -> None:
        sock.sendall(frame(message) + frame(GOOD))
        before = []  # error answers are written at once, so before the good query's
        while (reply := read_frame(sock))[:2] != GOOD[:2]:
            before.append(Reply.of(reply))
        check_wikipedia(reply, 0x4242)
        assert all(got.ident == struct.unpack_from("!H", message)[0] and got.qr for got in before)
        if first == "nothing":
            assert before == []
            sock.settimeout(NO_REPLY_S)
            with pytest.raises(TimeoutError):
                sock.recv(65535)
        elif first != "anything":
            assert [got.rcode for got in before] == [RCODES[first]]

    return run


def tcp_pipelined(sock: socket.socket) -> None:
    asked = {
        0x0001: ("en.wikipedia.org", "A", "NOERROR"),
        0x0002: ("en.wikipedia.org", "AAAA", "NOERROR"),
        0x0003: ("familysearch.yandex.ru", "A", "NOERROR"),
        0x0004: ("nothing-here.example", "A", "NXDOMAIN"),
        0x0005: ("safe.duckduckgo.com", "A", "NOERROR"),
        0x0006: ("en.wikipedia.org", "ANY", "NOTIMP"),
    }
    sock.sendall(b"".join(frame(dnslib_query(n, t, ident)) for ident, (n, t, _code) in asked.items()))
    replies = {reply.id: reply for reply in (dns.message.from_wire(read_frame(sock)) for _ in asked)}
    assert sorted(replies) == sorted(asked)
    for ident, (qname, qtype, code) in asked.items():
        reply = replies[ident]
        assert rcode(reply) == code, qname
        assert reply.question[0].name.to_text() == qname + "."
        assert dns.rdatatype.to_text(reply.question[0].rdtype) == qtype
    assert answers(replies[1]) == WIKIPEDIA
    assert answers(replies[2]) == [("en.wikipedia.org", "AAAA", "2001:db8::10")]


def tcp_in_pieces(*cuts: int) -> Callable[[socket.socket], None]:
    """A query sent in several writes, cut at the given offsets of its frame: answered once whole."""

    def run(sock: socket.socket) -> None:
        data = frame(GOOD)
        for begin, end in zip((0, *cuts), (*cuts, len(data)), strict=True):
            sock.sendall(data[begin:end])
            time.sleep(0.05)
        check_wikipedia(read_frame(sock), 0x4242)

    return run


BAD_LABEL = header(ident=0x0BAD) + b"\x40" + b"a" * 64 + b"\x00" + A_IN

TCP_CASES = [
    pytest.param(tcp_truncated_then_closed, id="length-100-then-10-bytes-and-close"),
    pytest.param(tcp_truncated_then_silent, id="length-100-then-10-bytes-and-wait"),
    pytest.param(tcp_bad_length(0), id="length-0-closed"),
    pytest.param(tcp_bad_length(1), id="length-1-closed"),
    pytest.param(tcp_bad_length(11), id="length-11-shorter-than-a-header-closed"),
    pytest.param(tcp_bad_length(4097), id="length-4097-closed"),
    pytest.param(tcp_bad_length(65535), id="length-65535-closed"),
    pytest.param(tcp_then_good_on_same_connection(BAD_LABEL, "FORMERR"), id="bad-label-frame-formerr"),
    pytest.param(
        tcp_then_good_on_same_connection(header(ident=0x0BAD, qr=1) + question(), "nothing"),
        id="response-frame-ignored",
    ),
    pytest.param(
        tcp_then_good_on_same_connection(header(ident=0x0BAD, qd=0) + b"\xc0\x0c" * 20, "FORMERR"),
        id="no-question-and-pointers-frame-formerr",
    ),
    pytest.param(
        tcp_then_good_on_same_connection(b"\x0b\xad" + random.Random(1234).randbytes(58), "anything"),
        id="random-bytes-frame",
    ),
    pytest.param(tcp_then_good_on_same_connection(b"\xff" * 64, "nothing"), id="all-ones-frame-ignored"),
    pytest.param(tcp_pipelined, id="six-queries-in-one-write"),
    pytest.param(tcp_in_pieces(9), id="half-a-query-then-the-rest"),
    pytest.param(tcp_in_pieces(1), id="length-prefix-split"),
    pytest.param(tcp_in_pieces(1, 2, 3, 20), id="query-in-five-writes"),
]


@pytest.mark.parametrize("conversation", TCP_CASES)
def test_a_bad_tcp_frame_costs_at_most_its_own_connection(server, conversation):
    running = server.running
    with tcp_connect(running) as sock:
        conversation(sock)
    still_answers(running)
    assert server.loop_errors() == []


def test_stalled_tcp_connections_do_not_stop_the_others(server):
    """Two devices each hold all their 16 TCP slots with half a question: the others are answered."""
    running = server.running
    stalled = [tcp_connect(running, source) for source in ("127.0.0.31", "127.0.0.32") for _ in range(16)]
    try:
        for sock in stalled:
            sock.sendall(struct.pack("!H", 100) + GOOD[:10])
        still_answers(running)
    finally:
        for sock in stalled:
            sock.close()
    assert server.loop_errors() == []


# ---- 4. compression loops ----

LOOPS = [
    pytest.param(header() + b"\xc0\x0c" + A_IN, id="pointer-to-itself"),
    pytest.param(header() + b"\x02en\xc0\x0c" + A_IN, id="label-then-pointer-to-the-start"),
    pytest.param(header() + b"\x02en\xc0\x0f" + A_IN, id="label-then-pointer-to-that-pointer"),
    pytest.param(header() + b"\xc0\x0e\xc0\x0c" + A_IN, id="two-pointers-to-each-other"),
    pytest.param(
        header() + b"".join(struct.pack("!H", 0xC000 | 14 + 2 * i) for i in range(200)) + b"\x00" + A_IN,
        id="chain-of-200-pointers",
    ),
]


@pytest.mark.parametrize("packet", LOOPS)
def test_a_compression_loop_in_the_question_is_formerr_at_once(server, packet):
    running = server.running
    replies = []
    with udp_socket() as sock:
        sock.settimeout(REPLY_S)
        for _ in range(4):  # a looping parser would hang on the first one
            for _ in range(50):
                sock.sendto(packet, ("127.0.0.1", running.port))
            replies += [Reply.of(sock.recv(65535)) for _ in range(50)]
    assert {(reply.ident, reply.rcode) for reply in replies} == {(ID, RCODES["FORMERR"])}
    with tcp_connect(running) as sock:
        sock.sendall(frame(packet))
        assert Reply.of(read_frame(sock)).rcode == RCODES["FORMERR"]
    still_answers(running)
    assert server.loop_errors() == []


AFTER_QUESTION = 12 + len(question())  # where the first record after the question starts
SELF = struct.pack("!H", 0xC000 | AFTER_QUESTION)  # a pointer to itself there
RR_TAIL = A_IN + b"\x00" * 6  # type, class, TTL and an empty rdata
ELSEWHERE = [
    pytest.param(header(an=1) + question() + SELF + RR_TAIL, id="in-the-answer-section"),
    pytest.param(header(ns=1) + question() + SELF + RR_TAIL, id="in-the-authority-section"),
    pytest.param(header(ar=1) + question() + SELF + RR_TAIL, id="in-the-additional-section"),
    pytest.param(header(ar=1) + question() + b"\x01x" + SELF + RR_TAIL, id="label-then-loop-in-additional"),
]


@pytest.mark.parametrize("packet", ELSEWHERE)
def test_a_compression_loop_after_the_question_does_not_stop_the_answer(server, packet):
    running = server.running
    reply = ask_raw(running, packet, REPLY_S)
    assert reply is not None
    assert Reply.of(reply).ident == ID
    assert Reply.of(reply).qr
    still_answers(running)
    assert server.loop_errors() == []
