"""The router's rules as rendered from the configuration: checked by nftables itself (`nft -c`), and
mistakes in the `router:` section refused with file:line."""

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


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="nft -c needs root and nftables")
@pytest.mark.parametrize(
    "text",
    [
        "",  # the demo's
        "dns:\n  listen: ['0.0.0.0:53']\nproxy:\n  listen: 0.0.0.0:3129\ndashboard:\n  listen: 0.0.0.0:80\n"
        "  staff_listen: 0.0.0.0:8081\n"
        "router:\n  lan_interface: eth1\n  wan_interface: eth0\n  staff_networks: [192.168.60.0/24]\n"
        "  blocked_resolvers: [1.1.1.1, '2606:4700:4700::1111', 45.90.28.0/24]\n",
        "router:\n  blocked_resolvers: []\n",
    ],
)
def test_nftables_accepts_the_rules(tmp_path: Path, text: str) -> None:
    rules = tmp_path / "rules.nft"
    rules.write_text(ruleset(_config(tmp_path, text)), encoding="utf-8")
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
            "router:\n  lan_interface: br-kids\n  wan_interface: eth0\n  staff_networks: [192.168.60.0/24]\n",
        )
    )
    assert 'iifname "br-kids" meta l4proto { tcp, udp } th dport 53 redirect to :53' in text
    assert "redirect to :3129" in text and 'oifname "eth0" masquerade' in text
    assert "192.168.60.0/24" in text and "9.9.9.9" in text  # staff exempt; known resolvers refused
    assert "8081" not in text  # the staff pages share the portal's port unless they have their own


def test_the_staff_pages_own_port_is_open_to_the_staff_networks_only(tmp_path: Path) -> None:
    text = ruleset(
        _config(
            tmp_path,
            "dashboard:\n  listen: 0.0.0.0:80\n  staff_listen: 0.0.0.0:8081\n"
            "router:\n  staff_networks: [192.168.60.0/24]\n",
        )
    )
    assert "ip saddr @staff_v4 tcp dport 8081 accept" in text
    assert 'iifname "eth1" tcp dport { 8080, 80 } accept' in text  # the LAN: proxy and portal only


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("router:\n  lan_interface: 'eth 1'\n", "router.lan_interface"),
        ("router:\n  staff_networks: [nonsense]\n", "router.staff_networks"),
        ("router:\n  wan: eth0\n", "wan"),
    ],
)
def test_a_wrong_router_section_is_refused_with_its_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"appliance.yaml:\d+: .*{message}"):
        _config(tmp_path, text)
