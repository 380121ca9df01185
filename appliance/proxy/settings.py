"""The monitoring proxy's settings (the `proxy:` section of appliance.yaml; docs/proxy.md lists every key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from appliance.pages import Helpline

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
