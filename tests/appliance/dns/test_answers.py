"""What each device is answered, end to end over real sockets and a fake upstream on loopback: both ways
of reading UDP, several questions on one TCP connection, an upstream's truncated answer asked again over
TCP, IPv6, devices known by their DHCP lease, and a help service kept out of the query log. What each
answer holds is specified against the sans-I/O core, bytes in and bytes out, in test_core.py."""

from __future__ import annotations

import socket
import sqlite3
import struct
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import pytest

from tests.appliance.dns.conftest import (
    GUEST,
    KIDS,
    STRICT,
    TEENS,
    FakeUpstream,
    answers,
    rcode,
)


def test_without_batched_system_calls_the_answers_are_the_same(make_dns, upstream: FakeUpstream):
    """Where the C library has no recvmmsg, the server reads one datagram at a time: same answers."""
    running = make_dns(rate_limit="{per_second: 1, burst: 6}", batched=False)
    assert answers(running.query("www.pornhub.com", source=KIDS)) == [
        ("www.pornhub.com", "A", "192.168.50.1")
    ]
    for _ in range(2):  # the second time from the remembered answers
        reply = running.query("en.wikipedia.org", source=KIDS)
        assert answers(reply) == [("en.wikipedia.org", "A", "198.51.100.10")]
    assert answers(running.query("www.google.com", source=TEENS))[0][1] == "CNAME"
    upstream.add("big.example", "A", *[f"198.51.100.{i}" for i in range(1, 61)])
    assert running.query("big.example", source=TEENS).flags & dns.flags.TC
    codes = [rcode(running.query("en.wikipedia.org", source=KIDS)) for _ in range(6)]
    assert "REFUSED" in codes  # the per-device limit holds on this path too
    assert running.server.counters.fast >= 1


# ---- protocol ----


def test_tcp_answers_several_queries_on_one_connection(make_dns):
    running = make_dns()
    names = ["en.wikipedia.org", "www.pornhub.com", "www.google.com"]
    queries = [dns.message.make_query(n, "A") for n in names]
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries)))
        replies = {}
        for _ in queries:
            length = struct.unpack("!H", _recv(sock, 2))[0]
            reply = dns.message.from_wire(_recv(sock, length))
            replies[reply.id] = reply
    for q, name in zip(queries, names, strict=True):
        assert replies[q.id].question[0].name.to_text() == name + "."
    assert answers(replies[queries[0].id]) == [("en.wikipedia.org", "A", "198.51.100.10")]
    assert answers(replies[queries[1].id]) == [("www.pornhub.com", "A", "192.168.50.1")]


def _recv(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def test_an_upstream_answer_truncated_over_udp_is_asked_again_over_tcp(make_dns, upstream: FakeUpstream):
    upstream.add("tc.example", "A", "198.51.100.44")
    upstream.truncate.add("tc.example")
    running = make_dns()
    assert answers(running.query("tc.example", source=KIDS)) == [("tc.example", "A", "198.51.100.44")]
    assert ("tc.example", "A", "udp") in upstream.asked and ("tc.example", "A", "tcp") in upstream.asked


def test_the_server_answers_over_ipv6_too(make_dns, upstream: FakeUpstream):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    running = make_dns()
    running.call(running.server.start([("::1", 0)]))
    if len(running.server.addresses) < 2:
        pytest.skip("no ::1 on this machine")  # the server said so in its log, and went on over IPv4
    port = running.server.addresses[-1][1]
    q = dns.message.make_query("en.wikipedia.org", "A")
    reply = dns.query.udp(q, "::1", port=port, timeout=5)
    assert answers(reply) == [("en.wikipedia.org", "A", "198.51.100.10")]
    reply = dns.query.tcp(dns.message.make_query("www.pornhub.com", "A"), "::1", port=port, timeout=5)
    assert answers(reply) == [("www.pornhub.com", "A", "192.168.50.1")]


def test_a_device_is_known_by_its_mac_from_the_dhcp_leases(make_dns, tmp_path: Path):
    """With the appliance as the centre's router handing out addresses, the leases file says which
    hardware address has which IP: a device registered by MAC gets its profile at any address."""
    leases = tmp_path / "dnsmasq.leases"
    leases.write_text(
        "1795600000 dc:a6:32:01:02:03 127.0.0.21 room1-pc1 *\nnot a lease line\n", encoding="utf-8"
    )
    running = make_dns(extra=f"  dhcp_leases: {leases}\n")
    config = tmp_path / "appliance.yaml"
    device = '  - {name: room1-pc1, mac: "DC-A6-32-01-02-03", profile: kids}\n'
    config.write_text(config.read_text(encoding="utf-8").replace("devices:\n", "devices:\n" + device, 1))
    assert running.call(running.server.reload()) is True
    # Social networks: blocked for the kids profile, not for guests (the address next door).
    assert answers(running.query("www.instagram.com", source="127.0.0.21")) == [
        ("www.instagram.com", "A", "192.168.50.1")
    ]
    assert rcode(running.query("www.instagram.com", source="127.0.0.22")) == "NXDOMAIN"  # asked upstream
    running.query("www.pornhub.com", source="127.0.0.21")
    running.flush_log()
    with sqlite3.connect(tmp_path / "var" / "appliance.sqlite") as db:
        rows = db.execute(
            "SELECT client, subject, via, profile FROM event_log WHERE host = 'www.pornhub.com'"
        )
        assert rows.fetchall() == [("127.0.0.21", "device:room1-pc1", "device-mac", "kids")]


def test_a_help_service_is_answered_and_kept_out_of_the_query_log(make_dns, upstream: FakeUpstream, tmp_path):
    """A help service behind a CDN name that a list happens to block, or one off an allowlist, stays
    reachable (and unlogged): a child looking for help must get it."""
    upstream.cname["chat.childline.org.uk"] = "www.pornhub.com"
    upstream.add("www.pornhub.com", "A", "198.51.100.66")
    running = make_dns()
    for device in (KIDS, STRICT, GUEST):
        reply = running.query("chat.childline.org.uk", source=device)
        assert ("www.pornhub.com", "A", "198.51.100.66") in answers(reply)
    running.server.events.hand_over()
    import time as clock

    clock.sleep(0.5)
    with sqlite3.connect(tmp_path / "var" / "appliance.sqlite") as db:
        hosts = [row[0] for row in db.execute("SELECT host FROM answers")]
    assert not any("childline" in host for host in hosts)
