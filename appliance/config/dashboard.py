"""The staff dashboard's and the children's portal's settings (`dashboard:` and `portal:` in
appliance.yaml; docs/configuration.md lists every key)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.config.reader import (
    ConfigError,
    Reader,
)
from appliance.config.reader import Mapping as _Mapping
from appliance.net import split_host_port


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


def parse_dashboard(raw: Any, r: Reader, data: _Mapping) -> DashboardSettings:
    d = DashboardSettings()
    keys = {"listen", "admin_networks", "secure_cookies", "idle_minutes", "session_hours", "escalation"}
    keys |= {"arp_sweep", "staff_listen", "staff_tls", "portal_tls_listen", "tls_names"}
    node = r.section(raw, data, "dashboard", keys)
    if node is None:
        return d
    addresses = {}
    for key in ("listen", "staff_listen", "portal_tls_listen"):
        if key not in node and key != "listen":
            continue
        addresses[key] = value = r.setting_text(node, key, "dashboard", d.listen)
        try:
            host, _ = split_host_port(value, 8000)
            ipaddress.ip_address(host)
        except ValueError as e:
            raise ConfigError(
                f"{r.where(node, key)}: dashboard.{key}: {value!r} is not an address like 0.0.0.0:80"
            ) from e
    listen = addresses.get("listen", d.listen)
    staff_listen = addresses.get("staff_listen")
    portal_tls = addresses.get("portal_tls_listen")
    ports = {"listen": split_host_port(listen, 8000)[1]}
    for key, given in (("staff_listen", staff_listen), ("portal_tls_listen", portal_tls)):
        if given is None:
            continue
        port = split_host_port(given, 8000)[1]
        if port in ports.values():
            raise ConfigError(
                f"{r.where(node, key)}: dashboard.{key} needs a port of its own (not "
                f"dashboard.{next(k for k, p in ports.items() if p == port)}'s)"
            )
        ports[key] = port
    staff_tls = r.setting_flag(node, "staff_tls", "dashboard", staff_listen is not None)
    if staff_tls and staff_listen is None:
        raise ConfigError(
            f"{r.where(node, 'staff_tls')}: dashboard.staff_tls needs dashboard.staff_listen (the staff "
            "pages' own port): the children's port stays plain HTTP, for devices that do not trust the "
            "appliance's certificate"
        )
    tls_names = node.get("tls_names", [])
    if not isinstance(tls_names, list) or not all(isinstance(n, str) and n.strip() for n in tls_names):
        raise ConfigError(
            f"{r.where(node, 'tls_names')}: dashboard.tls_names must be a list of names or addresses"
        )
    contacts = []
    raw_contacts = node.get("escalation", [])
    if not isinstance(raw_contacts, list):
        raise ConfigError(f"{r.where(node, 'escalation')}: dashboard.escalation must be a list of contacts")
    for item in raw_contacts:
        if not isinstance(item, _Mapping) or not isinstance(item.get("name"), str):
            raise ConfigError(
                f"{r.where(node, 'escalation')}: each escalation contact is a mapping with a name"
                " (and role, phone, email)"
            )
        r.keys(item, {"name", "role", "phone", "email"}, "an escalation contact")
        contacts.append(
            Contact(
                **{k: r.setting_text(item, k, "escalation", "") for k in ("name", "role", "phone", "email")}
            )
        )
    sweep = None
    raw_sweep = node.get("arp_sweep")
    if raw_sweep is not None:
        if not isinstance(raw_sweep, _Mapping):
            raise ConfigError(
                f"{r.where(node, 'arp_sweep')}: dashboard.arp_sweep is a mapping: interface, network"
            )
        r.keys(raw_sweep, {"interface", "network"}, "dashboard.arp_sweep")
        interface = r.setting_text(raw_sweep, "interface", "dashboard.arp_sweep", "")
        network = r.setting_text(raw_sweep, "network", "dashboard.arp_sweep", "")
        try:
            network = str(ipaddress.ip_network(network, strict=False))
        except ValueError as e:
            raise ConfigError(
                f"{r.where(raw_sweep, 'network')}: dashboard.arp_sweep.network: {network!r} is not a"
                " network like 192.168.50.0/24"
            ) from e
        if not interface:
            raise ConfigError(f"{r.where(raw_sweep)}: dashboard.arp_sweep needs an interface (like eth1)")
        sweep = (interface, network)
    return DashboardSettings(
        arp_sweep=sweep,
        listen=listen,
        staff_listen=staff_listen,
        admin_networks=r.networks(node, "admin_networks", "dashboard", d.admin_networks),
        staff_tls=staff_tls,
        portal_tls_listen=portal_tls,
        tls_names=tuple(n.strip() for n in tls_names),
        secure_cookies=r.setting_flag(node, "secure_cookies", "dashboard", d.secure_cookies),
        idle_minutes=int(r.number(node, "idle_minutes", d.idle_minutes, 1, 24 * 60, "dashboard")),
        session_hours=int(r.number(node, "session_hours", d.session_hours, 1, 24, "dashboard")),
        escalation=tuple(contacts),
    )


def parse_portal(raw: Any, r: Reader, data: _Mapping) -> PortalSettings:
    d = PortalSettings()
    keys = {"closing_time", "idle_minutes", "rules", "show_names", "staff_profile"}
    node = r.section(raw, data, "portal", keys)
    if node is None:
        return d
    closing = r.setting_text(node, "closing_time", "portal", d.closing_time)
    hour, _, minute = closing.partition(":")
    valid = hour.isdigit() and minute.isdigit() and len(minute) == 2 and int(minute) < 60
    if not (valid and (int(hour) < 24 or (int(hour) == 24 and int(minute) == 0))):
        raise ConfigError(
            f"{r.where(node, 'closing_time')}: portal.closing_time must be a time like 19:30"
            " (24:00 is midnight)"
        )
    rules = node.get("rules")
    if rules is not None and (not isinstance(rules, str) or not rules.strip()):
        raise ConfigError(f"{r.where(node, 'rules')}: portal.rules must be a text file path")
    return PortalSettings(
        closing_time=closing,
        idle_minutes=int(r.number(node, "idle_minutes", d.idle_minutes, 1, 24 * 60, "portal")),
        rules=(r.path.parent / os.path.expanduser(rules)).resolve() if rules else None,
        show_names=r.setting_flag(node, "show_names", "portal", d.show_names),
        staff_profile=r.setting_text(node, "staff_profile", "portal", d.staff_profile).strip()
        or d.staff_profile,
    )
