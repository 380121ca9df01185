"""Requests the appliance's own proxy forwards to the appliance's own web pages (the portal and the
dashboard): the proxy names the device that asked in CLIENT_HEADER, and the pages believe that header
only from one of the appliance's own addresses (that is, from the proxy)."""

from __future__ import annotations

import functools
import ipaddress
import socket

CLIENT_HEADER = "X-Appliance-Client"


def plain_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`address` as an IP address (an IPv4-mapped IPv6 address as the IPv4 one), None if it is not one."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@functools.lru_cache(maxsize=1024)
def is_own_address(address: str) -> bool:
    """Is `address` one of this machine's own (loopback included)? Asked of the kernel: only an own
    address can be bound to."""
    ip = plain_ip(address)
    if ip is None:
        return False
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(ip), 0))
    except OSError:
        return False
    return True


def forwarded_client(remote: str, header: str | None) -> str:
    """The device behind a request that reached the pages from `remote`: the header's address when the
    request came from the appliance itself (its proxy), else `remote`."""
    if header and is_own_address(remote):
        candidate = header.strip()
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            return remote
        return candidate
    return remote
