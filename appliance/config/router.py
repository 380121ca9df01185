"""Router mode's settings (the `router:` section of appliance.yaml; rendered into nftables rules by
appliance/router.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.config.reader import ConfigError, Reader
from appliance.config.reader import Mapping as _Mapping

# DNS-over-HTTPS resolvers browsers and apps use on their own: refused at the router, so a device falls
# back to the centre's DNS (plain DNS to them is answered by the appliance anyway: port 53 is redirected).
KNOWN_RESOLVERS = (
    "1.1.1.1",
    "1.0.0.1",  # Cloudflare
    "8.8.8.8",
    "8.8.4.4",  # Google
    "9.9.9.9",
    "149.112.112.112",  # Quad9
    "208.67.222.222",
    "208.67.220.220",  # OpenDNS
    "94.140.14.14",
    "94.140.15.15",  # AdGuard
    "185.228.168.168",
    "185.228.169.168",  # CleanBrowsing
    "45.90.28.0/24",
    "45.90.30.0/24",  # NextDNS
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "2620:fe::fe",
)


@dataclass(frozen=True)
class RouterSettings:
    lan_interface: str = "eth1"  # the children's network: nothing on it is ever staff
    wan_interface: str = "eth0"  # towards the centre's Internet router
    # The staff network's own interface: a VLAN on the children's cable (eth1.60) or a second port. Its
    # devices skip the proxy (still through the DNS filter) and alone reach the staff pages' port.
    staff_interface: str | None = None
    staff_networks: tuple[str, ...] = ()  # the staff interface's address ranges (DHCP, devices, pages)
    blocked_resolvers: tuple[str, ...] = KNOWN_RESOLVERS


def parse_router(raw: Any, r: Reader, data: _Mapping) -> RouterSettings:
    d = RouterSettings()
    keys = {"lan_interface", "wan_interface", "staff_interface", "staff_networks", "blocked_resolvers"}
    node = r.section(raw, data, "router", keys)
    if node is None:
        return d
    interfaces: dict[str, str] = {}
    for key in ("lan_interface", "wan_interface", "staff_interface"):
        if key == "staff_interface" and node.get(key) is None:
            continue
        name = r.setting_text(node, key, "router", getattr(d, key))
        if not name or len(name) > 15 or not all(c.isalnum() or c in "-_." for c in name):
            raise ConfigError(f"{r.where(node, key)}: router.{key}: {name!r} is not an interface name")
        if name in interfaces.values():
            raise ConfigError(
                f"{r.where(node, key)}: router.{key}: {name!r} is already the "
                f"{next(k for k, v in interfaces.items() if v == name)}: each network needs its own "
                "interface (a VLAN like eth1.60 on the same cable will do)"
            )
        interfaces[key] = name
    staff_networks = r.networks(node, "staff_networks", "router", d.staff_networks)
    if staff_networks and "staff_interface" not in interfaces:
        raise ConfigError(
            f"{r.where(node, 'staff_networks')}: router.staff_networks needs router.staff_interface: "
            "the staff network's own interface (a VLAN like eth1.60, or a second port). On the children's "
            "interface an address tells nothing: any device can set a staff-range one"
        )
    return RouterSettings(
        staff_networks=staff_networks,
        blocked_resolvers=r.networks(node, "blocked_resolvers", "router", d.blocked_resolvers),
        **interfaces,
    )
