"""Building the compiled index artefact from parsed sources (pure: the caller reads and writes files).

Sized for the full centre set (six million entries) on a 1 GB Raspberry Pi: entries are taken lazily
from the parsers and kept as numbers in arrays (`filters.host_table`), the adblock rules can be
compiled as soon as the last of them is in (`finish_network_rules`, before the big domain lists are
read), and the artefact is handed out as buffers to be written one after the other
(`build_parts`), never joined into one copy.
"""

from __future__ import annotations

import json
import struct
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from zlib import crc32

from filters.adblock import NetworkRule
from filters.formats import ExpressionRule, HostRule, UrlRule
from filters.host_table import HostTableBuilder
from filters.index import FORMAT_VERSION, MAGIC, SECTIONS, SourceInfo
from filters.network_index import NetworkIndex
from filters.phrase_index import PhraseIndex
from filters.phrases import Phrase


class IndexBuilder:
    """Collects parsed entries source by source, then lays out one artefact with `build()`."""

    def __init__(self) -> None:
        self.sources: list[SourceInfo] = []
        self._hosts = HostTableBuilder()
        self._host_entries = 0
        self._expressions: list[tuple[str, int, int, int]] = []
        self._network: list[tuple[int, NetworkRule]] = []
        self._network_rules = 0
        self._network_blob: bytes | None = None
        self._phrases: list[Phrase] = []

    def add_source(self, info: SourceInfo) -> int:
        """Register a source; returns the id its entries are recorded under."""
        if len(self.sources) >= 1 << 24:
            raise ValueError("too many sources")
        self.sources.append(info)
        return len(self.sources) - 1

    def mark(self) -> tuple[tuple[int, ...], int, int, int, int]:
        """Where the collection stands now, for `rollback`."""
        return (
            self._hosts.mark(),
            self._host_entries,
            len(self._expressions),
            len(self._network),
            len(self._phrases),
        )

    def rollback(self, mark: tuple[tuple[int, ...], int, int, int, int]) -> None:
        """Drop every entry added since `mark` (a source refused half-way through its copy leaves
        nothing behind before its last good copy is read). Sources stay registered."""
        hosts, self._host_entries, expressions, network, phrases = mark
        self._hosts.rollback(hosts)
        del self._expressions[expressions:]
        del self._network[network:]
        del self._phrases[phrases:]

    def add_hosts(self, source_id: int, rules: Iterable[HostRule]) -> None:
        """Take (domain, line, flags) entries, lazily: a parser's generator is never held whole."""
        before = len(self._hosts)
        try:
            self._hosts.add_hosts(source_id, rules)
        finally:
            self._host_entries += len(self._hosts) - before

    def add_url_prefixes(self, source_id: int, rules: Iterable[UrlRule]) -> None:
        before = len(self._hosts)
        try:
            self._hosts.add_prefixes(source_id, rules)
        finally:
            self._host_entries += len(self._hosts) - before

    def add_expressions(self, source_id: int, rules: Iterable[ExpressionRule]) -> None:
        self._expressions.extend((pattern, source_id, line, flags) for pattern, line, flags in rules)

    def add_network_rules(self, source_id: int, rules: Sequence[NetworkRule]) -> None:
        if self._network_blob is not None:
            raise ValueError("adblock rules added after finish_network_rules()")
        self._network.extend((source_id, rule) for rule in rules)

    def finish_network_rules(self) -> None:
        """Compile the adblock rules added so far into their section now, and let them go.

        Optional (`build` does it otherwise): a compile that adds every adblock source first and then
        calls this never holds the rule objects and the domain tables at once.
        """
        if self._network_blob is None:
            self._network_rules = len(self._network)
            self._network_blob = NetworkIndex.build_bytes(self._take_network_rules())

    def _take_network_rules(self) -> Iterator[tuple[int, NetworkRule]]:
        """The rules in order, each dropped from the builder as it is taken: the index compiler can
        then let each go as soon as it has used it."""
        rules, self._network = self._network, []
        rules.reverse()
        while rules:
            yield rules.pop()

    def add_phrases(self, phrases: Iterable[Phrase]) -> None:
        self._phrases.extend(phrases)

    def build(self, *, created: str = "") -> bytes:
        """The artefact bytes (`build_parts` joined: for tests and small sets)."""
        return b"".join(self.build_parts(created=created))

    def build_parts(self, *, created: str = "") -> list[bytes | array[int]]:
        """The artefact as buffers, to be written in order. `created` is a timestamp string supplied
        by the caller (no clock here).

        Consumes what was collected: each section's input is released as soon as its bytes exist,
        so the peak is one section's input plus the finished sections, not all of it.
        """
        self.finish_network_rules()
        counts = {
            "host_entries": self._host_entries,
            "expressions": len(self._expressions),
            "network_rules": self._network_rules,
            "phrases": len(self._phrases),
        }
        blobs: dict[str, list[bytes | array[int]]] = {}
        blobs["network"] = [self._network_blob or b""]
        self._network_blob = None
        blobs["expressions"] = [json.dumps(self._expressions).encode()]
        self._expressions = []
        blobs["phrases"] = [PhraseIndex.build(self._phrases).to_bytes()]
        self._phrases = []
        blobs["hosts"] = self._hosts.build_parts()
        self._hosts = HostTableBuilder()

        sections = {}
        parts: list[bytes | array[int]] = []
        offset = 0
        crc = 0
        for name in SECTIONS:
            length = 0
            for blob in blobs.pop(name):
                parts.append(blob)
                crc = crc32(blob, crc)
                length += len(blob) * (blob.itemsize if isinstance(blob, array) else 1)
            sections[name] = (offset, length)
            pad = b"\0" * (-length % 8)
            parts.append(pad)
            crc = crc32(pad, crc)
            offset += length + len(pad)
        header = json.dumps(
            {
                "version": FORMAT_VERSION,
                "created": created,
                "sources": [asdict(s) for s in self.sources],
                "sections": sections,
                "counts": counts,
                "body_length": offset,
                "body_crc32": crc,
            },
            separators=(",", ":"),
        ).encode()
        head = MAGIC + struct.pack("<I", len(header)) + header
        return [head + b"\0" * (-len(head) % 8), *parts]
