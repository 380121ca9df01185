"""The upstream answer cache: records by (name, type), TTLs honoured within a floor and a ceiling,
negative answers cached by their SOA, and expired answers kept a while longer to serve when every
upstream is down (RFC 8767, "serve stale")."""

from __future__ import annotations

from dataclasses import dataclass

from dnslib import RR

from appliance.config.dns import CacheSettings
from appliance.resolver.protocol import TYPE_SOA, Rcode

STALE_TTL = 30  # RFC 8767: a stale answer goes out with a short TTL


@dataclass(frozen=True)
class Records:
    """An upstream's answer to (name, type): rcode, answer and authority records with their TTLs as
    clamped when stored at `stored` (monotonic seconds), fresh until `expires`."""

    rcode: int
    answer: tuple[RR, ...]
    authority: tuple[RR, ...]
    stored: float
    expires: float

    def aged(self, now: float, *, stale: bool = False) -> tuple[list[RR], list[RR]]:
        """Copies of the records with the time spent in the cache taken off their TTLs."""
        spent = int(now - self.stored)

        def age(rr: RR) -> RR:
            ttl = STALE_TTL if stale else max(0, rr.ttl - spent)
            return RR(rr.rname, rr.rtype, rr.rclass, ttl, rr.rdata)

        return [age(rr) for rr in self.answer], [age(rr) for rr in self.authority]


class RecordCache:
    """Upstream answers by (lower-case name, type). Not thread-safe: the event loop owns it."""

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self._entries: dict[tuple[str, int], Records] = {}

    def store(
        self, name: str, qtype: int, rcode: int, answer: list[RR], authority: list[RR], now: float
    ) -> Records:
        """Keep an upstream answer (NOERROR or NXDOMAIN) with clamped TTLs; returns what was kept."""
        s = self.settings
        if answer:
            for rr in answer:
                rr.ttl = min(max(rr.ttl, s.min_ttl), s.max_ttl)
            ttl = min(rr.ttl for rr in answer)
            authority = []
        else:
            soa = [rr for rr in authority if rr.rtype == TYPE_SOA]
            negative = min(soa[0].ttl, soa[0].rdata.times[-1]) if soa else s.negative_ttl
            ttl = min(max(negative, s.min_ttl), s.max_negative_ttl)
            for rr in soa:
                rr.ttl = ttl
            authority = soa
            if rcode not in (Rcode.NOERROR, Rcode.NXDOMAIN):
                ttl = 0
        records = Records(rcode, tuple(answer), tuple(authority), now, now + ttl)
        entries = self._entries
        if len(entries) >= s.entries:
            # Drop the oldest tenth (dicts keep insertion order): cheap, and the hot names come back.
            for key in list(entries)[: s.entries // 10 or 1]:
                del entries[key]
        entries[(name, qtype)] = records
        return records

    def fresh(self, name: str, qtype: int, now: float) -> Records | None:
        records = self._entries.get((name, qtype))
        return records if records is not None and now < records.expires else None

    def stale(self, name: str, qtype: int, now: float) -> Records | None:
        """An expired answer still within the serve-stale window."""
        records = self._entries.get((name, qtype))
        if records is not None and now < records.expires + self.settings.stale_s:
            return records
        return None

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
