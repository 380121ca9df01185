"""The record cache the DNS filter and the proxy share, without a socket: what it keeps, for how long
(TTLs clamped, negative answers by their SOA), what it serves stale when every upstream is down, and
how it stays within its size."""

from __future__ import annotations

import pytest
from dnslib import RR, SOA, A

from appliance.config.dns import CacheSettings
from appliance.resolver.cache import STALE_TTL, RecordCache
from appliance.resolver.protocol import TYPE_A, TYPE_SOA, Rcode

SETTINGS = CacheSettings(min_ttl=10, max_ttl=3_600, negative_ttl=60, max_negative_ttl=600, stale_s=300)


def a(name: str, ttl: int) -> RR:
    return RR(name, TYPE_A, ttl=ttl, rdata=A("192.0.2.1"))


def soa(ttl: int, minimum: int) -> RR:
    times = (1, 2, 3, 4, minimum)  # serial, refresh, retry, expire, minimum
    return RR("example.org", TYPE_SOA, ttl=ttl, rdata=SOA("ns.example.org", "host.example.org", times))


@pytest.mark.parametrize(
    ("upstream_ttl", "kept_for"),
    [
        (300, 300),  # honoured
        (2, 10),  # raised to the floor: a name asked again and again is not asked upstream every time
        (86_400, 3_600),  # lowered to the ceiling: a changed address is seen within the hour
    ],
)
def test_an_answer_is_fresh_for_its_ttl_within_the_floor_and_the_ceiling(upstream_ttl, kept_for) -> None:
    cache = RecordCache(SETTINGS)
    cache.store("example.org", TYPE_A, Rcode.NOERROR, [a("example.org", upstream_ttl)], [], now=1_000.0)
    assert cache.fresh("example.org", TYPE_A, 1_000.0 + kept_for - 0.5) is not None
    assert cache.fresh("example.org", TYPE_A, 1_000.0 + kept_for) is None


@pytest.mark.parametrize(
    ("authority", "kept_for"),
    [
        ([soa(ttl=900, minimum=120)], 120),  # the SOA's minimum, the smaller of the two (RFC 2308)
        ([soa(ttl=90, minimum=500)], 90),  # ... or the SOA's own TTL
        ([soa(ttl=7_200, minimum=7_200)], 600),  # never beyond the negative ceiling
        ([], 60),  # without an SOA: the configured negative TTL
    ],
)
def test_a_name_that_does_not_exist_is_remembered_by_its_soa(authority, kept_for) -> None:
    cache = RecordCache(SETTINGS)
    kept = cache.store("gone.example.org", TYPE_A, Rcode.NXDOMAIN, [], authority, now=0.0)
    assert kept.expires == kept_for
    assert cache.fresh("gone.example.org", TYPE_A, kept_for - 0.5) is not None


def test_a_failure_answer_is_never_served_fresh() -> None:
    cache = RecordCache(SETTINGS)
    cache.store("broken.example.org", TYPE_A, Rcode.SERVFAIL, [], [], now=0.0)
    assert cache.fresh("broken.example.org", TYPE_A, 0.0) is None


def test_records_go_out_with_the_time_spent_in_the_cache_taken_off() -> None:
    cache = RecordCache(SETTINGS)
    cache.store("example.org", TYPE_A, Rcode.NOERROR, [a("example.org", 300)], [], now=0.0)
    records = cache.fresh("example.org", TYPE_A, 120.0)
    assert records is not None
    answer, _ = records.aged(120.0)
    assert [rr.ttl for rr in answer] == [180]
    assert [rr.ttl for rr in records.answer] == [300]  # the cached copy is untouched


def test_an_expired_answer_is_served_stale_with_a_short_ttl_only_within_the_window() -> None:
    cache = RecordCache(SETTINGS)
    cache.store("example.org", TYPE_A, Rcode.NOERROR, [a("example.org", 60)], [], now=0.0)
    assert cache.fresh("example.org", TYPE_A, 61.0) is None
    stale = cache.stale("example.org", TYPE_A, 61.0)
    assert stale is not None
    answer, _ = stale.aged(61.0, stale=True)
    assert [rr.ttl for rr in answer] == [STALE_TTL]
    assert cache.stale("example.org", TYPE_A, 60.0 + SETTINGS.stale_s) is None


def test_a_full_cache_drops_its_oldest_tenth_and_keeps_the_newest() -> None:
    cache = RecordCache(CacheSettings(entries=20))
    for n in range(20):
        cache.store(f"n{n}.example.org", TYPE_A, Rcode.NOERROR, [a(f"n{n}.example.org", 300)], [], now=0.0)
    cache.store("new.example.org", TYPE_A, Rcode.NOERROR, [a("new.example.org", 300)], [], now=0.0)
    assert len(cache) == 19
    assert cache.fresh("n0.example.org", TYPE_A, 1.0) is None
    assert cache.fresh("n1.example.org", TYPE_A, 1.0) is None
    assert cache.fresh("n2.example.org", TYPE_A, 1.0) is not None
    assert cache.fresh("new.example.org", TYPE_A, 1.0) is not None
