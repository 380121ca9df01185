"""Router mode: the nftables ruleset that makes the appliance the children's gateway (deploy/raspberry-pi).

Rendered from the configuration (`router:` for the interfaces and the resolvers refused, the DNS filter's,
the proxy's and the dashboard's ports from their own sections, `devices:` and the profiles' `direct_ports`
for what named devices may reach directly), so the rules the Pi loads are the ones the test suite loads in
its network namespaces (tests/deploy/).

Nothing a device on the children's interface says about itself makes it staff: every exemption is keyed on
the interface a packet came in on (`router.staff_interface`, a VLAN or a second port), never on its source
address, and a source that does not belong to the interface it arrived on is dropped before anything else.

- reverse path: on every LAN interface (children's and staff), a packet whose source address the routing
  table would not send back out of that same interface is dropped (`fib saddr . iif oif missing`; DHCP's
  0.0.0.0 excepted). Chosen over lists of each interface's networks because it follows the addresses the
  interfaces really have: one truth (the network configuration), nothing to keep in step;
- every TCP/UDP port-53 packet from a LAN interface redirected to the DNS filter, whatever address it was
  sent to (a hard-coded resolver is answered by the appliance all the same);
- TCP 80 and 443 from the children's interface redirected to the proxy (the staff interface is not);
- DNS over TLS/QUIC (853) and QUIC (UDP 443) rejected at once, so browsers fall back to what we see, and
  the known DNS-over-HTTPS resolvers' addresses rejected (both LAN interfaces); from the children's
  interface each of these refusals counted per source address, by kind (`refused_dot_v4`,
  `refused_doh_v4`: TCP/UDP to a known resolver, `refused_quic_v4`), for appliance.refusals to read;
- staff's controls, first in the forward chain (before `established`, so they cut what already flows;
  appliance/router_controls.py fills their sets from the store): a paused device's forwarded traffic
  dropped both ways (`paused_v4`, the whole children's network as an interval during a centre pause);
  STUN/TURN (UDP 3478-3481, 5349, Google's 19302-19309, Zoom's 8801-8810; TCP 3478, 5349) dropped from a
  device not in `calls_on_v4`, those whose profile does not block `video-calls` (it matters where a
  device's `direct_ports` open such ports: nothing else of it is forwarded). DNS, the proxy and the
  appliance's pages are not forwarded, so a paused child still gets the paused page;
- forward from the children's interface: nothing but small ICMP echoes (too small to carry a tunnel) and
  each named device's `direct_ports` (every other TCP/UDP that the proxy does not carry is dropped,
  undecided traffic never leaves); the staff
  interface is forwarded to the WAN; NAT to the WAN;
- input: drop, but for DHCP, DNS, the proxy and the web server of the portal and the block pages (and the
  portal's HTTPS port) from the children's interface, the staff pages' own port (`dashboard.staff_listen`)
  from the staff interface only, SSH from anything but the children's interface, and loopback.
IPv6 is not routed: the LAN gets no router advertisements, and v6 forwarding is dropped here too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from appliance.config import Config
from appliance.net import split_host_port
from appliance.policy_files import read_policy_files
from profiles.profile import DirectPort, Profile


def _port(listen: str, default: int) -> int:
    return split_host_port(listen, default)[1]


def _ports(ports: tuple[DirectPort, ...], protocol: str) -> str:
    found = [str(p).partition("/")[2] for p in ports if p.protocol == protocol]
    return f"{{ {', '.join(found)} }}" if found else ""


def direct_rules(config: Config, profiles: Mapping[str, Profile]) -> list[str]:
    """The forward rules for the configured devices whose profile has `direct_ports`: by MAC (`ether
    saddr`) or by IPv4 address or network (`ip saddr`). IPv6 is not forwarded at all."""
    lan, wan = config.router.lan_interface, config.router.wan_interface
    rules = []
    for device in config.devices:
        profile = profiles.get(device.profile)
        if profile is None or not profile.direct_ports:
            continue
        if device.mac:
            match = f"ether saddr {device.mac}"
        elif device.network and ipaddress.ip_network(device.network).version == 4:
            match = f"ip saddr {device.network}"
        else:
            continue
        for protocol in ("tcp", "udp"):
            ports = _ports(profile.direct_ports, protocol)
            if ports:
                name = "".join(c for c in f"{device.name} ({profile.name})" if c.isalnum() or c in " -_.()")
                rule = f'iifname "{lan}" oifname "{wan}" {match} {protocol} dport {ports} accept'
                rules.append(f"{rule}  # {name}")
    return rules


# Ping as a connectivity check, not a carrier: at most 100 bytes of payload (an ICMP tunnel needs
# full-size packets) and 20 a second from the whole children's network.
_SMALL_PINGS = "ip length <= 128 limit rate 20/second burst 40 packets"  # big ones: dropped before
# conntrack's "established" would let them through on the id of an earlier small one (both ways)


# The refusals counted per children's device (appliance/refusals.py reads them): one set per kind, an
# element per source address with its packets. `update` keeps an element while it is refused (an hour's
# quiet and it goes, its count with it); a full set adds no element but refuses all the same, as the count
# is a rule of its own before the refusal. IPv4 only: IPv6 is dropped before any refusal.
REFUSED_KINDS = ("dot", "doh", "quic")
_REFUSED_SET = "type ipv4_addr; size 4096; flags dynamic, timeout; timeout 1h; counter;"
_REFUSED_SETS = "".join(f"\n    set refused_{kind}_v4 {{ {_REFUSED_SET} }}" for kind in REFUSED_KINDS)


# Staff's controls (appliance/router_controls.py fills the sets, following the store): the devices paused
# (`paused_v4`: addresses, and the whole children's network as an interval during a centre pause) and the
# devices whose profile lets them make video calls (`calls_on_v4`). Empty when the rules are loaded: nobody
# is paused, and nobody's STUN/TURN goes out until the controller has said whose may.
CALL_PORTS_UDP = ("3478-3481", "5349", "19302-19309", "8801-8810")  # STUN/TURN, Google's, Zoom's
CALL_PORTS_TCP = ("3478", "5349")  # TURN over TCP and TLS
CONTROL_SETS = ("paused_v4", "paused_v6", "calls_on_v4", "calls_on_v6")
_UDP_CALLS, _TCP_CALLS = ", ".join(CALL_PORTS_UDP), ", ".join(CALL_PORTS_TCP)
_CONTROL_SETS = f"""
    set paused_v4 {{ type ipv4_addr; flags interval; }}
    set paused_v6 {{ type ipv6_addr; flags interval; }}
    set calls_on_v4 {{ type ipv4_addr; }}
    set calls_on_v6 {{ type ipv6_addr; }}
    set call_ports_udp {{ type inet_service; flags interval; elements = {{ {_UDP_CALLS} }} }}
    set call_ports_tcp {{ type inet_service; elements = {{ {_TCP_CALLS} }} }}"""


def control_rules(lan: str) -> list[str]:
    """The forward rules of staff's controls on the children's interface `lan`, first in the chain (before
    `established`, so a pause or a profile without calls cuts what is already flowing): a paused device's
    traffic dropped both ways; STUN/TURN from a device not in `calls_on` dropped. Only forwarded traffic:
    DNS, the proxy and the appliance's own pages are the input chain's, so a paused child still gets the
    paused page."""
    rules = []
    for ip, family in (("ip", "v4"), ("ip6", "v6")):
        rules += [
            f'iifname "{lan}" {ip} saddr @paused_{family} drop',
            f'oifname "{lan}" {ip} daddr @paused_{family} drop',
        ]
    for ip, family in (("ip", "v4"), ("ip6", "v6")):
        for protocol in ("udp", "tcp"):
            ports = f"{protocol} dport @call_ports_{protocol}"
            rules.append(f'iifname "{lan}" {ip} saddr != @calls_on_{family} {ports} drop')
    return rules


def ruleset(config: Config, profiles: Mapping[str, Profile] | None = None) -> str:
    """The `table inet appliance` ruleset for `config` (load with `nft -f`; replaces itself). `profiles`:
    the policy's (for `direct_ports`), read from the configuration's policy files if not given."""
    if profiles is None:
        profiles = read_policy_files(config.policy).profiles
    r = config.router
    dns_port = _port(config.dns.listen[0], 53)
    proxy_port = _port(config.proxy.listen, 8080)
    web_ports = [_port(config.dashboard.listen, 80)]
    if config.dashboard.portal_tls_listen:
        web_ports.append(_port(config.dashboard.portal_tls_listen, 443))
    lan, wan, staff = r.lan_interface, r.wan_interface, r.staff_interface
    lans = f'{{ "{lan}", "{staff}" }}' if staff else f'"{lan}"'
    v4 = [a for a in r.blocked_resolvers if ":" not in a]
    v6 = [a for a in r.blocked_resolvers if ":" in a]

    def elements(items: list[str]) -> str:
        return f"elements = {{ {', '.join(items)} }}" if items else ""

    def ports(numbers: list[int]) -> str:
        return str(numbers[0]) if len(numbers) == 1 else f"{{ {', '.join(map(str, numbers))} }}"

    staff_forward = staff_input = ""
    small_pings = _SMALL_PINGS
    if staff:
        staff_forward = f'\n        iifname "{staff}" oifname "{wan}" accept'
        staff_input = f'\n        iifname "{staff}" tcp dport {ports(web_ports)} accept'
        if config.dashboard.staff_listen:
            # The staff pages' own port: from the staff interface only, whatever the source claims.
            staff_port = _port(config.dashboard.staff_listen, 8000)
            staff_input += f'\n        iifname "{staff}" tcp dport {staff_port} accept'
    # Counted from the children's side (each kind once: DoH over UDP is not QUIC too), then refused.
    counted = "".join(
        f'\n        iifname "{lan}" {match} update @refused_{kind}_v4 {{ ip saddr counter }}'
        for kind, match in (
            ("dot", "meta l4proto { tcp, udp } th dport 853"),
            ("doh", "ip daddr @resolvers_v4 meta l4proto { tcp, udp } th dport != 853"),
            ("quic", "ip daddr != @resolvers_v4 udp dport 443"),
        )
    )
    direct = "".join(f"\n        {rule}" for rule in direct_rules(config, profiles))
    controlled = "".join(f"\n        {rule}" for rule in control_rules(lan))
    return f"""# The appliance's rules (appliance/router.py renders them from appliance.yaml), for nftables.
table inet appliance
delete table inet appliance
table inet appliance {{
    set resolvers_v4 {{ type ipv4_addr; flags interval; {elements(v4)} }}
    set resolvers_v6 {{ type ipv6_addr; flags interval; {elements(v6)} }}{_REFUSED_SETS}{_CONTROL_SETS}

    chain reverse_path {{
        type filter hook prerouting priority raw; policy accept;
        iifname {lans} udp sport 68 udp dport 67 accept
        iifname {lans} fib saddr . iif oif missing drop
    }}

    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname {lans} meta l4proto {{ tcp, udp }} th dport 53 redirect to :{dns_port}
        iifname "{lan}" tcp dport {{ 80, 443 }} fib daddr type != local redirect to :{proxy_port}
    }}

    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "{wan}" masquerade
    }}

    chain forward {{
        type filter hook forward priority filter; policy drop;{controlled}
        iifname "{lan}" icmp type echo-request ip length > 128 drop
        oifname "{lan}" icmp type echo-reply ip length > 128 drop
        ct state established,related accept
        meta nfproto ipv6 drop{counted}
        iifname {lans} ip daddr @resolvers_v4 reject with icmpx admin-prohibited
        iifname {lans} meta l4proto {{ tcp, udp }} th dport 853 reject with icmpx port-unreachable
        iifname {lans} udp dport 443 reject with icmpx port-unreachable{direct}
        iifname "{lan}" oifname "{wan}" icmp type echo-request {small_pings} accept{staff_forward}
    }}

    chain input {{
        type filter hook input priority filter; policy drop;
        iif lo accept
        ct state established,related accept
        ct state invalid drop
        iifname {lans} udp dport {{ 67, 68 }} accept
        iifname {lans} meta l4proto {{ tcp, udp }} th dport {dns_port} accept
        iifname "{lan}" tcp dport {{ {proxy_port}, {", ".join(map(str, web_ports))} }} accept{staff_input}
        iifname {lans} meta l4proto {{ icmp, ipv6-icmp }} accept
        iifname != "{lan}" tcp dport 22 accept
    }}
}}
"""
