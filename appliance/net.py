"""What the DNS filter, the proxy, the dashboard and the router share about the network: `host:port`
texts, the machine's own resolvers and addresses, and which hardware (MAC) address is behind a client's IP
address (the kernel's neighbour table (ARP) and, when the appliance hands out addresses, the DHCP
server's leases in dnsmasq's format).

Read from the kernel's and the system's files, never cached across a `refresh` (but `is_own_address`,
cleared by whoever sees the addresses change): the addresses a centre's router has may change with a new
DHCP lease.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import logging
import socket
from pathlib import Path

from profiles.identity import mac_key

log = logging.getLogger(__name__)

RESOLV_CONF = Path("/etc/resolv.conf")
FIB_TRIE = Path("/proc/net/fib_trie")
ARP_TABLE = Path("/proc/net/arp")


# ---- host:port ----


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """`host:port`, `[v6]:port`, a bare IPv4 or IPv6 address; ValueError if the port is bad."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
    elif text.count(":") == 1:
        host, _, raw = text.partition(":")
        port = int(raw)
    else:
        host, port = text, default_port
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    return host, port


# ---- the machine's own resolvers and addresses ----


def system_resolvers(path: Path = RESOLV_CONF, exclude: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The `nameserver` addresses of resolv.conf, less `exclude` (our own listening addresses, which
    would send our questions back to us)."""
    found = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ()
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                address = ipaddress.ip_address(fields[1].split("%")[0])
            except ValueError:
                continue
            if str(address) not in exclude:
                found.append(str(address))
    return tuple(found)


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


def local_addresses(fib_trie: Path = FIB_TRIE) -> list[str]:
    """The machine's own IPv4 addresses (its network namespace's), from the kernel's routing table."""
    try:
        lines = fib_trie.read_text(encoding="ascii").splitlines()
    except OSError:
        return []
    found = []
    for before, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL":
            address = before.strip().removeprefix("|-- ").strip()
            if address not in found:
                found.append(address)
    return found


# ---- neighbours: the MAC behind an address ----


def read_arp(path: Path = ARP_TABLE) -> dict[str, str]:
    """IPv4 address -> MAC from the kernel's ARP table (complete entries only)."""
    found: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="ascii", errors="replace").splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        # IP address, HW type, Flags, HW address, Mask, Device; flag 0x2 = complete
        if len(fields) >= 4 and fields[2] != "0x0" and fields[3] != "00:00:00:00:00:00":
            found[fields[0]] = fields[3].lower()
    return found


def read_leases(path: Path) -> dict[str, str]:
    """IP address -> MAC from a dnsmasq leases file (`expiry mac ip hostname client-id` per line).
    Lines that are not leases are skipped; a missing file gives nothing."""
    found: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        log.warning("DHCP leases %s: %s", path, e.strerror)
        return found
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and mac_key(fields[1]) is not None:
            found[fields[2]] = fields[1].lower()
    return found


class Neighbours:
    """The MAC of each address as last read; `refresh` re-reads the sources."""

    def __init__(self, leases: Path | None = None, arp: Path | None = ARP_TABLE) -> None:
        self.leases, self.arp = leases, arp
        self.macs: dict[str, str] = {}

    def refresh(self) -> bool:
        """Re-read the tables; True when some address now has another MAC (or none)."""
        macs = read_arp(self.arp) if self.arp is not None else {}
        if self.leases is not None:
            macs.update(read_leases(self.leases))
        changed = macs != self.macs
        self.macs = macs
        return changed

    def mac_of(self, ip: str) -> str | None:
        return self.macs.get(ip)
