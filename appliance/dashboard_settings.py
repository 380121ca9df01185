"""The staff dashboard's and the children's portal's settings (`dashboard:` and `portal:` in
appliance.yaml; docs/configuration.md lists every key)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Contact:
    """Someone an incident may be escalated to."""

    name: str
    role: str = ""
    phone: str = ""
    email: str = ""


@dataclass(frozen=True)
class DashboardSettings:
    listen: str = "127.0.0.1:8000"
    # Where the staff pages are answered, if not on `listen` (router mode: `listen` is the children's
    # portal and block pages, open to the LAN; this port the firewall opens to the staff networks only).
    staff_listen: str | None = None
    # Only these networks reach the staff pages; everyone else (the children's network) gets a 403 page.
    admin_networks: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    # The staff pages' port over HTTPS, with a certificate from the appliance's own CA (on by default
    # where the staff pages have their own port: router mode). Cookies sent over HTTPS are Secure.
    staff_tls: bool = False
    # The portal over HTTPS too (router mode: 0.0.0.0:443), where staff sign in on a children's device.
    portal_tls_listen: str | None = None
    tls_names: tuple[str, ...] = ()  # more names or addresses for the certificate (beyond those found)
    secure_cookies: bool = False  # Secure on every cookie, plain HTTP included (an HTTPS front end)
    idle_minutes: int = 30  # a staff sign-in ends after this long without a page
    session_hours: int = 10  # and after this long in any case
    escalation: tuple[Contact, ...] = ()
    # Where the appliance is the router: the children's interface and network, swept by ARP on request.
    arp_sweep: tuple[str, str] | None = None


@dataclass(frozen=True)
class PortalSettings:
    closing_time: str = "20:00"  # every session ends then (the centre's local time)
    idle_minutes: int = 20  # a signed-in device unused this long is signed out
    rules: Path | None = None  # the acceptable-use rules (text file); the shipped ones otherwise
    show_names: bool = True  # on the centre's managed PCs, the sign-in page lists the children's names
    # What a member of staff signed in at the portal gets on that device (their name and password; the
    # staff profile never comes from a device's MAC or a children's-network address).
    staff_profile: str = "staff"
