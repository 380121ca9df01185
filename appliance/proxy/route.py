"""The addon that says where a connection goes: to the decided name as the appliance resolves it for
that device (appliance/resolver/resolution.py), never to an address the device chose, never to a blocked name
or one whose answer leads to a blocked name; never to the appliance itself but on its open ports, nor to
the centre's own networks for a child."""

from __future__ import annotations

import contextlib
import time

from mitmproxy.proxy import server_hooks

from appliance.in_force.live import Live
from appliance.net import is_own_address, split_host_port
from appliance.proxy.shared import Shared, log
from appliance.proxy.target import local_and_unlisted
from appliance.resolver.resolution import Resolver
from appliance.resolver.upstream import parse_listen, upstreams_for
from filters.names import is_address
from filters.urls import canonical_host
from profiles.connection import undecidable
from profiles.identity import Identity
from profiles.verdict import Step


def make_resolver(live: Live) -> Resolver:
    """Filtered resolution over the DNS filter's upstreams (dns.upstreams, else the machine's own)."""
    return Resolver(upstreams_for(live, parse_listen(live.config.dns.listen)))  # the DNS filter's own choice


class Route:
    """Resolves and checks every upstream connection (`server_connect`). Its resolver (and the records
    it remembers) is made anew for each policy loaded."""

    def __init__(self, shared: Shared, resolver: Resolver | None = None) -> None:
        self.shared = shared
        self._resolver = resolver or make_resolver(shared.live)
        self._made_for = shared.follower.reloads  # the reload the resolver was made after

    @property
    def resolver(self) -> Resolver:
        follower = self.shared.follower
        if self._made_for != follower.reloads:
            self._resolver = make_resolver(follower.live)
            self._made_for = follower.reloads
        return self._resolver

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Connect to the decided name as the appliance resolves it for this device. The appliance itself
        (loopback, any of its own addresses) is reached only on the portal's port and
        `reachable_local_ports`, and the portal's port only by the portal's names or the appliance's own
        address: a name that merely resolves to the appliance is refused there (DNS rebinding)."""
        address = data.server.address
        if address is None:
            return
        shared = self.shared
        host, port = canonical_host(str(address[0])), int(address[1])
        identity: Identity | None = None
        try:
            identity, who, standing = shared.client(data.client, time.monotonic())
            portal = False
            if is_address(host):
                candidates: tuple[str, ...] = (host,)
            else:
                resolved = await self.resolver.resolve(host, identity, shared.live, standing)
                if resolved.blocked is not None:
                    data.server.error = f"{host} is blocked for this device"
                    shared.log(
                        who,
                        resolved.blocked,
                        host,
                        "connect",
                        time.monotonic(),
                        "CONNECT",
                        f"{host}:{port}",
                        0,
                        0,
                        "",
                    )
                    return
                if not resolved.addresses:
                    data.server.error = f"cannot resolve {host}: {resolved.error}"
                    return
                candidates = resolved.addresses
                portal = bool(resolved.verdict.reasons) and resolved.verdict.reasons[0].step is Step.PORTAL
            if any(is_own_address(a) for a in candidates):
                if not self._may_reach_self(port, by_name=portal or is_address(host)):
                    data.server.error = (
                        f"{host}:{port} is the appliance itself: not reachable through its proxy"
                    )
                    log.warning(
                        "refused a connection to the appliance itself (%s:%d) for %s", host, port, who.client
                    )
                    return
            elif self._local_refused(candidates[0], identity):
                # The centre's own networks (staff PCs, the Internet router's admin page) are not the web.
                data.server.error = (
                    f"{host}:{port} is on the centre's own network: not reachable for children"
                )
                what = f"an address on the centre's own network ({candidates[0]})"
                verdict = undecidable(shared.live.policy, identity, what)
                shared.log(
                    who, verdict, host, "connect", time.monotonic(), "CONNECT", f"{host}:{port}", 0, 0, ""
                )
                return
            data.server.address = (candidates[0], port)
        except Exception:
            shared.errors += 1
            log.exception("resolving %s failed", host)
            if not shared.fails_open(identity):
                data.server.error = f"cannot connect to {host}: the appliance failed to decide"

    def _may_reach_self(self, port: int, *, by_name: bool) -> bool:
        """May a connection go to the appliance's own `port`? `by_name`: it was asked for by a portal
        name or the appliance's own address (not by some name that resolves here)."""
        config = self.shared.live.config
        if port in config.proxy.reachable_local_ports:
            return True
        with contextlib.suppress(ValueError):
            return by_name and port == split_host_port(config.dashboard.listen, 80)[1]
        return False

    def _local_refused(self, address: str, identity: Identity) -> bool:
        """Is `address` a local network's (not listed in proxy.reachable_networks) and the asker no staff?"""
        if not local_and_unlisted(address, self.shared.live.config.proxy.reachable_networks):
            return False
        return self.shared.live.policy.rules_for(identity.profile).bypass is None
