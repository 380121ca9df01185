"""The DNS numbers the resolver and the DNS filter share: record types, response codes, and the UDP size
we offer in EDNS0."""

from __future__ import annotations

from enum import IntEnum

OUR_UDP = 1232  # the DNS Flag Day 2020 size: no IP fragmentation on any ordinary path
TYPE_A, TYPE_CNAME, TYPE_SOA, TYPE_AAAA = 1, 5, 6, 28


class Rcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
