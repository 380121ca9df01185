"""Which hardware (MAC) address is behind a client's IP address: the kernel's neighbour table (ARP) and,
when the appliance hands out addresses, the DHCP server's leases (dnsmasq's format)."""

from __future__ import annotations

import logging
from pathlib import Path

from profiles.identity import mac_key

log = logging.getLogger(__name__)

ARP_TABLE = Path("/proc/net/arp")


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
