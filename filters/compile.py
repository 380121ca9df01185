"""Building the compiled index artefact from parsed sources (pure: the caller reads and writes files)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
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
        self._phrases: list[Phrase] = []

    def add_source(self, info: SourceInfo) -> int:
        """Register a source; returns the id its entries are recorded under."""
        if len(self.sources) >= 1 << 24:
            raise ValueError("too many sources")
        self.sources.append(info)
        return len(self.sources) - 1

    def add_hosts(self, source_id: int, rules: Iterable[HostRule]) -> None:
        add = self._hosts.add
        for host, line, flags in rules:
            add(host, source_id, line, flags)
            self._host_entries += 1

    def add_url_prefixes(self, source_id: int, rules: Iterable[UrlRule]) -> None:
        add = self._hosts.add
        for host, path, line, flags in rules:
            add(host, source_id, line, flags, path)
            self._host_entries += 1

    def add_expressions(self, source_id: int, rules: Iterable[ExpressionRule]) -> None:
        self._expressions.extend((pattern, source_id, line, flags) for pattern, line, flags in rules)

    def add_network_rules(self, source_id: int, rules: Sequence[NetworkRule]) -> None:
        self._network.extend((source_id, rule) for rule in rules)

    def add_phrases(self, phrases: Iterable[Phrase]) -> None:
        self._phrases.extend(phrases)

    def build(self, *, created: str = "") -> bytes:
        """The artefact bytes. `created` is a timestamp string supplied by the caller (no clock here).

        Consumes what was collected: each section's input is released as soon as its bytes exist,
        so a reload's peak memory is one section's input plus the finished sections, not all of it.
        """
        counts = {
            "host_entries": self._host_entries,
            "expressions": len(self._expressions),
            "network_rules": len(self._network),
            "phrases": len(self._phrases),
        }
        blobs: dict[str, bytes] = {}
        blobs["hosts"] = self._hosts.build()
        self._hosts = HostTableBuilder()
        blobs["expressions"] = json.dumps(self._expressions).encode()
        self._expressions = []
        blobs["network"] = NetworkIndex.build(self._network).to_bytes()
        self._network = []
        blobs["phrases"] = PhraseIndex.build(self._phrases).to_bytes()
        self._phrases = []

        sections = {}
        parts: list[bytes] = []
        offset = 0
        crc = 0
        for name in SECTIONS:
            blob = blobs[name]
            sections[name] = (offset, len(blob))
            pad = b"\0" * (-len(blob) % 8)
            parts += (blob, pad)
            crc = crc32(pad, crc32(blob, crc))
            offset += len(blob) + len(pad)
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
        return b"".join((head, b"\0" * (-len(head) % 8), *parts))
