"""One device must not be able to cost the others their answers or the appliance its memory: batched
sends that skip an unsendable answer, queries with unique bytes not remembered, a share of the upstream
questions per device (truncated answers keeping their EDNS record: test_core.py)."""

from __future__ import annotations

import socket
import sqlite3
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode

from appliance.dns.batch import BatchSocket
from tests.appliance.dns.conftest import KIDS, LIMITED, STRICT, FakeUpstream, answers


def test_an_answer_the_kernel_refuses_does_not_stop_the_rest_of_the_batch():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    batch = BatchSocket(server)
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for i, client in enumerate(clients):
        client.bind(("127.0.0.1", 0))
        client.settimeout(2)
        client.sendto(b"question %d" % i, server.getsockname())
    time.sleep(0.1)
    got = batch.receive()
    assert [n for _, n in got] == [10, 10, 10]
    # The middle sender's address says port 0, which no answer can be sent to.
    batch.names[1 * 32 + 2 : 1 * 32 + 4] = b"\x00\x00"
    for slot, _ in got:
        batch.queue(slot, b"answer %d" % slot)
    assert batch.send() == 2
    assert clients[0].recv(100) == b"answer 0"
    assert clients[2].recv(100) == b"answer 2"
    for sock in (server, *clients):
        sock.close()


def test_queries_with_unique_bytes_are_answered_but_not_remembered(make_dns):
    """EDNS options (a cookie, padding) make each query's bytes unique: remembering them would let one
    device fill the appliance's memory with copies of the same answer."""
    running = make_dns()
    for i in range(20):
        cookie = dns.edns.GenericOption(10, i.to_bytes(8, "big"))
        q = dns.message.make_query("www.pornhub.com", "A", use_edns=0, options=[cookie])
        reply = dns.query.udp(q, "127.0.0.1", port=running.port, source=KIDS, timeout=5)
        assert answers(reply) == [("www.pornhub.com", "A", "192.168.50.1")]
    assert running.server.counters.fast == 0
    assert sum(len(fast) for fast in running.server.live.fast.values()) == 0
    for _ in range(3):  # the same question without options is remembered after the first time
        running.query("www.pornhub.com", source=KIDS)
    assert running.server.counters.fast == 2


def test_one_device_asking_for_hundreds_of_new_names_leaves_upstream_room_for_the_others(
    make_dns, upstream: FakeUpstream
):
    upstream.slow_suffix, upstream.slow_s = ".slow.example", 0.3  # within the 0.6 s a try waits
    upstream.add("homework.example", "A", "198.51.100.60")
    running = make_dns()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LIMITED, 0))
    sock.settimeout(5)
    for i in range(200):
        sock.sendto(dns.message.make_query(f"n{i}.slow.example", "A").to_wire(), ("127.0.0.1", running.port))
    reply = running.query("homework.example", source=KIDS)
    assert answers(reply) == [("homework.example", "A", "198.51.100.60")]
    codes = [dns.message.from_wire(sock.recv(4096)).rcode() for _ in range(200)]
    sock.close()
    assert codes.count(dns.rcode.SERVFAIL) == 72  # 128 of them were asked upstream, the rest refused at once


def test_a_batch_refused_while_the_store_is_locked_is_kept_and_written_with_the_later_ones(
    make_dns, tmp_path
):
    """The log file is locked by someone else for longer than the writer waits: the writer keeps the
    batch (and the device and answer it introduced) and writes it when the lock is gone, before the next;
    nothing is lost and the later event names what the kept batch defined."""
    running = make_dns()
    db_path = tmp_path / "var" / "appliance.sqlite"
    running.flush_log()
    other = sqlite3.connect(db_path, timeout=1)
    other.execute("BEGIN IMMEDIATE")
    running.query("www.pornhub.com", source=STRICT)  # a new device and a new answer
    running.call(_hand_over(running))
    time.sleep(6)  # past the writer's 5 s wait for the lock
    other.rollback()
    other.close()
    running.query("www.pornhub.com", source=STRICT)
    running.flush_log()
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT subject, host, action, attempts FROM event_log").fetchall()
    assert rows == [("device:strict-pc", "www.pornhub.com", "block", 2)]  # one visit of both


async def _hand_over(running) -> None:
    running.server.events.hand_over()
