"""Which site a web request is decided on and sent to: the name it names, never an address the client
chose; and which addresses the proxy never connects a child to (the networks of the centre and of its
Internet router). Pure.

A request carries up to two names: the host it is addressed to (the URL's host in a proxy request, the
CONNECT target, the TLS name of an intercepted connection) and the one it names in its Host header (or
HTTP/2 `:authority`). In transparent mode a plain request's "address" is only the IP address the device
connected to: it is ignored, and the request goes to the named host as the appliance resolves it. Two
different names are a way round the filter: both are decided (the strictest wins) and the request goes
to the named one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.net import plain_ip
from filters.names import BadName, is_address, normalise_host
from filters.urls import canonical_host


@dataclass(frozen=True)
class Target:
    """`decided`: the host the request is decided on and connected to. `sent`: another host it was also
    addressed to ("" if none), decided too. `decided` is "" when the request names no usable host."""

    decided: str
    sent: str = ""


def usable_host(text: str) -> str | None:
    """A Host header's (or authority's) host, canonical, without its port; None if it is not a host
    name or an IP address (a value a server might still route on, so never let through undecided)."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        host = canonical_host(inside)
        return host if is_address(host) else None
    name, colon, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if colon and not port.isdigit():
        return None
    host = canonical_host(name)
    if is_address(host):
        return host
    try:
        return normalise_host(host)
    except BadName:
        return None


def request_target(*, address: str, host_header: str | None, address_is_chosen: bool) -> Target:
    """The target of one request. `address`: mitmproxy's `request.host` (the URL's host, the CONNECT
    target or TLS name, or in transparent mode the IP address the device connected to). `host_header`:
    the Host header or `:authority`, None if absent. `address_is_chosen`: `address` is only the address
    the device connected to (transparent mode, not a name), so it is not a name to decide on."""
    sent = "" if address_is_chosen else canonical_host(address)
    if host_header is None:
        return Target(sent)
    named = usable_host(host_header)
    if named is None:
        return Target("")
    return Target(named, sent if sent and sent != named else "")


# Networks that are never the Internet: the centre's own (children's and staff's), the Internet router's
# (its admin page), carrier-grade NAT, link-local and unique-local addresses. A child reaches them through
# the proxy only where the centre lists them (`proxy.reachable_networks`: a local learning server).
LOCAL_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
    )
)


def local_and_unlisted(address: str, reachable: Sequence[str]) -> bool:
    """Is `address` on a local network (LOCAL_NETWORKS) that `reachable` (networks) does not list?"""
    ip = plain_ip(address)
    if ip is None:
        return False
    if not any(ip in net for net in LOCAL_NETWORKS if net.version == ip.version):
        return False
    return not any(ip in ipaddress.ip_network(n, strict=False) for n in reachable)
