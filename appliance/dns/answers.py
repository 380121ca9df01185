"""Verdicts into DNS answers: what a blocked name, a bypass check, a safe-search engine and an allowed
name get. Pure functions of the question, the verdict's consequences and upstream records."""

from __future__ import annotations

from collections.abc import Sequence

from dnslib import AAAA, CNAME, RR, A

from appliance.config.dns import BlockSettings
from appliance.dns.wire import Question, asked_name, build
from appliance.resolver.protocol import TYPE_A, TYPE_AAAA, TYPE_CNAME, Rcode
from profiles.profile import BlockedAnswer


def blocked(q: Question, how: BlockedAnswer, settings: BlockSettings) -> bytes:
    """A blocked name: NXDOMAIN, or addresses (0.0.0.0/:: or the block page's) for A and AAAA with
    NODATA for every other type."""
    if how is BlockedAnswer.NXDOMAIN:
        return build(q, Rcode.NXDOMAIN)
    ttl, name = settings.ttl, asked_name(q)
    if q.qtype == TYPE_A:
        addresses = ("0.0.0.0",) if how is BlockedAnswer.ZERO else settings.page_v4
        return build(q, Rcode.NOERROR, [RR(name, TYPE_A, ttl=ttl, rdata=A(a)) for a in addresses])
    if q.qtype == TYPE_AAAA:
        addresses = ("::",) if how is BlockedAnswer.ZERO else settings.page_v6
        return build(q, Rcode.NOERROR, [RR(name, TYPE_AAAA, ttl=ttl, rdata=AAAA(a)) for a in addresses])
    return build(q, Rcode.NOERROR)


def canary(q: Question, nxdomain: bool) -> bytes:
    """A filter-bypass check (`use-application-dns.net`, `resolver.arpa`, ...): NXDOMAIN or NODATA."""
    return build(q, Rcode.NXDOMAIN if nxdomain else Rcode.NOERROR)


def rewritten(q: Question, target: str, rcode: int, answer: Sequence[RR], authority: Sequence[RR]) -> bytes:
    """Safe search: a CNAME from the asked name to the engine's safe name, then that name's own records
    of the asked type as the upstream gave them (none: the safe name has no such record, e.g. AAAA)."""
    ttl = min((rr.ttl for rr in answer), default=authority[0].ttl if authority else 60)
    cname = RR(asked_name(q), TYPE_CNAME, ttl=ttl, rdata=CNAME(target))
    return build(q, rcode, [cname, *answer], authority)


def forwarded(q: Question, rcode: int, answer: Sequence[RR], authority: Sequence[RR]) -> bytes:
    """An allowed name: the upstream's answer under the client's question."""
    return build(q, rcode, answer, authority)
