"""The `devices:` section of appliance.yaml (devices named by MAC or address, with their profile), and
the checks of devices against the policy's profiles."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from appliance.config.dashboard import PortalSettings
from appliance.config.proxy import ProxyMode
from appliance.config.reader import ConfigError, Reader
from appliance.config.reader import Mapping as _Mapping
from profiles.identity import Device, normalise_mac
from profiles.profile import Profile

if TYPE_CHECKING:
    from appliance.config.file import Config


def parse_devices(raw: Any, r: Reader, data: _Mapping) -> tuple[tuple[Device, ...], dict[str, int]]:
    if raw is None:
        return (), {}
    if not isinstance(raw, list):
        raise ConfigError(f"{r.where(data, 'devices')}: devices must be a list of devices")
    devices, lines = [], {}
    for item in raw:
        if not isinstance(item, _Mapping):
            raise ConfigError(
                f"{r.where(data, 'devices')}: each device must be a mapping (name, profile, ...)"
            )
        r.keys(item, {"name", "profile", "mac", "network", "managed"}, "a device")
        name, profile = item.get("name"), item.get("profile")
        if (
            not isinstance(name, str)
            or not name.strip()
            or not isinstance(profile, str)
            or not profile.strip()
        ):
            raise ConfigError(f"{r.where(item)}: a device needs a name and a profile")
        name = name.strip()
        if name in lines:
            raise ConfigError(f"{r.where(item, 'name')}: a second device named {name!r}")
        lines[name] = item.line
        mac, network, managed = item.get("mac"), item.get("network"), item.get("managed", False)
        if (mac is None) == (network is None):
            raise ConfigError(f"{r.where(item)}: device {name!r}: give exactly one of mac or network")
        if mac is not None:
            try:
                mac = normalise_mac(str(mac))
            except ValueError as e:
                raise ConfigError(f"{r.where(item, 'mac')}: device {name!r}: {e}") from e
        if network is not None:
            try:
                network = str(ipaddress.ip_network(str(network), strict=False))
            except ValueError as e:
                raise ConfigError(
                    f"{r.where(item, 'network')}: device {name!r}: {network!r} is not an address or "
                    "network (like 192.168.1.20 or 192.168.1.0/28)"
                ) from e
        if not isinstance(managed, bool):
            raise ConfigError(f"{r.where(item, 'managed')}: device {name!r}: managed is true or false")
        devices.append(Device(name, profile.strip(), mac, network, managed))
    return tuple(devices), lines


def device_problems(config: Config, profiles: Mapping[str, Profile]) -> list[str]:
    """`file:line` errors for devices whose profile is not among `profiles`, and for devices given the
    staff profile by what a child's device could claim (`staff_device_problem`)."""
    out = []
    for d in config.devices:
        where = f"{config.origin}:{config.device_lines.get(d.name, 1)}: device {d.name!r}"
        if d.profile not in profiles:
            out.append(f"{where}: no profile {d.profile!r} (profiles: {', '.join(sorted(profiles))})")
            continue
        problem = staff_device_problem(d, profiles[d.profile], config)
        if problem:
            out.append(f"{where}: {problem}")
    named = config.portal.staff_profile != PortalSettings().staff_profile  # the default may be absent
    if profiles and named and config.portal.staff_profile not in profiles:
        out.append(
            f"{config.origin}: portal.staff_profile: no profile {config.portal.staff_profile!r} "
            f"(profiles: {', '.join(sorted(profiles))})"
        )
    return out


def staff_device_problem(device: Device, profile: Profile, config: Config) -> str | None:
    """Why `device` may not have `profile`, if that is the staff profile (`portal.staff_profile`) or one
    that skips filtering (`bypass`), given by what any device can claim: a MAC (copied in a minute), or,
    in router mode, an address outside the staff interface's networks (on the children's interface any
    device can set any address; on the staff interface the router drops sources that do not belong).
    Staff on the children's network sign in at the portal instead."""
    if not (profile.bypass or profile.name == config.portal.staff_profile):
        return None
    if device.mac is not None:
        return (
            f"profile {profile.name!r} cannot be given by MAC address (any device can copy one): name the "
            "device by its address on the staff network, or let staff sign in at the portal on it"
        )
    if config.proxy.mode is not ProxyMode.TRANSPARENT:
        return None  # not the router: addresses are the centre's own network's business
    staff = [ipaddress.ip_network(n) for n in config.router.staff_networks]
    network = ipaddress.ip_network(device.network or "", strict=False)
    if not any(network.version == s.version and network.subnet_of(s) for s in staff):  # type: ignore[arg-type]
        within = (
            f"is not within router.staff_networks ({', '.join(config.router.staff_networks)})"
            if staff
            else "cannot be on the staff interface: router.staff_networks is not set"
        )
        return (
            f"profile {profile.name!r} in router mode is only for the staff interface's addresses: "
            f"{device.network} {within}; staff on the children's network sign in at the portal"
        )
    return None
