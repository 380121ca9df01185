"""Router mode: the nftables ruleset that makes the appliance the children's gateway (deploy/raspberry-pi).

Rendered from the configuration (`router:` for the interfaces and the resolvers refused, the DNS filter's,
the proxy's and the dashboard's ports from their own sections), so the rules the Pi loads are the ones the
test suite loads in its network namespaces (tests/deploy/).

- NAT from the children's LAN to the WAN;
- every TCP/UDP port-53 packet from the LAN redirected to the DNS filter, whatever address it was sent to
  (a hard-coded resolver is answered by the appliance all the same);
- TCP 80 and 443 from the LAN redirected to the proxy (the staff networks exempt);
- DNS over TLS/QUIC (853) and QUIC (UDP 443) rejected at once, so browsers fall back to what we see;
- the known DNS-over-HTTPS resolvers' addresses rejected;
- input: drop, but for DHCP, DNS, the proxy and the web server of the portal and the block pages from the
  LAN, the staff pages' own port (`dashboard.staff_listen`) from the staff networks only, and everything
  from loopback.
IPv6 is not routed: the LAN gets no router advertisements, and v6 forwarding is dropped here too.
"""

from __future__ import annotations

import argparse
from typing import Any

from appliance.config import Config, load_config
from appliance.dns.settings import split_host_port


def _port(listen: str, default: int) -> int:
    return split_host_port(listen, default)[1]


def ruleset(config: Config) -> str:
    """The `table inet appliance` ruleset for `config` (load with `nft -f`; replaces itself)."""
    r = config.router
    dns_port = _port(config.dns.listen[0], 53)
    proxy_port = _port(config.proxy.listen, 8080)
    web_port = _port(config.dashboard.listen, 80)
    staff_listen = config.dashboard.staff_listen
    # The staff pages' own port, where they have one: open to the staff networks only.
    staff_rule = (
        f"\n        ip saddr @staff_v4 tcp dport {_port(staff_listen, 8000)} accept" if staff_listen else ""
    )
    lan, wan = r.lan_interface, r.wan_interface
    v4 = [a for a in r.blocked_resolvers if ":" not in a]
    v6 = [a for a in r.blocked_resolvers if ":" in a]
    staff = ", ".join(r.staff_networks)

    def elements(items: list[str]) -> str:
        return f"elements = {{ {', '.join(items)} }}" if items else ""

    staff_v4 = elements([n for n in r.staff_networks if ":" not in n])
    return f"""# The appliance's rules (appliance/router.py renders them from appliance.yaml), for nftables.
table inet appliance
delete table inet appliance
table inet appliance {{
    set resolvers_v4 {{ type ipv4_addr; flags interval; {elements(v4)} }}
    set resolvers_v6 {{ type ipv6_addr; flags interval; {elements(v6)} }}
    set staff_v4 {{ type ipv4_addr; flags interval; {staff_v4} }}

    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname "{lan}" meta l4proto {{ tcp, udp }} th dport 53 redirect to :{dns_port}
        iifname "{lan}" ip saddr @staff_v4 return
        iifname "{lan}" tcp dport {{ 80, 443 }} fib daddr type != local redirect to :{proxy_port}
    }}

    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "{wan}" masquerade
    }}

    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        meta nfproto ipv6 drop
        iifname "{lan}" ip daddr @resolvers_v4 reject with icmpx admin-prohibited
        iifname "{lan}" meta l4proto {{ tcp, udp }} th dport 853 reject with icmpx port-unreachable
        iifname "{lan}" udp dport 443 reject with icmpx port-unreachable
        iifname "{lan}" oifname "{wan}" accept
    }}

    chain input {{
        type filter hook input priority filter; policy drop;
        iif lo accept
        ct state established,related accept
        ct state invalid drop
        iifname "{lan}" udp dport {{ 67, 68 }} accept
        iifname "{lan}" meta l4proto {{ tcp, udp }} th dport {dns_port} accept
        iifname "{lan}" tcp dport {{ {proxy_port}, {web_port} }} accept{staff_rule}
        iifname "{lan}" meta l4proto {{ icmp, ipv6-icmp }} accept
        iifname != "{lan}" tcp dport 22 accept
    }}
}}
""" + (f"# staff networks exempt from the proxy: {staff}\n" if staff else "")


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    router = commands.add_parser("router", help="router mode: the gateway's rules").add_subparsers(
        dest="router_command", required=True
    )
    rules = router.add_parser(
        "rules", parents=[common], help="print the nftables ruleset for this configuration (nft -f FILE)"
    )
    rules.set_defaults(run=_print_rules)


def _print_rules(args: argparse.Namespace) -> int:
    print(ruleset(load_config(args.config)), end="")
    return 0
