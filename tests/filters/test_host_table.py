"""The memory-mapped host table answers exactly what a plain dict with a suffix walk answers, whatever
the names' digests: names whose 64-bit hashes collide are told apart by the rest of the digest."""

from __future__ import annotations

import struct
from zlib import crc32

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filters.errors import IndexFormatError
from filters.host_table import ALLOW, URL_PREFIX, Digest, HostTable, build_host_table, name_digest

labels = st.sampled_from(["a", "b", "ads", "example", "com", "co", "uk", "x-y", "cdn1", "org"])
hosts = st.lists(labels, min_size=1, max_size=4).map(".".join)


def reference(rows: list[tuple[str, int, int, int, str | None]], host: str) -> list[tuple[str, int, int]]:
    """Every row whose domain is the host or a parent of it, most specific domain first."""
    parts = host.split(".")
    suffixes = [".".join(parts[i:]) for i in range(len(parts))]
    return [(d, s, line) for suffix in suffixes for (d, s, line, _, _) in rows if d == suffix]


def colliding(name: bytes) -> tuple[int, int]:
    """Every name has the same 64-bit hash: only the 32-bit check tells them apart."""
    return 0x5EED_0000_0000_0001, crc32(name)


def few_hashes(name: bytes) -> tuple[int, int]:
    """Names fall on four hashes, spread over the table's partitions, and distinct checks."""
    return (crc32(name) % 4) << 62 | 7, crc32(name)


DIGESTS: dict[str, Digest] = {"blake2b": name_digest, "colliding": colliding, "few-hashes": few_hashes}


@pytest.mark.parametrize("digest", DIGESTS.values(), ids=DIGESTS.keys())
@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(hosts, st.integers(0, 5), st.integers(1, 10**6)), max_size=60),
    st.lists(hosts, min_size=1, max_size=20),
)
def test_agrees_with_a_plain_suffix_walk(
    digest: Digest, entries: list[tuple[str, int, int]], queries: list[str]
) -> None:
    rows: list[tuple[str, int, int, int, str | None]] = [(d, s, line, 0, None) for d, s, line in entries]
    table = HostTable(memoryview(build_host_table(rows, digest)), digest=digest)
    for host in queries:
        got = [(d, sid, line) for d, sid, _, line, _ in table.collect(table.find_suffixes(host.encode()))]
        assert got == reference(rows, host)


def test_names_whose_hashes_collide_keep_their_own_records() -> None:
    rows: list[tuple[str, int, int, int, str | None]] = [
        ("porn.example", 1, 10, 0, None),
        ("school.example", 2, 20, ALLOW, None),
        ("porn.example", 3, 30, 0, "/videos/"),
        ("news.example", 1, 40, 0, None),
    ]
    table = HostTable(memoryview(build_host_table(rows, colliding)), digest=colliding)
    assert table.collect(table.find_suffixes(b"www.porn.example")) == [
        ("porn.example", 1, 0, 10, None),
        ("porn.example", 3, URL_PREFIX, 30, "/videos/"),
    ]
    assert table.collect(table.find_suffixes(b"school.example")) == [("school.example", 2, ALLOW, 20, None)]
    assert table.find_suffixes(b"games.example") == []  # same 64-bit hash as every listed name


def test_names_with_the_same_digest_cannot_be_told_apart() -> None:
    """The limit of keying by digest, stated: two names sharing all 96 bits share their records (for
    BLAKE2b, a chance of about one in 10^22 per look-up with six million names)."""

    def same(name: bytes) -> tuple[int, int]:
        return 1, 1

    table = HostTable(memoryview(build_host_table([("a.example", 0, 1, 0, None)], same)), digest=same)
    assert table.find(b"b.example") == table.find(b"a.example") == range(0, 1)


def test_a_large_table_finds_every_name_and_no_other() -> None:
    names = [f"site{i}.example{i % 7}.com" for i in range(20_000)]
    rows: list[tuple[str, int, int, int, str | None]] = [
        (n, i % 3, i + 1, 0, None) for i, n in enumerate(names)
    ]
    table = HostTable(memoryview(build_host_table(rows)))
    for i, name in enumerate(names):
        assert table.collect(table.find_suffixes(name.encode())) == [(name, i % 3, 0, i + 1, None)]
        assert not table.find(f"other{i}.example.com".encode())


def test_records_keep_flags_and_paths() -> None:
    rows: list[tuple[str, int, int, int, str | None]] = [
        ("example.com", 3, 7, ALLOW, None),
        ("example.com", 4, 9, 0, "/bad/"),
    ]
    table = HostTable(memoryview(build_host_table(rows)))
    entries = table.find_suffixes(b"www.example.com")
    assert table.collect(entries) == [
        ("example.com", 3, ALLOW, 7, None),
        ("example.com", 4, URL_PREFIX, 9, "/bad/"),
    ]
    assert not table.find(b"example.org")
    assert table.find_suffixes(b"com") == []


def test_empty_table_finds_nothing() -> None:
    table = HostTable(memoryview(build_host_table([])))
    assert table.find_suffixes(b"anything.example") == []
    assert table.rows == 0


def test_damaged_tables_are_refused() -> None:
    blob = build_host_table([("a.com", 0, 1, 0, None)])
    with pytest.raises(IndexFormatError):
        HostTable(memoryview(blob[:-3]))
    with pytest.raises(IndexFormatError):
        HostTable(memoryview(struct.pack("<I", 0xDEAD) + blob[4:]))
    with pytest.raises(IndexFormatError):
        HostTable(memoryview(b"\0" * 8))
