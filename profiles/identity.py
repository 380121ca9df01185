"""Who is asking: devices, children, portal sessions, and `identify()`.

The values only; where they are stored (the event store) and how a child signs in (the portal) come with
the dashboard. The order is the design's: an active portal session on the device, else the device's own
default profile (by MAC, then IP, then the narrowest CIDR), else the guest profile.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

GUEST = "guest"
_IP_CACHE_SIZE = 4096


_MAC_CACHE: dict[str, str | None] = {}


def mac_key(mac: str) -> str | None:
    """`normalise_mac`, remembered (a device asks many times a second), or None if not a MAC."""
    try:
        return _MAC_CACHE[mac]
    except KeyError:
        pass
    try:
        key: str | None = normalise_mac(mac)
    except ValueError:
        key = None
    if len(_MAC_CACHE) >= _IP_CACHE_SIZE:
        _MAC_CACHE.clear()
    _MAC_CACHE[mac] = key
    return key


def normalise_mac(mac: str) -> str:
    """`AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff` or `aa:bb:...` as `aa:bb:cc:dd:ee:ff`; ValueError otherwise."""
    digits = "".join(c for c in mac.lower() if c not in ":-.")
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"{mac!r} is not a MAC address")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True)
class Device:
    """A device the centre knows: by MAC, or by an IP address or network (`10.0.1.0/24`).

    `managed` devices are centre-owned and trust the appliance's certificate, so their web traffic may be
    inspected where the profile allows it.
    """

    name: str
    profile: str
    mac: str | None = None
    network: str | None = None
    managed: bool = False


@dataclass(frozen=True)
class Child:
    """Who signed in at the portal: a child, under a pseudonymous id (logs never carry the display name),
    or, with `staff`, a member of staff (`display_name` their user name), whose staff profile on a device
    comes from that sign-in only."""

    id: str
    display_name: str
    profile: str
    pin_hash: str = field(default="", repr=False)
    staff: bool = False


class SessionEnd(StrEnum):
    """Why a session is over."""

    LOGOUT = "logout"
    IDLE = "idle"
    EXPIRED = "expired"  # closing time or the session's own limit


@dataclass(frozen=True)
class Session:
    """A child signed in on a device (named by MAC, or by IP where the MAC is unknown), from `address`.

    A session named by MAC holds only at the address it was signed in from: any device on the children's
    network can copy a MAC it has seen, and a copy at another address must not take over the session.
    Over at `expires` (closing time), after `idle` without traffic since `last_seen`, or at `ended`.
    """

    child: Child
    device: str
    started: datetime
    expires: datetime
    last_seen: datetime
    idle: timedelta = timedelta(minutes=20)
    ended: datetime | None = None
    address: str = ""  # where it was signed in from ("" for sessions made before addresses were kept)

    def end_reason(self, now: datetime) -> SessionEnd | None:
        """None while the session is active at `now`, else why it is over."""
        if self.ended is not None and self.ended <= now:
            return SessionEnd.LOGOUT
        if now >= self.expires:
            return SessionEnd.EXPIRED
        if now - self.last_seen >= self.idle:
            return SessionEnd.IDLE
        return None


class Via(StrEnum):
    """How the identity was found."""

    SESSION = "session"
    MAC = "device-mac"
    IP = "device-ip"
    GUEST = "guest"
    ASSUMED = "assumed"  # named by staff (`appliance explain --profile`), not found on the network


@dataclass(frozen=True)
class Identity:
    """Who is asking and under which profile. `child` only for a signed-in child."""

    profile: str
    via: Via
    device: Device | None = None
    child: Child | None = None

    @property
    def managed(self) -> bool:
        return self.device is not None and self.device.managed

    @property
    def subject(self) -> str:
        """A label for logs: the child's pseudonymous id (or, for staff signed in at the portal, their user
        name), else the device's name, else `guest`."""
        if self.child is not None:
            return f"staff:{self.child.display_name}" if self.child.staff else f"child:{self.child.id}"
        if self.device is not None:
            return f"device:{self.device.name}"
        return GUEST


GUEST_IDENTITY = Identity(GUEST, Via.GUEST)


class Devices:
    """The centre's devices, indexed for a look-up per request. Immutable once built."""

    def __init__(self, devices: Iterable[Device] = ()) -> None:
        """Raises ValueError naming the device whose MAC or network is not valid."""
        self.all = tuple(devices)
        self._by_mac: dict[str, Identity] = {}
        self._by_ip: dict[str, Identity] = {}
        networks = []
        for device in self.all:
            if device.mac:
                self._by_mac[normalise_mac(device.mac)] = Identity(device.profile, Via.MAC, device)
            if device.network:
                try:
                    net = ipaddress.ip_network(device.network, strict=False)
                except ValueError as e:
                    raise ValueError(
                        f"device {device.name!r}: {device.network!r} is not an IP or network"
                    ) from e
                if net.num_addresses == 1:
                    self._by_ip[str(net.network_address)] = Identity(device.profile, Via.IP, device)
                else:
                    networks.append((net, Identity(device.profile, Via.IP, device)))
        # Narrowest network first: a room's /28 wins over the centre's /24.
        self._networks = sorted(networks, key=lambda pair: -pair[0].prefixlen)
        self._ip_cache: dict[str, Identity | None] = {}

    def by_ip(self, ip: str) -> Identity | None:
        found = self._by_ip.get(ip)
        if found is not None or not self._networks:
            return found
        try:
            return self._ip_cache[ip]
        except KeyError:
            pass
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        found = next((i for net, i in self._networks if address in net), None)
        if len(self._ip_cache) >= _IP_CACHE_SIZE:
            self._ip_cache.clear()
        self._ip_cache[ip] = found
        return found


class Sessions:
    """Portal sessions by device (MAC or IP). Immutable once built: sign-ins make a new one."""

    def __init__(self, sessions: Iterable[Session] = ()) -> None:
        self.all = tuple(sessions)
        self._by_device: dict[str, Session] = {}
        for session in sorted(self.all, key=lambda s: s.started):
            key = session.device
            with contextlib.suppress(ValueError):  # else an IP address
                key = normalise_mac(key)
            self._by_device[key] = session  # the latest sign-in on a device wins


def identify(
    client_ip: str, mac: str | None, devices: Devices, sessions: Sessions, now: datetime
) -> Identity:
    """Who is asking from `client_ip` (and `mac` where known) at `now`, and under which profile."""
    key = (_MAC_CACHE.get(mac) or mac_key(mac)) if mac else None  # once per request, remembered
    signed_in = sessions._by_device
    if signed_in:
        session = signed_in.get(key) if key else None
        if session is not None and session.address and session.address != client_ip:
            session = None  # the MAC at another address: a copied MAC is never the signed-in device
        session = session or signed_in.get(client_ip)
        if session is not None and session.end_reason(now) is None:
            device = (devices._by_mac.get(key) if key else None) or devices.by_ip(client_ip)
            return Identity(
                session.child.profile, Via.SESSION, device.device if device else None, session.child
            )
    found = (devices._by_mac.get(key) if key else None) or devices.by_ip(client_ip)
    return found if found is not None else GUEST_IDENTITY
