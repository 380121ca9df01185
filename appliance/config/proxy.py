"""The monitoring proxy's settings (the `proxy:` section of appliance.yaml; docs/proxy.md lists every key)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from appliance.config.reader import ConfigError, Reader
from appliance.config.reader import Mapping as _Mapping
from appliance.net import split_host_port
from filters.names import BadName, is_address, normalise_host


@dataclass(frozen=True)
class Helpline:
    """The national helpline the block page links (`proxy.helpline`)."""

    name: str  # "Childline"
    phone: str = ""  # "0800 1111"
    url: str = ""  # "https://www.childline.org.uk/"
    text: str = ""  # one short line, e.g. "Free, private and confidential, any time."


# The UK's national helpline for children (the shipped time zone is London's); other centres set theirs.
CHILDLINE = Helpline(
    "Childline", "0800 1111", "https://www.childline.org.uk/", "Free, private and confidential, any time."
)


class ProxyMode(StrEnum):
    """`regular`: browsers are configured to use the proxy (make run, loopback). `transparent`: the
    router's nftables rules send ports 80 and 443 to it (the Pi)."""

    REGULAR = "regular"
    TRANSPARENT = "transparent"


@dataclass(frozen=True)
class ProxySettings:
    listen: str = "127.0.0.1:8080"
    mode: ProxyMode = ProxyMode.REGULAR
    workers: int = 0  # 0: one per core
    page_limit_kb: int = 512  # text/html scored up to this much of each page
    upload_limit_kb: int = 64  # form posts and messages read for personal information up to this much
    ca_dir: Path | None = None  # default: <data_dir>/ca
    centre: str = ""  # the centre's name, on the block page and the certificate
    helpline: Helpline = field(default_factory=lambda: CHILDLINE)
    # Extra certificate authorities trusted for the sites behind the proxy (a council's own sites with a
    # private CA); the system's usual ones are trusted anyway.
    upstream_trusted_ca: Path | None = None
    # The appliance's own addresses (loopback included) are never reached through the proxy, but for the
    # portal's port and these (a local service children may use; the tests' own web servers).
    reachable_local_ports: tuple[int, ...] = ()
    # Limits per device (its address), per proxy worker: open connections at once, and the seconds a new
    # connection has to send its first request head or TLS hello.
    # Local networks (the centre's, its Internet router's) children may reach through the proxy: a local
    # server of the centre's. Every other local address is refused (appliance/proxy/target.py).
    reachable_networks: tuple[str, ...] = ()
    connections_per_device: int = 64
    head_timeout_s: float = 15.0
    # Services that are neither web nor TLS a centre has approved (`mail.example.org:143`): relayed for
    # children when the host is allowed for them, decided and logged. Everything else that is not HTTP or
    # TLS is refused.
    raw_services: tuple[tuple[str, int], ...] = ()


_RAW_SERVICES = "proxy.raw_services must be a list of host:port (e.g. mail.example.org:143)"


_REACHABLE = "proxy.reachable_networks must be a list of networks (e.g. 192.168.50.20/32)"


def parse_proxy(raw: Any, r: Reader, data: _Mapping) -> ProxySettings:
    if raw is None:
        return ProxySettings()
    if not isinstance(raw, _Mapping):
        raise ConfigError(f"{r.where(data, 'proxy')}: proxy must be a mapping (listen, mode, ...)")
    keys = {"listen", "mode", "workers", "page_limit_kb", "upload_limit_kb", "ca_dir", "centre", "helpline"}
    keys |= {"upstream_trusted_ca", "reachable_local_ports", "connections_per_device", "head_timeout_s"}
    keys |= {"raw_services", "reachable_networks"}
    r.keys(raw, keys, "proxy")
    d = ProxySettings()
    listen = raw.get("listen", d.listen)
    try:
        host, _ = split_host_port(listen, 8080) if isinstance(listen, str) else ("", 0)
        ipaddress.ip_address(host)
    except ValueError as e:
        raise ConfigError(
            f"{r.where(raw, 'listen')}: proxy.listen: {listen!r} is not an address like 127.0.0.1:8080"
        ) from e
    mode = raw.get("mode", str(d.mode))
    if mode not in {str(m) for m in ProxyMode}:
        raise ConfigError(f"{r.where(raw, 'mode')}: proxy.mode must be regular or transparent")
    ca_dir = raw.get("ca_dir")
    if ca_dir is not None and (not isinstance(ca_dir, str) or not ca_dir.strip()):
        raise ConfigError(f"{r.where(raw, 'ca_dir')}: proxy.ca_dir must be a folder path")
    trusted = raw.get("upstream_trusted_ca")
    if trusted is not None and (not isinstance(trusted, str) or not trusted.strip()):
        raise ConfigError(
            f"{r.where(raw, 'upstream_trusted_ca')}: proxy.upstream_trusted_ca must be a PEM file path"
        )
    centre = raw.get("centre", d.centre)
    if not isinstance(centre, str):
        raise ConfigError(f"{r.where(raw, 'centre')}: proxy.centre must be the centre's name")
    helpline = d.helpline
    raw_help = raw.get("helpline")
    if raw_help is not None:
        if not isinstance(raw_help, _Mapping) or not isinstance(raw_help.get("name"), str):
            raise ConfigError(
                f"{r.where(raw, 'helpline')}: proxy.helpline must be a mapping with a name"
                " (and phone, url, text)"
            )
        r.keys(raw_help, {"name", "phone", "url", "text"}, "proxy.helpline")
        parts = {k: raw_help.get(k, "") for k in ("name", "phone", "url", "text")}
        for k, v in parts.items():
            if not isinstance(v, str):
                raise ConfigError(f"{r.where(raw_help, k)}: proxy.helpline.{k} must be text")
        if parts["url"] and not str(parts["url"]).startswith(("https://", "http://")):
            raise ConfigError(f"{r.where(raw_help, 'url')}: proxy.helpline.url must start with https://")
        helpline = Helpline(**parts)
    ports = raw.get("reachable_local_ports", [])
    if not isinstance(ports, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports
    ):
        raise ConfigError(
            f"{r.where(raw, 'reachable_local_ports')}: proxy.reachable_local_ports must be a list of"
            " port numbers"
        )
    services = raw.get("raw_services", [])
    if not isinstance(services, list):
        raise ConfigError(f"{r.where(raw, 'raw_services')}: {_RAW_SERVICES}")
    raw_services: list[tuple[str, int]] = []
    for i, text in enumerate(services):
        line = getattr(services, "item_lines", [])[i : i + 1] or [raw.line_of("raw_services")]
        try:
            host, port = split_host_port(text, 0) if isinstance(text, str) else ("", 0)
            host = host if is_address(host) else normalise_host(host)
        except (ValueError, BadName) as e:
            raise ConfigError(f"{r.path}:{line[0]}: {_RAW_SERVICES}: {text!r}: {e}") from e
        if not 0 < port < 65536:
            raise ConfigError(f"{r.path}:{line[0]}: {_RAW_SERVICES}: {text!r} has no port")
        raw_services.append((host, port))
    networks = raw.get("reachable_networks", [])
    if not isinstance(networks, list):
        raise ConfigError(f"{r.where(raw, 'reachable_networks')}: {_REACHABLE}")
    for i, text in enumerate(networks):
        line = getattr(networks, "item_lines", [])[i : i + 1] or [raw.line_of("reachable_networks")]
        try:
            ipaddress.ip_network(str(text), strict=False)
        except ValueError as e:
            raise ConfigError(f"{r.path}:{line[0]}: {_REACHABLE}: {text!r}: {e}") from e
    return ProxySettings(
        reachable_networks=tuple(str(n) for n in networks),
        reachable_local_ports=tuple(ports),
        connections_per_device=int(
            r.number(raw, "connections_per_device", d.connections_per_device, 1, 100_000, "proxy")
        ),
        head_timeout_s=float(r.number(raw, "head_timeout_s", d.head_timeout_s, 1, 3600, "proxy")),
        raw_services=tuple(raw_services),
        listen=listen,
        mode=ProxyMode(mode),
        workers=int(r.number(raw, "workers", d.workers, 0, 64, "proxy")),
        page_limit_kb=int(r.number(raw, "page_limit_kb", d.page_limit_kb, 0, 65_536, "proxy")),
        upload_limit_kb=int(r.number(raw, "upload_limit_kb", d.upload_limit_kb, 0, 65_536, "proxy")),
        ca_dir=(r.path.parent / os.path.expanduser(ca_dir)).resolve() if ca_dir else None,
        centre=centre,
        helpline=helpline,
        upstream_trusted_ca=(r.path.parent / os.path.expanduser(trusted)).resolve() if trusted else None,
    )
