"""Never leave the centre without names: failover between upstreams, the answer cache and its TTLs,
stale answers while every upstream is down, SERVFAIL in time, and the per-device rate limit."""

from __future__ import annotations

import socket
import time

import dns.message
import dns.query
import pytest

from tests.appliance.dns.conftest import GUEST, KIDS, LIMITED, FakeUpstream, answers, rcode


@pytest.fixture
def black_hole():
    """A UDP address that takes questions and never answers (a resolver that has gone away)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_when_the_first_upstream_is_silent_the_next_one_answers(make_dns, upstream: FakeUpstream, black_hole):
    running = make_dns(upstreams=[black_hole, upstream.address])
    started = time.monotonic()
    reply = running.query("en.wikipedia.org", source=KIDS)
    assert answers(reply) == [("en.wikipedia.org", "A", "198.51.100.10")]
    assert time.monotonic() - started < 2.0
    # The one that answered is asked first from then on: no more waiting for the silent one.
    upstream.add("second.example", "A", "198.51.100.2")
    started = time.monotonic()
    assert answers(running.query("second.example", source=KIDS)) == [("second.example", "A", "198.51.100.2")]
    assert time.monotonic() - started < 0.5


def test_answers_come_from_the_cache_with_their_ttl_counting_down(make_dns, upstream: FakeUpstream):
    upstream.add("ttl.example", "A", "198.51.100.8", ttl=300)
    running = make_dns()
    first = running.query("ttl.example", source=KIDS)
    time.sleep(3.2)  # remembered answers' TTLs are rewritten every hundredth of the TTL (here 3 s)
    second = running.query("ttl.example", source=KIDS)
    assert upstream.asked.count(("ttl.example", "A", "udp")) == 1
    assert first.answer[0].ttl == 300
    assert 295 <= second.answer[0].ttl <= 297
    # Another device with the same profile, and one with another profile, are served from the cache too.
    running.query("ttl.example", source=GUEST)
    assert upstream.asked.count(("ttl.example", "A", "udp")) == 1


def test_negative_answers_are_cached_by_their_soa(make_dns, upstream: FakeUpstream):
    running = make_dns()
    for _ in range(3):
        assert rcode(running.query("missing.example", source=KIDS)) == "NXDOMAIN"
    assert upstream.asked.count(("missing.example", "A", "udp")) == 1


def test_with_every_upstream_down_a_known_name_is_served_stale(make_dns, upstream: FakeUpstream):
    upstream.add("stale.example", "A", "198.51.100.9", ttl=1)
    running = make_dns()
    assert answers(running.query("stale.example", source=KIDS)) == [("stale.example", "A", "198.51.100.9")]
    time.sleep(1.5)  # expired now
    upstream.down = True
    started = time.monotonic()
    reply = running.query("stale.example", source=KIDS)
    assert time.monotonic() - started < 2.0
    assert answers(reply) == [("stale.example", "A", "198.51.100.9")]
    assert reply.answer[0].ttl == 30  # RFC 8767: stale answers go out with a short TTL
    assert running.server.counters.stale == 1


def test_with_every_upstream_down_an_unknown_name_is_servfail_within_two_seconds(
    make_dns, upstream: FakeUpstream, black_hole
):
    upstream.down = True
    running = make_dns(upstreams=[upstream.address, black_hole])
    started = time.monotonic()
    reply = running.query("never-seen.example", source=KIDS)
    assert rcode(reply) == "SERVFAIL"
    assert time.monotonic() - started < 2.0
    # Once an upstream is back, the name resolves.
    upstream.down = False
    upstream.add("never-seen.example", "A", "198.51.100.3")
    assert answers(running.query("never-seen.example", source=KIDS)) == [
        ("never-seen.example", "A", "198.51.100.3")
    ]


def test_a_refusing_upstream_is_not_asked_again_and_again(make_dns, upstream: FakeUpstream):
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there now: the kernel answers "port unreachable"
    running = make_dns(upstreams=[address])
    started = time.monotonic()
    assert rcode(running.query("en.wikipedia.org", source=KIDS)) == "SERVFAIL"
    assert time.monotonic() - started < 1.0


def test_one_device_flooding_is_refused_while_the_others_are_answered(make_dns):
    running = make_dns(rate_limit="{per_second: 5, burst: 20}")
    codes = [rcode(running.query("en.wikipedia.org", source=LIMITED)) for _ in range(40)]
    assert codes[:20] == ["NOERROR"] * 20
    assert "REFUSED" in codes[20:]
    assert running.server.counters.limited >= 1
    # The rest of the centre's /24 is not punished for one device.
    assert rcode(running.query("en.wikipedia.org", source=KIDS)) == "NOERROR"
    time.sleep(1.0)  # the bucket refills at the sustained rate
    assert rcode(running.query("en.wikipedia.org", source=LIMITED)) == "NOERROR"


def test_a_question_in_flight_is_asked_upstream_once(make_dns, upstream: FakeUpstream):
    upstream.add("popular.example", "A", "198.51.100.4")
    running = make_dns()
    queries = [dns.message.make_query("popular.example", "A") for _ in range(20)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((KIDS, 0))
    sock.settimeout(5)
    for q in queries:
        sock.sendto(q.to_wire(), ("127.0.0.1", running.port))
    got = {dns.message.from_wire(sock.recvfrom(4096)[0]).id for _ in queries}
    sock.close()
    assert got == {q.id for q in queries}
    assert upstream.asked.count(("popular.example", "A", "udp")) == 1


def test_a_black_holed_upstream_costs_each_expired_name_one_wait_not_one_per_question(
    make_dns, upstream: FakeUpstream
):
    """RFC 8767's failure recheck: once the upstream has failed to answer, expired names that have a
    stale answer get it at once, while one background question per name (at most every
    `failure_recheck_s`) looks for the upstream's return; fresh answers come back when it does."""
    names = [f"n{i}.example" for i in range(5)]
    address = {name: f"198.51.100.{20 + i}" for i, name in enumerate(names)}
    for name in names:
        upstream.add(name, "A", address[name], ttl=1)
    running = make_dns(cache=", failure_recheck_s: 2")
    for name in names:
        assert rcode(running.query(name, source=KIDS)) == "NOERROR"
    time.sleep(1.2)  # every one expired
    upstream.down = True  # black-holed: questions go unanswered, nothing refuses

    first = running.query(names[0], source=KIDS)  # the one question that waits out servfail_after_s
    assert answers(first) == [(names[0], "A", address[names[0]])]
    asked_before = len(upstream.asked)
    started = time.monotonic()
    replies = [running.query(name, source=KIDS) for _ in range(4) for name in names]
    took = time.monotonic() - started
    # Twenty questions, each answered from the stale answer at once (a wait each would be 20 x 1.8 s).
    assert [answers(r) for r in replies] == [[(n, "A", address[n])] for n in names] * 4
    assert {r.answer[0].ttl for r in replies} == {30}
    # The upstream was asked at most once per name meanwhile (the background refresh and its retries
    # within the one question's deadline), never once per question.
    asked = upstream.asked[asked_before:]
    assert len(asked) <= 3 * len(names), asked
    assert running.server.counters.stale == 21
    assert took < 10.0

    upstream.down = False
    upstream.add(names[0], "A", "198.51.100.99", ttl=300)
    deadline = time.monotonic() + 10
    while answers(running.query(names[0], source=KIDS)) != [(names[0], "A", "198.51.100.99")]:
        assert time.monotonic() < deadline, "no fresh answer after the upstream came back"
        time.sleep(0.2)
