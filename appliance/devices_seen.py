"""Devices seen on the centre's network: what the DHCP server leased and what the kernel's neighbour
table (ARP) holds, and, where the appliance is the router, an ARP sweep of the children's network.

Staff name a device from this list (the dashboard's devices page). The sweep sends one ARP request
to each address of the network given, on the interface given, and nothing anywhere else; it needs
raw sockets (root or CAP_NET_RAW) and runs only when an interface is configured.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from appliance.net import ARP_TABLE, read_arp, read_leases
from profiles.identity import mac_key

LEASES = "dhcp"
NEIGHBOURS = "arp"
SWEEP = "sweep"

SWEEP_INTERFACE_ENV = "APPLIANCE_ARP_SWEEP_INTERFACE"
SWEEP_NETWORK_ENV = "APPLIANCE_ARP_SWEEP_NETWORK"
MAX_SWEEP_ADDRESSES = 4096  # a /20: a centre's network is far smaller; more would take too long


class SweepError(Exception):
    """The sweep could not run (bad network, no such interface, no permission); the message says why."""


@dataclass(frozen=True)
class SeenDevice:
    """One device seen: its MAC (`aa:bb:...`), IPv4 address, host name (from its DHCP lease, if it gave
    one) and where it was seen (`dhcp`, `arp`, `sweep`, or several joined by `+`)."""

    mac: str
    ip: str
    hostname: str = ""
    source: str = NEIGHBOURS


def _lease_hostnames(path: Path) -> dict[str, str]:
    """MAC -> the host name a device gave in its dnsmasq lease (`*` is none)."""
    found: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return found
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3] != "*" and (mac := mac_key(fields[1])) is not None:
            found[mac] = fields[3]
    return found


def _ip_order(device: SeenDevice) -> tuple[int, int, str]:
    try:
        address = ipaddress.ip_address(device.ip)
    except ValueError:
        return (9, 0, device.ip)
    return (address.version, int(address), device.mac)


def merge_seen(*groups: list[SeenDevice]) -> list[SeenDevice]:
    """One entry per MAC: the address last given wins (leases after the neighbour table), the host name
    is kept from whichever gave one, and the sources are joined. Sorted by address."""
    by_mac: dict[str, SeenDevice] = {}
    for group in groups:
        for device in group:
            before = by_mac.get(device.mac)
            if before is None:
                by_mac[device.mac] = device
                continue
            sources = before.source.split("+")
            if device.source not in sources:
                sources.append(device.source)
            by_mac[device.mac] = SeenDevice(
                device.mac, device.ip, device.hostname or before.hostname, "+".join(sources)
            )
    return sorted(by_mac.values(), key=_ip_order)


def seen_devices(leases: Path | None, arp: Path = ARP_TABLE) -> list[SeenDevice]:
    """The devices in the neighbour table and the DHCP leases (either may be missing), one per MAC."""
    table = [
        SeenDevice(mac, ip, "", NEIGHBOURS)
        for ip, raw in read_arp(arp).items()
        if (mac := mac_key(raw)) is not None
    ]
    leased: list[SeenDevice] = []
    if leases is not None:
        names = _lease_hostnames(leases)
        leased = [
            SeenDevice(mac, ip, names.get(mac, ""), LEASES)
            for ip, raw in read_leases(leases).items()
            if (mac := mac_key(raw)) is not None
        ]
    return merge_seen(table, leased)


def sweep_network(network: str) -> ipaddress.IPv4Network:
    """The IPv4 network to sweep (`192.168.50.0/24`); SweepError if it is not one or is too large."""
    try:
        net = ipaddress.ip_network(network.strip(), strict=False)
    except ValueError as e:
        raise SweepError(f"{network!r} is not a network like 192.168.50.0/24") from e
    if not isinstance(net, ipaddress.IPv4Network):
        raise SweepError(f"{network}: an ARP sweep is for IPv4 networks only")
    if net.num_addresses > MAX_SWEEP_ADDRESSES:
        raise SweepError(f"{network}: too large to sweep (at most {MAX_SWEEP_ADDRESSES} addresses, a /20)")
    return net


def arp_sweep(interface: str, network: str, timeout: float = 2.0) -> list[SeenDevice]:
    """Ask every address of `network` on `interface` for its MAC (one ARP request each, broadcast on
    that interface only) and list those that answered within `timeout` seconds. Raises SweepError."""
    net = sweep_network(network)
    if not interface or "/" in interface or interface != interface.strip():
        raise SweepError(f"{interface!r} is not a network interface name")
    try:
        socket.if_nametoindex(interface)
    except OSError as e:
        raise SweepError(f"there is no network interface {interface!r} on this appliance") from e
    # scapy is imported here: it is slow to import and only a sweep needs it.
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp

    try:
        answered, _ = srp(
            Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=str(net)),
            iface=interface,
            timeout=timeout,
            verbose=False,
        )
    except PermissionError as e:
        raise SweepError("an ARP sweep needs raw sockets: run it as root or with CAP_NET_RAW") from e
    except (OSError, ValueError) as e:
        raise SweepError(f"ARP sweep on {interface}: {getattr(e, 'strerror', None) or e}") from e
    found: list[SeenDevice] = []
    for _, reply in answered:
        mac = mac_key(str(reply[ARP].hwsrc))
        ip = str(reply[ARP].psrc)
        if mac is not None and ipaddress.ip_address(ip) in net:
            found.append(SeenDevice(mac, ip, "", SWEEP))
    return merge_seen(found)


def sweep_settings(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(interface, network) for an ARP sweep from the environment, or None when no interface is given:
    the sweep is off unless someone asks for it."""
    env = os.environ if environ is None else environ
    interface = env.get(SWEEP_INTERFACE_ENV, "").strip()
    network = env.get(SWEEP_NETWORK_ENV, "").strip()
    if not interface or not network:
        return None
    return interface, network
