"""The router's rules as rendered from the configuration: checked by nftables itself (`nft -c`), and
mistakes in the `router:` section (and the staff profile given by what a device can claim) refused with
file:line. What the rules do to real packets is proven in test_router_netns.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from appliance.config import ConfigError, load_config
from appliance.router import ruleset


def _config(tmp_path: Path, text: str):
    path = tmp_path / "appliance.yaml"
    path.write_text(f"data_dir: {tmp_path}\n{text}", encoding="utf-8")
    return load_config(path)


# A policy with a profile that opens ports past the proxy (and the two every policy needs).
_CALLS = """profiles:
  guest: {description: Guests}
  staff: {description: Staff}
  calls:
    description: The video-call room
    direct_ports: [udp/3478, tcp/5222, udp/50000-50100]
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="nft -c needs root and nftables")
@pytest.mark.parametrize(
    "text",
    [
        "",  # the demo's
        "dns:\n  listen: ['0.0.0.0:53']\nproxy:\n  listen: 0.0.0.0:3129\ndashboard:\n  listen: 0.0.0.0:80\n"
        "  staff_listen: 0.0.0.0:8081\n"
        "  portal_tls_listen: 0.0.0.0:443\n"
        "router:\n  lan_interface: eth1\n  wan_interface: eth0\n  staff_interface: eth1.60\n"
        "  staff_networks: [192.168.60.0/24]\n"
        "  blocked_resolvers: [1.1.1.1, '2606:4700:4700::1111', 45.90.28.0/24]\n",
        "router:\n  staff_interface: eth2\n"  # a second port for staff, no staff pages' port
        "policy:\n  profiles: PROFILES\n"
        "devices:\n  - {name: call-pc, mac: '02:00:00:00:00:07', profile: calls}\n"
        "  - {name: room2, network: 192.168.50.32/28, profile: calls}\n",
        "router:\n  blocked_resolvers: []\n",
    ],
)
def test_nftables_accepts_the_rules(tmp_path: Path, text: str) -> None:
    (tmp_path / "profiles.yaml").write_text(_CALLS, encoding="utf-8")
    rules = tmp_path / "rules.nft"
    rules.write_text(ruleset(_config(tmp_path, text.replace("PROFILES", str(tmp_path / "profiles.yaml")))))
    ns = f"chk{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        checked = subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "-c", "-f", str(rules)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_the_rules_follow_the_configuration(tmp_path: Path) -> None:
    text = ruleset(
        _config(
            tmp_path,
            "dns:\n  listen: ['0.0.0.0:53']\nproxy:\n  listen: 0.0.0.0:3129\n"
            "router:\n  lan_interface: br-kids\n  wan_interface: eth0\n  staff_interface: br-staff\n"
            "  staff_networks: [192.168.60.0/24]\n",
        )
    )
    lans = '{ "br-kids", "br-staff" }'
    assert f"iifname {lans} meta l4proto {{ tcp, udp }} th dport 53 redirect to :53" in text
    assert 'iifname "br-kids" tcp dport { 80, 443 } fib daddr type != local redirect to :3129' in text
    assert 'oifname "eth0" masquerade' in text and "9.9.9.9" in text  # known resolvers refused
    assert f"iifname {lans} fib saddr . iif oif missing drop" in text  # spoofed sources, both sides
    assert 'iifname "br-staff" oifname "eth0" accept' in text  # the staff interface is forwarded
    # Nothing from the children's interface is forwarded but ping: no `iifname "br-kids" ... accept`
    # that would let other TCP or UDP out undecided.
    forward = text.split("chain forward")[1].split("chain input")[0]
    kids = [line.strip() for line in forward.splitlines() if '"br-kids"' in line and "accept" in line]
    assert kids == [
        'iifname "br-kids" oifname "eth0" icmp type echo-request ip length <= 128'
        " limit rate 20/second burst 40 packets accept"  # small pings only: no ICMP tunnel
    ]
    # Exemptions are keyed on the staff interface, never on a source address.
    assert "saddr @staff" not in text and "192.168.60.0/24" not in text
    assert "8081" not in text  # the staff pages share the portal's port unless they have their own


def test_the_staff_pages_own_port_is_open_to_the_staff_interface_only(tmp_path: Path) -> None:
    text = ruleset(
        _config(
            tmp_path,
            "dashboard:\n  listen: 0.0.0.0:80\n  staff_listen: 0.0.0.0:8081\n"
            "  portal_tls_listen: 0.0.0.0:443\n"
            "router:\n  staff_interface: eth1.60\n  staff_networks: [192.168.60.0/24]\n",
        )
    )
    assert 'iifname "eth1.60" tcp dport 8081 accept' in text
    assert 'iifname "eth1" tcp dport { 8080, 80, 443 } accept' in text  # proxy, portal, portal over HTTPS
    assert text.count("8081") == 1


def test_without_a_staff_interface_the_staff_pages_port_is_open_to_no_network(tmp_path: Path) -> None:
    text = ruleset(_config(tmp_path, "dashboard:\n  listen: 0.0.0.0:80\n  staff_listen: 0.0.0.0:8081\n"))
    assert "8081" not in text and 'iifname "eth1" oifname "eth0" accept' not in text


def test_direct_ports_open_exactly_those_ports_for_the_devices_named_with_the_profile(tmp_path: Path) -> None:
    (tmp_path / "profiles.yaml").write_text(_CALLS, encoding="utf-8")
    config = _config(
        tmp_path,
        f"policy:\n  profiles: {tmp_path / 'profiles.yaml'}\n"
        "devices:\n  - {name: call-pc, mac: '02-00-00-00-00-07', profile: calls}\n"
        "  - {name: room2, network: 192.168.50.32/28, profile: calls}\n"
        "  - {name: pc3, network: 192.168.50.40, profile: guest}\n",
    )
    forward = ruleset(config).split("chain forward")[1].split("chain input")[0]
    direct = [line.strip().split("  #")[0] for line in forward.splitlines() if "dport {" in line]
    assert direct == [
        'iifname "eth1" oifname "eth0" ether saddr 02:00:00:00:00:07 tcp dport { 5222 } accept',
        'iifname "eth1" oifname "eth0" ether saddr 02:00:00:00:00:07 udp dport { 3478, 50000-50100 } accept',
        'iifname "eth1" oifname "eth0" ip saddr 192.168.50.32/28 tcp dport { 5222 } accept',
        'iifname "eth1" oifname "eth0" ip saddr 192.168.50.32/28 udp dport { 3478, 50000-50100 } accept',
    ]
    # After the refusals: a direct port never reopens DNS over TLS or QUIC.
    assert forward.index("th dport 853 reject") < forward.index("ether saddr")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("router:\n  lan_interface: 'eth 1'\n", "router.lan_interface"),
        ("router:\n  staff_interface: eth1.60\n  staff_networks: [nonsense]\n", "router.staff_networks"),
        # An address range on the children's cable is no staff network: it needs its own interface.
        ("router:\n  staff_networks: [192.168.60.0/24]\n", "needs router.staff_interface"),
        ("router:\n  staff_interface: eth1\n", "already the lan_interface"),
        ("router:\n  staff_interface: 'eth1;drop'\n", "router.staff_interface"),
        ("router:\n  wan: eth0\n", "wan"),
    ],
)
def test_a_wrong_router_section_is_refused_with_its_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"appliance.yaml:\d+: .*{message}"):
        _config(tmp_path, text)


def _problems(tmp_path: Path, text: str) -> list[str]:
    from appliance.checks import policy_problems

    return policy_problems(_config(tmp_path, text))[1]


_ROUTER = (
    "proxy:\n  mode: transparent\nrouter:\n  staff_interface: eth1.60\n  staff_networks: [192.168.60.0/24]\n"
)


@pytest.mark.parametrize(
    ("device", "refused"),
    [
        # The staff profile never comes from a MAC: any device can copy one.
        ("{name: maria-laptop, mac: '3c:22:fb:12:34:56', profile: staff}", "cannot be given by MAC"),
        # Nor from an address on the children's network, where any device can set any address.
        ("{name: office, network: 192.168.50.9, profile: staff}", "not within router.staff_networks"),
        ("{name: office, network: 192.168.60.0/23, profile: staff}", "not within router.staff_networks"),
        # An address on the staff interface is staff: the router drops it from anywhere else.
        ("{name: office, network: 192.168.60.7, profile: staff}", None),
        ("{name: kids-pc, mac: '3c:22:fb:12:34:57', profile: 10-12}", None),
    ],
)
def test_appliance_check_refuses_the_staff_profile_by_what_a_device_can_claim(
    tmp_path: Path, device: str, refused: str | None
) -> None:
    problems = _problems(tmp_path, f"{_ROUTER}devices:\n  - {device}\n")
    if refused is None:
        assert problems == []
    else:
        (problem,) = problems
        assert problem.startswith(f"{tmp_path / 'appliance.yaml'}:8: device ") and refused in problem


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        ("[tcp/443]", "tcp/443 never goes out directly"),
        ("[udp/50-60]", "udp/53 never goes out directly"),
        ("[sctp/5000]", "is not like tcp/5222"),
        ("[tcp/70000]", "ports are 1 to 65535"),
        ("[tcp/6010-6000]", "the lower first"),
    ],
)
def test_a_wrong_direct_port_is_refused_with_its_line(tmp_path: Path, ports: str, message: str) -> None:
    (tmp_path / "profiles.yaml").write_text(_CALLS.replace("[udp/3478, tcp/5222, udp/50000-50100]", ports))
    (problem,) = _problems(tmp_path, f"policy:\n  profiles: {tmp_path / 'profiles.yaml'}\n")
    assert problem.startswith(f"{tmp_path / 'profiles.yaml'}:6: profile 'calls': direct_ports: ")
    assert message in problem


def test_appliance_check_warns_of_plain_http_staff_pages_and_a_router_without_a_staff_interface(
    tmp_path: Path,
) -> None:
    from appliance.checks import dashboard_warnings

    def warnings(text: str) -> list[str]:
        return dashboard_warnings(_config(tmp_path, text))

    pi = (
        "dashboard:\n  listen: 0.0.0.0:80\n  staff_listen: 0.0.0.0:8081\n"
        "  admin_networks: [192.168.60.0/24]\n"
    )
    assert warnings(pi + _ROUTER) == []  # the Pi's: HTTPS by default on the staff pages' own port
    (plain,) = warnings(pi.replace("admin_networks", "staff_tls: false\n  admin_networks") + _ROUTER)
    assert "over plain HTTP" in plain and "staff_tls" in plain
    (lost,) = warnings(pi + "proxy:\n  mode: transparent\n")
    assert "without router.staff_interface" in lost and "open to no network" in lost


def test_a_centre_without_a_staff_profile_is_valid_unless_it_names_one(tmp_path: Path) -> None:
    """`portal.staff_profile` defaults to `staff`: a centre whose profiles have none simply has no staff
    sign-in at the portal; a staff profile the configuration names must exist."""
    (tmp_path / "profiles.yaml").write_text(_CALLS.replace("  staff: {description: Staff}\n", ""))
    policy = f"policy:\n  profiles: {tmp_path / 'profiles.yaml'}\n"
    assert _problems(tmp_path, policy) == []
    (problem,) = _problems(tmp_path, policy + "portal:\n  staff_profile: technicians\n")
    assert "portal.staff_profile: no profile 'technicians'" in problem
