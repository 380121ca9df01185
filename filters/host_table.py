"""A read-only host table that lives in a memory-mapped buffer: domain -> records, with no per-entry objects.

Layout (all little-endian uint32 arrays, each 4-byte aligned), built by `build_host_table`:

    header   : magic, slot_count, entry_count, record_count, path_count, keys_len, paths_len
    slots    : 2 * slot_count words: (crc32 of key, entry index + 1), 0 = empty; linear probing
    entries  : 4 words each: key offset, key length, first record, record end
    records  : 3 words each: source_id << 8 | flags, line, path index + 1 (0 = whole host)
    paths    : 2 words each: offset, length into the path blob
    keys     : the host names, ASCII, concatenated
    paths    : URL path prefixes, UTF-8, concatenated

Why: 700k domains as Python dicts cost ~80 MB per process and seconds to rebuild; this costs one `mmap`,
is shared by the DNS and proxy processes through the page cache, and a look-up is one crc32 and a probe.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable
from zlib import crc32

from filters.errors import IndexFormatError

MAGIC = 0x48544231  # "HTB1"
_HEADER = struct.Struct("<7I")

# record flags
ALLOW = 1  # the source lists this as allowed (whitelist), not blocked
IMPORTANT = 2  # adblock `$important`: wins over allow entries of other lists
URL_PREFIX = 4  # the record applies only to URLs whose path starts with the record's path


class HostTableBuilder:
    """Collects host records for `build`, compactly: a million-entry list must compile on a 1 GB Pi.

    Each record is kept as one packed int (path id, source id, flags, line), and a domain with a
    single record holds that int directly rather than a list.
    """

    def __init__(self) -> None:
        self._by_domain: dict[str, int | list[int]] = {}
        self._path_ids: dict[str, int] = {}

    def add(self, domain: str, source_id: int, line: int, flags: int, path: str | None = None) -> None:
        """Record that `source_id` lists `domain` (normalised) at `line`; `path` makes it a URL prefix."""
        path_ref = 0
        if path is not None:
            path_ref = self._path_ids.setdefault(path, len(self._path_ids) + 1)
            flags |= URL_PREFIX
        record = (path_ref << 64) | (source_id << 40) | (flags << 32) | line
        by_domain = self._by_domain
        previous = by_domain.get(domain)
        if previous is None:
            by_domain[domain] = record
        elif isinstance(previous, int):
            by_domain[domain] = [previous, record]
        else:
            previous.append(record)

    def __len__(self) -> int:
        return len(self._by_domain)

    def build(self) -> bytes:
        """The table's bytes (layout in the module docstring)."""
        entry_count = len(self._by_domain)
        slot_count = 8
        while slot_count < entry_count * 2:
            slot_count <<= 1
        mask = slot_count - 1

        slots = array("I", bytes(8 * slot_count))
        entries = array("I")
        records = array("I")
        paths = array("I")
        keys = bytearray()
        path_blob = bytearray()
        for path in self._path_ids:  # ids were handed out in insertion order, from 1
            raw = path.encode("utf-8")
            paths.extend((len(path_blob), len(raw)))
            path_blob += raw

        for index, (domain, recs) in enumerate(self._by_domain.items()):
            key = domain.encode("ascii")
            first = len(records) // 3
            for record in (recs,) if isinstance(recs, int) else recs:
                records.extend(((record >> 32) & 0xFFFFFFFF, record & 0xFFFFFFFF, record >> 64))
            entries.extend((len(keys), len(key), first, len(records) // 3))
            keys += key
            h = crc32(key)
            i = h & mask
            while slots[2 * i + 1]:
                i = (i + 1) & mask
            slots[2 * i] = h
            slots[2 * i + 1] = index + 1

        if sys.byteorder != "little":  # pragma: no cover - the Pi and x86 are little-endian
            for table in (slots, entries, records, paths):
                table.byteswap()
        keys += b"\0" * (-len(keys) % 4)
        header = _HEADER.pack(
            MAGIC, slot_count, entry_count, len(records) // 3, len(paths) // 2, len(keys), len(path_blob)
        )
        return b"".join(
            (header, slots, entries, records, paths, keys, path_blob)  # joined from the buffers: no copies
        )


def build_host_table(rows: Iterable[tuple[str, int, int, int, str | None]]) -> bytes:
    """Build a table from (domain, source_id, line, flags, path_prefix_or_None) rows, in order."""
    builder = HostTableBuilder()
    for domain, source_id, line, flags, path in rows:
        builder.add(domain, source_id, line, flags, path)
    return builder.build()


class HostTable:
    """Look-ups over a buffer made by `build_host_table`. Holds views into the buffer, never copies."""

    __slots__ = ("_entries", "_keys", "_mask", "_path_blob", "_paths", "_records", "_slots", "size")

    def __init__(self, buf: memoryview) -> None:
        if len(buf) < _HEADER.size:
            raise IndexFormatError("host table truncated")
        magic, slot_count, entry_count, record_count, path_count, keys_len, paths_len = _HEADER.unpack_from(
            buf, 0
        )
        if magic != MAGIC or slot_count & (slot_count - 1):
            raise IndexFormatError("host table: bad magic or slot count")
        sizes = (8 * slot_count, 16 * entry_count, 12 * record_count, 8 * path_count, keys_len, paths_len)
        if _HEADER.size + sum(sizes) != len(buf):
            raise IndexFormatError("host table truncated or oversized")
        views = []
        pos = _HEADER.size
        for size in sizes:
            views.append(buf[pos : pos + size])
            pos += size
        self._slots = views[0].cast("I")
        self._entries = views[1].cast("I")
        self._records = views[2].cast("I")
        self._paths = views[3].cast("I")
        self._keys = views[4]
        self._path_blob = views[5]
        self._mask = slot_count - 1
        self.size: int = entry_count

    def find(self, key: bytes) -> int:
        """Entry index of exactly `key` (a normalised ASCII host), or -1."""
        h = crc32(key)
        slots = self._slots
        mask = self._mask
        i = h & mask
        while True:
            e: int = slots[2 * i + 1]
            if not e:
                return -1
            if slots[2 * i] == h:
                ent = self._entries
                off = ent[4 * e - 4]
                if self._keys[off : off + ent[4 * e - 3]] == key:
                    return e - 1
            i = (i + 1) & mask

    def find_suffixes(self, host: bytes) -> list[int]:
        """Entry indexes for `host` and each parent domain of it, most specific first."""
        # `find` inlined: this loop runs for every DNS query and every proxied request.
        slots = self._slots
        mask = self._mask
        ent = self._entries
        keys = self._keys
        found = []
        pos = 0
        while True:
            key = host[pos:] if pos else host
            h = crc32(key)
            i = h & mask
            while True:
                e: int = slots[2 * i + 1]
                if not e:
                    break
                if slots[2 * i] == h:
                    off = ent[4 * e - 4]
                    if keys[off : off + ent[4 * e - 3]] == key:
                        found.append(e - 1)
                        break
                i = (i + 1) & mask
            pos = host.find(b".", pos) + 1
            if not pos:
                return found

    def collect(self, entries: list[int]) -> list[tuple[str, int, int, int, str | None]]:
        """(domain, source_id, flags, line, path_prefix or None) of every record of `entries`, in order."""
        ent = self._entries
        rec = self._records
        keys = self._keys
        paths = self._paths
        out = []
        for entry in entries:
            base = 4 * entry
            domain = bytes(keys[ent[base] : ent[base] + ent[base + 1]]).decode("ascii")
            for r in range(3 * ent[base + 2], 3 * ent[base + 3], 3):
                meta = rec[r]
                path_ref = rec[r + 2]
                prefix = None
                if path_ref:
                    off = paths[2 * path_ref - 2]
                    prefix = bytes(self._path_blob[off : off + paths[2 * path_ref - 1]]).decode("utf-8")
                out.append((domain, meta >> 8, meta & 0xFF, rec[r + 1], prefix))
        return out
