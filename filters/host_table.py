"""The host table: host name -> records (source, line, flags, URL-path prefix), sized for the full
centre set (six million names, UT1 `adult` included) on a 1 GB Raspberry Pi.

Names are not stored. Each is keyed by a 96-bit BLAKE2b digest of it: the first 64 bits (`hash`) order
the table and are searched, the next 32 (`check`) tell apart names whose 64-bit hashes collide. The
name a record answers for is the name asked about (or the parent domain of it that was looked up), so
provenance (source, line, and the entry as written) is kept in full. Storing the names would cost
about 20 bytes more per name (120 MB for the full set) for what 12 bytes of digest already say: two
different listed names with the same 96 bits, or a name asked about that shares them with a listed
one, is a chance of about one in 10^22 per look-up; BLAKE2b is a cryptographic hash, so nobody can
make such a name on purpose (a linear hash such as crc32 would let a site owner craft one).

Layout, built by `HostTableBuilder` (little-endian; every array starts 8-byte aligned):

    header     : magic, directory bits, row count, prefix count, path count, path blob length
    directory  : 2**bits + 1 uint32: the first row whose hash starts with each `bits`-bit value
    hashes     : row count uint64, ascending (rows of one name in the order they were added)
    checks     : row count uint32, ascending among rows of equal hash
    metas      : row count uint32: source id << 8 | flags
    values     : row count uint32: the line, or (flag URL_PREFIX) the number of the row's prefix
    prefixes   : prefix count x (line, path number) uint32
    paths      : path count x (offset, length) uint32 into the path blob
    path blob  : the URL path prefixes, UTF-8, each once

A row costs 20 bytes: the full set's table is about 125 MB.

Reading: the directory (at most 2**16 slots, 256 kB) is copied into each process at load; a look-up
is one digest and one read of the slot's hashes (about 100 of them, under 1 kB), searched with
`bisect` in C; the other columns are read only for names that are listed. The rows are read with
`read(offset, length)` (the caller's `os.pread` on the file, or slices of a buffer), not through a
memory map: a look-up touches a few bytes at a random place, and a mapping would bring 64 kB around
each touch into the process (the kernel's fault-around), so after a few thousand DNS questions the
whole table sat in every process's resident memory. Read this way, the table lives once, in the page
cache, which the kernel may trim under pressure; a reading process holds only its directory. A file
truncated under a reader gives short reads (IndexFormatError), never a SIGBUS.

Building takes rows one at a time into arrays of plain numbers, partitioned by the top bits of their
hash (no object per row survives the add), then sorts one partition at a time, freeing it as its
sorted rows are made: peak memory is about the table's own size, never a Python object per name.
Sorting in pure Python keeps the appliance free of compiled dependencies beyond those it already has
(numpy would do the sort faster, but costs 30 MB in every process that imports it and a wheel more
to ship; the sort is a few seconds of a nightly compile).
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from hashlib import blake2b
from operator import itemgetter

from filters.errors import IndexFormatError

MAGIC = 0x48544232  # "HTB2"
_HEADER = struct.Struct("<6I8x")  # padded to 32 bytes: the arrays after it stay 8-byte aligned

# record flags
ALLOW = 1  # the source lists this as allowed (whitelist), not blocked
IMPORTANT = 2  # adblock `$important`: wins over allow entries of other lists
URL_PREFIX = 4  # the record applies only to URLs whose path starts with the record's path

Digest = Callable[[bytes], tuple[int, int]]  # a name -> (64-bit hash, 32-bit check)
Reader = Callable[[int, int], bytes]  # (offset, length) -> the table's bytes there (fewer at its end)

_DIGEST = struct.Struct("<QI").unpack


def name_digest(name: bytes) -> tuple[int, int]:
    """The table's key for a normalised ASCII host name: (64-bit hash, 32-bit check), from BLAKE2b."""
    return _DIGEST(blake2b(name, digest_size=12).digest())


_PART_BITS = 6  # rows are gathered in 64 partitions by the top bits of their hash, sorted one by one
_MAX_DIRECTORY_BITS = 16  # 256 kB of directory in each process; a slot then spans ~100 of 6 M rows
_PAIR = struct.Struct("<II")
PARENT_MEMO = 8192  # parent domains whose rows a table remembers (about 1 MB)
_MAX_SOURCE = (1 << 24) - 1
_MAX_U32 = 0xFFFFFFFF

# (domain, source id, flags, line, path prefix or None): one record as `HostTable.collect` gives it
Record = tuple[str, int, int, int, str | None]
# (the name looked up, its first row, the row after its last)
Found = tuple[bytes, int, int]


def _aligned(bufs: list[array[int]]) -> list[bytes | array[int]]:
    """`bufs` followed by the zero bytes that make their length a multiple of 8."""
    size = sum(len(buf) * buf.itemsize for buf in bufs)
    return [*bufs, bytes(-size % 8)] if size % 8 else [*bufs]


class HostTableBuilder:
    """Collects host records in arrays of numbers, then lays the table out with `build_parts`.

    `digest` is the key function (tests give one that collides on purpose); a table must be read with
    the same one it was built with.
    """

    def __init__(self, digest: Digest = name_digest) -> None:
        self._digest = digest
        parts = 1 << _PART_BITS
        self._hashes = [array("Q") for _ in range(parts)]
        self._checks = [array("I") for _ in range(parts)]
        self._metas = [array("I") for _ in range(parts)]
        self._values = [array("I") for _ in range(parts)]
        self._prefixes = array("I")  # (line, path number) pairs
        self._path_ids: dict[str, int] = {}
        self.rows = 0

    def add(self, domain: str, source_id: int, line: int, flags: int, path: str | None = None) -> None:
        """Record that `source_id` lists `domain` (normalised) at `line`; `path` makes it a URL prefix."""
        if path is not None:
            self.add_prefixes(source_id, ((domain, path, line, flags),))
        else:
            self.add_hosts(source_id, ((domain, line, flags),))

    def add_hosts(self, source_id: int, rules: Iterable[tuple[str, int, int]]) -> None:
        """Record (domain, line, flags) rows of one source; taken lazily, one at a time."""
        if not 0 <= source_id <= _MAX_SOURCE:
            raise ValueError("source id out of range")
        digest = self._digest
        shift = 64 - _PART_BITS
        hashes, checks, metas, values = self._hashes, self._checks, self._metas, self._values
        base = source_id << 8
        added = 0
        try:
            for domain, line, flags in rules:
                h, c = digest(domain.encode("ascii"))
                part = h >> shift
                hashes[part].append(h)
                checks[part].append(c)
                metas[part].append(base | flags)
                values[part].append(line)
                added += 1
        finally:  # rows in before a parser raised are in the arrays: counted (the caller may roll back)
            self.rows += added

    def mark(self) -> tuple[int, ...]:
        """Where the table stands now, for `rollback`."""
        return (self.rows, len(self._prefixes), *(len(hashes) for hashes in self._hashes))

    def rollback(self, mark: tuple[int, ...]) -> None:
        """Drop every row added since `mark`: a source refused half-way leaves nothing behind."""
        rows, prefixes, *lengths = mark
        for part, n in enumerate(lengths):
            for arrays in (self._hashes, self._checks, self._metas, self._values):
                del arrays[part][n:]
        del self._prefixes[prefixes:]
        self.rows = rows

    def add_prefixes(self, source_id: int, rules: Iterable[tuple[str, str, int, int]]) -> None:
        """Record (domain, path prefix, line, flags) rows of one source."""
        path_ids = self._path_ids
        prefixes = self._prefixes

        def rows() -> Iterable[tuple[str, int, int]]:
            for domain, path, line, flags in rules:
                number = len(prefixes) // 2
                prefixes.extend((line, path_ids.setdefault(path, len(path_ids))))
                yield domain, number, flags | URL_PREFIX

        self.add_hosts(source_id, rows())

    def __len__(self) -> int:
        return self.rows

    def build_parts(self) -> list[bytes | array[int]]:
        """The table as buffers to be written one after the other (layout in the module docstring).

        Consumes what was collected: each partition is freed once its rows are sorted, and its sorted
        rows are arrays of exactly its size (the sections are these arrays one after the other), so
        they take the place the partition leaves, and the peak stays near the rows' own size.
        """
        n = self.rows
        if n > _MAX_U32:
            raise ValueError("too many host records for one table")
        bits = min(_MAX_DIRECTORY_BITS, max(0, n.bit_length() - 6))  # 32 to 64 rows a slot, or ~100
        shift = 64 - bits
        counts = array("I", bytes(4 * ((1 << bits) + 1)))
        hashes_out: list[array[int]] = []
        checks_out: list[array[int]] = []
        metas_out: list[array[int]] = []
        values_out: list[array[int]] = []
        for part in range(len(self._hashes)):
            hs, cs = self._hashes[part], self._checks[part]
            ms, vs = self._metas[part], self._values[part]
            self._hashes[part] = self._checks[part] = self._metas[part] = self._values[part] = array("I")
            m = len(hs)
            if not m:
                continue
            keys = [h << 32 | c for h, c in zip(hs, cs, strict=True)]
            order = sorted(range(m), key=keys.__getitem__)  # stable: a name's rows keep their order
            del keys
            take = itemgetter(*order) if m > 1 else (lambda seq: (seq[0],))
            sorted_hashes = take(hs)
            del hs
            hashes_out.append(array("Q", sorted_hashes))
            checks_out.append(array("I", take(cs)))
            del cs
            metas_out.append(array("I", take(ms)))
            del ms
            values_out.append(array("I", take(vs)))
            del vs, take, order
            if bits:
                for h in sorted_hashes:
                    counts[h >> shift] += 1
            else:
                counts[0] += m
            del sorted_hashes
        directory = array("I", bytes(4 * len(counts)))
        total = 0
        for slot, count in enumerate(counts):  # counts[-1] stays 0: the last slot ends the table
            directory[slot] = total
            total += count
        paths = array("I")
        blob = bytearray()
        for path in self._path_ids:  # numbered in insertion order, from 0
            raw = path.encode("utf-8")
            paths.extend((len(blob), len(raw)))
            blob += raw
        prefixes = self._prefixes
        self._prefixes = array("I")
        self._path_ids = {}
        self.rows = 0
        sections = [[directory], hashes_out, checks_out, metas_out, values_out, [prefixes], [paths]]
        if sys.byteorder != "little":  # pragma: no cover - the Pi and x86 are little-endian
            for section in sections:
                for table in section:
                    table.byteswap()
        header = _HEADER.pack(MAGIC, bits, n, len(prefixes) // 2, len(paths) // 2, len(blob))
        out: list[bytes | array[int]] = [header]
        for section in sections:
            out += _aligned(section)
        out.append(bytes(blob))
        return out

    def build(self) -> bytes:
        """The table's bytes (layout in the module docstring)."""
        return b"".join(self.build_parts())


def build_host_table(rows: Iterable[Record], digest: Digest = name_digest) -> bytes:
    """Build a table from (domain, source_id, line, flags, path_prefix_or_None) rows, in order."""
    builder = HostTableBuilder(digest)
    for domain, source_id, line, flags, path in rows:
        builder.add(domain, source_id, line, flags, path)
    return builder.build()


class HostTable:
    """Look-ups in a table made by `HostTableBuilder`, read through `read(offset, length)` (see the
    module docstring: the directory is copied into memory at load, rows are read per look-up).

    `source` is the table's bytes (tests, small tables) or a reader of a file, where the table is
    `size` bytes from `base`.

    Parent domains come back question after question (`google.com` under `www.`, `fonts.`, `mail.`):
    their answers are memoised (PARENT_MEMO names, then the memo starts afresh).
    """

    __slots__ = (
        "_blob",
        "_checks",
        "_digest",
        "_directory",
        "_hashes",
        "_memo",
        "_metas",
        "_paths",
        "_prefixes",
        "_read",
        "_shift",
        "_values",
        "rows",
    )

    def __init__(
        self,
        source: bytes | memoryview | Reader,
        *,
        base: int = 0,
        size: int | None = None,
        digest: Digest = name_digest,
    ) -> None:
        if isinstance(source, bytes | memoryview):
            view = memoryview(source)
            size = view.nbytes
            read: Reader = lambda offset, length: bytes(view[offset : offset + length])  # noqa: E731
        elif size is None:
            raise ValueError("a reader needs the table's size")
        else:
            read = source
        head = read(base, _HEADER.size)
        if len(head) < _HEADER.size:
            raise IndexFormatError("host table truncated")
        magic, bits, rows, prefix_count, path_count, blob_len = _HEADER.unpack(head)
        if magic != MAGIC or bits > _MAX_DIRECTORY_BITS:
            raise IndexFormatError("host table: bad magic or directory size")
        sizes = (
            4 * ((1 << bits) + 1),
            8 * rows,
            4 * rows,
            4 * rows,
            4 * rows,
            8 * prefix_count,
            8 * path_count,
        )
        offsets = []
        pos = base + _HEADER.size
        for length in sizes:
            offsets.append(pos)
            pos += length + (-length % 8)
        if pos + blob_len != base + size:
            raise IndexFormatError("host table truncated or oversized")
        directory = array("I", _exactly(read, offsets[0], sizes[0]))
        if sys.byteorder != "little":  # pragma: no cover - the Pi and x86 are little-endian
            directory.byteswap()
        if directory[0] != 0 or directory[-1] != rows:
            raise IndexFormatError("host table: directory does not span the rows")
        self._directory = directory
        self._hashes, self._checks, self._metas, self._values, self._prefixes, self._paths = offsets[1:]
        self._blob = pos
        self._read = read
        self._shift = 64 - bits
        self._digest = digest
        self._memo: dict[bytes, range] = {}
        self.rows: int = rows

    def find(self, key: bytes) -> range:
        """The rows of exactly `key` (a normalised ASCII host): an empty range if it is not listed."""
        h, c = self._digest(key)
        directory = self._directory
        slot = h >> self._shift
        lo = directory[slot]
        n = directory[slot + 1] - lo
        if not n:
            return range(lo, lo)
        raw = self._read(self._hashes + 8 * lo, 8 * n)
        if len(raw) != 8 * n:
            raise IndexFormatError(_SHORT)
        hashes = memoryview(raw).cast("Q")
        i = bisect_left(hashes, h)
        if i == n or hashes[i] != h:
            return range(lo + i, lo + i)
        j = i + 1
        while j < n and hashes[j] == h:
            j += 1
        first = lo + i
        checks = memoryview(_exactly(self._read, self._checks + 4 * first, 4 * (j - i))).cast("I")
        k = bisect_left(checks, c)
        m = k
        while m < len(checks) and checks[m] == c:
            m += 1
        return range(first + k, first + m)

    def find_suffixes(self, host: bytes) -> list[Found]:
        """The listed names among `host` and each parent domain of it, most specific first."""
        find = self.find
        rows = find(host)
        found = [(host, rows.start, rows.stop)] if rows else []
        memo = self._memo
        pos = host.find(b".") + 1
        while pos:
            key = host[pos:]
            rows = memo.get(key)  # type: ignore[assignment]
            if rows is None:
                rows = find(key)
                if len(memo) >= PARENT_MEMO:
                    memo.clear()
                memo[key] = rows
            if rows:
                found.append((key, rows.start, rows.stop))
            pos = host.find(b".", pos) + 1
        return found

    def collect(self, found: list[Found]) -> list[Record]:
        """(domain, source_id, flags, line, path_prefix or None) of every row `found`, in order."""
        read = self._read
        out: list[Record] = []
        for key, start, stop in found:
            domain = key.decode("ascii")
            n = stop - start
            metas = memoryview(_exactly(read, self._metas + 4 * start, 4 * n)).cast("I")
            values = memoryview(_exactly(read, self._values + 4 * start, 4 * n)).cast("I")
            for meta, value in zip(metas, values, strict=True):
                flags = meta & 0xFF
                if flags & URL_PREFIX:
                    line, path = _PAIR.unpack(_exactly(read, self._prefixes + 8 * value, 8))
                    offset, length = _PAIR.unpack(_exactly(read, self._paths + 8 * path, 8))
                    prefix = _exactly(read, self._blob + offset, length).decode("utf-8")
                    out.append((domain, meta >> 8, flags, line, prefix))
                else:
                    out.append((domain, meta >> 8, flags, value, None))
        return out


_SHORT = "compiled index truncated (changed on disk since it was opened?)"


def _exactly(read: Reader, offset: int, length: int) -> bytes:
    data = read(offset, length)
    if len(data) != length:
        raise IndexFormatError(_SHORT)
    return data
