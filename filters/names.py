"""Host name normalisation: lower case, no trailing dot, IDN as punycode, IP literals in one spelling,
syntax checked."""

from __future__ import annotations

import ipaddress
import re

import idna

_ASCII_LABELS = re.compile(
    r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$"
)
_DECIMAL = frozenset("0123456789")
_OCTAL = frozenset("01234567")
_HEX = frozenset("0123456789abcdefABCDEF")


class BadName(ValueError):
    """The text is not a usable host name; the message says why."""


def is_address(text: str) -> bool:
    """Is `text` an IP address as written in its standard form (`192.0.2.1`, `2001:db8::1`)?"""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def ipv4_literal(host: str) -> str | None:
    """The dotted quad of an IPv4 address in any spelling a browser accepts, or None if `host` is none.

    WHATWG URL host parsing: one to four dot-separated parts (a trailing dot allowed), each decimal,
    octal with a leading `0` or hexadecimal with `0x`; the last part fills the bytes the others leave
    (`127.1`, `2130706433`, `0x7f.1` and `0177.0.0.1` are all 127.0.0.1). `host` is lower case ASCII.
    """
    parts = host.split(".")
    if len(parts) > 1 and not parts[-1]:
        parts.pop()
    if len(parts) > 4:
        return None
    numbers = []
    for part in parts:
        if part[:2] in ("0x", "0X"):
            digits, base, allowed = part[2:], 16, _HEX
        elif len(part) > 1 and part[0] == "0":
            digits, base, allowed = part[1:], 8, _OCTAL
        elif part:
            digits, base, allowed = part, 10, _DECIMAL
        else:
            return None
        if not allowed.issuperset(digits):  # int() would take `_`, signs and spaces too
            return None
        digits = digits.lstrip("0")
        if len(digits) > 11:  # leading zeros are allowed, but no more than 32 bits of value
            return None
        numbers.append(int(digits, base) if digits else 0)
    last = numbers.pop()
    if any(n > 255 for n in numbers) or last >= 256 ** (4 - len(numbers)):
        return None
    for i, n in enumerate(numbers):
        last += n << (8 * (3 - i))
    return f"{last >> 24}.{last >> 16 & 255}.{last >> 8 & 255}.{last & 255}"


def ipv6_literal(text: str) -> str | None:
    """The compressed lower-case text of an IPv6 address (without brackets), or None if `text` is none.

    An IPv4-mapped address (`::ffff:127.0.0.1`, `::ffff:7f00:1`) becomes its dotted quad: a connection
    to it reaches that IPv4 address (Linux sockets are dual-stack), so it must meet the lists' IPv4
    entries, which never write the mapped form. Other embeddings (NAT64 `64:ff9b::/96`, the deprecated
    `::a.b.c.d`) stay IPv6: they reach IPv4 only through a translator the network may not have.
    """
    if "%" in text:  # a zone index: no browser accepts one in a URL
        return None
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    mapped = address.ipv4_mapped
    return str(mapped) if mapped is not None else address.compressed


def normalise_host(name: str) -> str:
    """Return `name` as a lower-case ASCII host name without a trailing dot.

    Internationalised names become punycode the way browsers do it (IDNA 2008 with UTS #46 mapping),
    and `xn--` labels must be valid punycode. An IP address in any spelling a browser accepts becomes
    one text: IPv4 as a dotted quad (`2130706433` is `127.0.0.1`), IPv6 compressed, with or without
    brackets (`[0:0::1]` is `::1`; an IPv4-mapped one is its dotted quad, see `ipv6_literal`).
    Raises BadName with a reason for anything that is not a host name.
    """
    host = name.strip()
    if host.startswith("[") or ":" in host:
        inner = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        address = ipv6_literal(inner)
        if address is None:
            raise BadName(f"not a host name or IPv6 address: {host[:80]!r}")
        return address
    host = host.rstrip(".").lower()
    if not host:
        raise BadName("empty host name")
    if len(host) > 253:
        raise BadName("host name longer than 253 characters")
    if not host.isascii() or "xn--" in host:
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as e:
            raise BadName(f"not a valid internationalised name: {e}") from e
    if _ASCII_LABELS.match(host) is None:
        raise BadName(f"not a host name: {name.strip()[:80]!r}")
    if host[0] in _DECIMAL:
        return ipv4_literal(host) or host
    return host
