"""The memory-mapped host table answers exactly what a plain dict with a suffix walk answers."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filters.errors import IndexFormatError
from filters.host_table import ALLOW, URL_PREFIX, HostTable, build_host_table

labels = st.sampled_from(["a", "b", "ads", "example", "com", "co", "uk", "x-y", "cdn1", "org"])
hosts = st.lists(labels, min_size=1, max_size=4).map(".".join)


def reference(rows: list[tuple[str, int, int, int, str | None]], host: str) -> list[tuple[str, int, int]]:
    """Every row whose domain is the host or a parent of it, most specific domain first."""
    parts = host.split(".")
    suffixes = [".".join(parts[i:]) for i in range(len(parts))]
    return [(d, s, line) for suffix in suffixes for (d, s, line, _, _) in rows if d == suffix]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(hosts, st.integers(0, 5), st.integers(1, 10**6)), max_size=60),
    st.lists(hosts, min_size=1, max_size=20),
)
def test_agrees_with_a_plain_suffix_walk(entries: list[tuple[str, int, int]], queries: list[str]) -> None:
    rows: list[tuple[str, int, int, int, str | None]] = [(d, s, line, 0, None) for d, s, line in entries]
    table = HostTable(memoryview(build_host_table(rows)))
    for host in queries:
        got = [(d, sid, line) for d, sid, _, line, _ in table.collect(table.find_suffixes(host.encode()))]
        assert got == reference(rows, host)


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
    assert table.find(b"example.org") == -1
    assert table.find_suffixes(b"com") == []


def test_empty_table_finds_nothing() -> None:
    table = HostTable(memoryview(build_host_table([])))
    assert table.find_suffixes(b"anything.example") == []
    assert table.size == 0


def test_damaged_tables_are_refused() -> None:
    blob = build_host_table([("a.com", 0, 1, 0, None)])
    with pytest.raises(IndexFormatError):
        HostTable(memoryview(blob[:-3]))
    with pytest.raises(IndexFormatError):
        HostTable(memoryview(struct.pack("<I", 0xDEAD) + blob[4:]))
    with pytest.raises(IndexFormatError):
        HostTable(memoryview(b"\0" * 8))
