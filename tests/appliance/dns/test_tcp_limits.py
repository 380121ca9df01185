"""DNS over TCP cannot be used to take the filter from the others: each device has its own share of the
connections, a client that asks without reading its answers is not read either (its answers wait in a
bounded buffer), and a connection that sends no whole question for the idle time, or takes too long over
one question, is closed. The real server on loopback, clients on raw sockets from 127.0.0.x addresses."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

import dns.message
import dns.rcode
import pytest

from appliance.config import ConfigError, load_config
from appliance.dns import server as dns_server
from tests.appliance.dns.conftest import (
    GUEST,
    KIDS,
    LIMITED,
    PROFILES,
    STRICT,
    TEENS,
    FakeUpstream,
    Running,
    answers,
    config_text,
)

WIKIPEDIA = [("en.wikipedia.org", "A", "198.51.100.10")]
WAIT_S = 5.0  # the longest anything here waits for the server (loopback: it takes milliseconds)


def connect(running: Running, source: str, *, receive_buffer: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.bind((source, 0))
    sock.settimeout(WAIT_S)
    sock.connect(("127.0.0.1", running.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def question(name: str = "en.wikipedia.org", rtype: str = "A", ident: int = 1) -> bytes:
    wire = dns.message.make_query(name, rtype, id=ident).to_wire()
    return struct.pack("!H", len(wire)) + wire


def read_answer(sock: socket.socket) -> dns.message.Message:
    (length,) = struct.unpack("!H", read_exactly(sock, 2))
    return dns.message.from_wire(read_exactly(sock, length))


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"the server closed the connection after {len(data)} of {n} bytes")
        data += chunk
    return data


def answered(sock: socket.socket, name: str = "en.wikipedia.org") -> bool:
    """Whether a question on `sock` gets its answer (False: the server closed the connection)."""
    try:
        sock.sendall(question(name, ident=7))
        reply = read_answer(sock)
    except (EOFError, ConnectionResetError, BrokenPipeError):
        return False
    assert reply.id == 7 and answers(reply) == WIKIPEDIA
    return True


def closed(sock: socket.socket, wait: float = WAIT_S) -> bool:
    """Whether the server closes `sock` within `wait` seconds (reading and dropping anything it sends)."""
    sock.settimeout(wait)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def others_are_answered(running: Running) -> None:
    """Another device is answered, over TCP and over UDP."""
    for tcp in (True, False):
        reply = running.query("en.wikipedia.org", source=TEENS, tcp=tcp)
        assert answers(reply) == WIKIPEDIA, f"tcp={tcp}"


def wait_for(condition: Callable[[], bool], wait: float = WAIT_S) -> None:
    deadline = time.monotonic() + wait
    while not condition():
        assert time.monotonic() < deadline, "the server did not get there"
        time.sleep(0.02)


def open_connections(running: Running, ip: str) -> int:
    async def count() -> int:
        return len(running.server.tcp_open.get(ip, ()))

    return int(running.call(count()))


# ---- slots ----


def test_one_device_gets_16_connections_the_17th_is_closed_and_another_device_is_answered(make_dns):
    running = make_dns()
    mine = [connect(running, LIMITED) for _ in range(16)]
    try:
        assert all(answered(sock) for sock in mine)
        seventeenth = connect(running, LIMITED)
        assert closed(seventeenth)
        seventeenth.close()
        assert running.server.counters.tcp_refused_device == 1
        others_are_answered(running)
        # A connection given back is a slot free again.
        mine.pop().close()
        wait_for(lambda: open_connections(running, LIMITED) == 15)
        again = connect(running, LIMITED)
        mine.append(again)
        assert answered(again)
    finally:
        for sock in mine:
            sock.close()


def test_a_device_share_of_connections_is_a_setting(make_dns):
    running = make_dns(extra="  tcp_connections_per_device: 2\n")
    first, second, third = (connect(running, KIDS) for _ in range(3))
    try:
        assert answered(first) and answered(second)
        assert closed(third)
        assert answered(connect(running, STRICT))
    finally:
        for sock in (first, second, third):
            sock.close()


@pytest.mark.parametrize("value", ["0", "-1", "many", "true"])
def test_a_device_share_that_is_not_a_number_of_connections_is_refused_at_its_line(tmp_path, value):
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(PROFILES, encoding="utf-8")
    config = tmp_path / "appliance.yaml"
    text = config_text(
        tmp_path / "var", profiles, ["127.0.0.1:53"], f"  tcp_connections_per_device: {value}\n"
    )
    config.write_text(text, encoding="utf-8")
    line = text.splitlines().index(f"  tcp_connections_per_device: {value}") + 1
    with pytest.raises(ConfigError, match=f"appliance.yaml:{line}: dns.tcp_connections_per_device must be"):
        load_config(config)


def test_every_device_together_has_at_most_the_global_number_of_connections(make_dns, monkeypatch):
    monkeypatch.setattr(dns_server, "TCP_MAX_CONNECTIONS", 3)
    running = make_dns()
    held = [connect(running, source) for source in (KIDS, STRICT, LIMITED)]
    try:
        assert all(answered(sock) for sock in held)
        one_too_many = connect(running, TEENS)
        assert closed(one_too_many)
        one_too_many.close()
        assert running.server.counters.tcp_refused_full == 1
        assert answers(running.query("en.wikipedia.org", source=TEENS)) == WIKIPEDIA  # UDP still answers
    finally:
        for sock in held:
            sock.close()


# ---- a client that asks without reading ----


def big_answers(upstream: FakeUpstream) -> None:
    """`big.example` TXT: 32 records of 250 characters, each answer about 8.5 KB (1000 of them twice what
    the kernel's buffers between a server and a client hold); too big for UDP, so asked upstream over TCP."""
    upstream.add("big.example", "TXT", *(f'"{i:03d}{"x" * 247}"' for i in range(32)))
    upstream.truncate.add("big.example")


def test_a_client_that_asks_1000_questions_without_reading_costs_a_bounded_buffer(
    make_dns, upstream: FakeUpstream
):
    big_answers(upstream)
    running = make_dns()
    counters = running.server.counters
    before = counters.queries
    hog = connect(running, LIMITED, receive_buffer=4096)
    try:
        hog.sendall(b"".join(question("big.example", "TXT", ident) for ident in range(1000)))
        taken = settled(lambda: counters.queries - before)
        assert taken < 1000  # the server stopped reading the questions it could not send answers to
        assert counters.tcp_paused >= 1

        async def buffered() -> int:
            return sum(c.transport.get_write_buffer_size() for c in running.server.tcp_open[LIMITED])

        # What waits in the server's memory: the high-water mark, and the answers in flight then.
        assert running.call(buffered()) <= dns_server.TCP_WRITE_HIGH + dns_server.TCP_IN_FLIGHT * 8_600
        others_are_answered(running)

        # Once the client reads, the rest of its questions are read and answered: none is lost.
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        got = sorted(read_answer(hog).id for _ in range(1000))
        assert got == list(range(1000))
    finally:
        hog.close()


def settled(read: Callable[[], int], quiet_s: float = 0.5) -> int:
    """The value `read` gives once it has not changed for `quiet_s` seconds."""
    value, since = read(), time.monotonic()
    deadline = since + 4 * WAIT_S
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "never settled"
        time.sleep(0.05)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
    return value


def test_a_client_whose_unread_answers_would_pass_the_hard_limit_is_closed(
    make_dns, upstream: FakeUpstream, monkeypatch
):
    """Sixteen big answers in flight when reading stops: past TCP_WRITE_MAX (100 KB here) the connection
    is dropped rather than kept growing."""
    monkeypatch.setattr(dns_server, "TCP_WRITE_MAX", 100_000)
    big_answers(upstream)
    running = make_dns()
    hog = connect(running, LIMITED, receive_buffer=4096)
    try:
        hog.sendall(b"".join(question("big.example", "TXT", ident) for ident in range(1000)))
        wait_for(lambda: open_connections(running, LIMITED) == 0)
    finally:
        hog.close()
    assert running.server.counters.tcp_closed_unread == 1
    others_are_answered(running)


def test_many_questions_in_one_write_are_all_answered_to_a_client_that_reads(make_dns):
    running = make_dns()
    sock = connect(running, KIDS)
    try:
        sock.sendall(b"".join(question("en.wikipedia.org", "A", ident) for ident in range(300)))
        replies = [read_answer(sock) for _ in range(300)]
        assert sorted(r.id for r in replies) == list(range(300))
        assert all(r.rcode() == dns.rcode.NOERROR for r in replies)
    finally:
        sock.close()


# ---- the clock ----


def test_a_trickle_of_bytes_is_closed_after_the_idle_time(make_dns, monkeypatch):
    """One byte every quarter second never makes a whole question: the connection is closed after the
    idle time (one second here), however often bytes come."""
    monkeypatch.setattr(dns_server, "TCP_IDLE_S", 1.0)
    running = make_dns()
    sock = connect(running, STRICT)
    data = question()
    sent = 0
    try:
        sock.settimeout(0.25)
        for sent in range(1, len(data)):  # (never the last byte: the question stays unfinished)
            try:
                sock.sendall(data[sent - 1 : sent])
                if sock.recv(65536) == b"":
                    break
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                break
        else:
            pytest.fail(f"still open after {len(data) - 1} bytes in {0.25 * (len(data) - 1):.1f} s")
    finally:
        sock.close()
    assert running.server.counters.tcp_closed_idle == 1
    wait_for(lambda: open_connections(running, STRICT) == 0)
    others_are_answered(running)


def test_whole_questions_keep_a_connection_open_past_the_idle_time(make_dns, monkeypatch):
    monkeypatch.setattr(dns_server, "TCP_IDLE_S", 1.0)
    running = make_dns()
    sock = connect(running, STRICT)
    try:
        for _ in range(4):  # over one and a half seconds
            assert answered(sock)
            time.sleep(0.4)
        assert closed(sock)  # and then, asked nothing, it is closed
    finally:
        sock.close()
    assert running.server.counters.tcp_closed_idle == 1


def test_a_question_too_slow_to_arrive_whole_closes_the_connection(make_dns, monkeypatch):
    """Whole questions now and then would keep the idle clock going; half a question held back past
    TCP_FRAME_S closes the connection all the same."""
    monkeypatch.setattr(dns_server, "TCP_FRAME_S", 0.5)
    running = make_dns()
    sock = connect(running, STRICT)
    try:
        assert answered(sock)
        sock.sendall(question()[:9])
        assert closed(sock, wait=3.0)
    finally:
        sock.close()
    assert running.server.counters.tcp_closed_slow == 1
    assert running.server.counters.tcp_closed_idle == 0


def test_a_client_that_never_reads_is_closed_after_the_idle_time_and_gives_its_memory_back(
    make_dns, upstream: FakeUpstream, monkeypatch
):
    monkeypatch.setattr(dns_server, "TCP_IDLE_S", 1.0)
    big_answers(upstream)
    running = make_dns()
    hog = connect(running, GUEST, receive_buffer=4096)
    try:
        hog.sendall(b"".join(question("big.example", "TXT", ident) for ident in range(1000)))
        # Its answers fill the buffers and nothing more is sent: a second later it is dropped, answers
        # and all (a polite close would wait for ever for a client that does not read).
        wait_for(lambda: open_connections(running, GUEST) == 0)
    finally:
        hog.close()
    assert running.server.counters.tcp_closed_idle == 1
