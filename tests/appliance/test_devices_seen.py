"""Devices seen on the network: the neighbour table and DHCP leases joined per MAC, and the ARP sweep
(run inside network namespaces made for the test, so nothing is sent on any real network)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.devices_seen import (
    SeenDevice,
    SweepError,
    arp_sweep,
    seen_devices,
    sweep_network,
    sweep_settings,
)

ARP = """IP address       HW type     Flags       HW address            Mask     Device
192.168.50.20    0x1         0x2         3c:22:fb:12:34:56     *        eth1
192.168.50.21    0x1         0x0         00:00:00:00:00:00     *        eth1
192.168.50.9     0x1         0x2         AA:BB:CC:00:00:09     *        eth1
"""

LEASES = """1767225600 3c:22:fb:12:34:56 192.168.50.20 amiras-ipad 01:3c:22:fb:12:34:56
1767225600 de:ad:be:ef:00:01 192.168.50.33 * *
not a lease line
"""


def test_leases_and_the_neighbour_table_are_joined_per_mac(tmp_path: Path) -> None:
    (tmp_path / "arp").write_text(ARP)
    (tmp_path / "leases").write_text(LEASES)
    seen = seen_devices(tmp_path / "leases", tmp_path / "arp")
    assert seen == [
        SeenDevice("aa:bb:cc:00:00:09", "192.168.50.9", "", "arp"),
        SeenDevice("3c:22:fb:12:34:56", "192.168.50.20", "amiras-ipad", "arp+dhcp"),
        SeenDevice("de:ad:be:ef:00:01", "192.168.50.33", "", "dhcp"),
    ]


def test_missing_sources_give_nothing(tmp_path: Path) -> None:
    assert seen_devices(None, tmp_path / "no-arp") == []
    assert seen_devices(tmp_path / "no-leases", tmp_path / "no-arp") == []


def test_the_sweep_is_off_unless_an_interface_and_network_are_given() -> None:
    assert sweep_settings({}) is None
    assert sweep_settings({"APPLIANCE_ARP_SWEEP_INTERFACE": "eth1"}) is None
    both = {"APPLIANCE_ARP_SWEEP_INTERFACE": "eth1", "APPLIANCE_ARP_SWEEP_NETWORK": "192.168.50.0/24"}
    assert sweep_settings(both) == ("eth1", "192.168.50.0/24")


@pytest.mark.parametrize(
    ("network", "words"),
    [("10.0.0.0/8", "too large"), ("fd00::/120", "IPv4"), ("the office", "not a network")],
)
def test_a_sweep_refuses_odd_networks_before_sending_anything(network: str, words: str) -> None:
    with pytest.raises(SweepError, match=words):
        sweep_network(network)
    with pytest.raises(SweepError, match=words):
        arp_sweep("lo", network, 0.1)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    """Two network namespaces joined by a veth pair: `sweeper` (10.213.77.1/29) and `peer`
    (10.213.77.2/29, MAC 02:00:5e:10:77:02), whose kernel answers ARP for its address."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("the ARP sweep test makes network namespaces: it needs root and iproute2")
    tag = uuid.uuid4().hex[:6]
    sweeper, peer = f"csa-sw-{tag}", f"csa-pe-{tag}"
    try:
        _ip("netns", "add", sweeper)
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot make a network namespace here: {e.stderr.strip()}")
    try:
        _ip("netns", "add", peer)
        _ip("-n", sweeper, "link", "add", "sweep0", "type", "veth", "peer", "name", "peer0", "netns", peer)
        _ip("-n", peer, "link", "set", "peer0", "address", "02:00:5e:10:77:02")
        _ip("-n", sweeper, "addr", "add", "10.213.77.1/29", "dev", "sweep0")
        _ip("-n", peer, "addr", "add", "10.213.77.2/29", "dev", "peer0")
        for ns, dev in ((sweeper, "sweep0"), (peer, "peer0")):
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield sweeper, peer
    finally:
        for ns in (sweeper, peer):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_an_arp_sweep_finds_the_peer_in_a_test_namespace(namespaces: tuple[str, str]) -> None:
    sweeper, _ = namespaces
    code = (
        "import json; from appliance.devices_seen import arp_sweep; "
        "print(json.dumps([d.__dict__ for d in arp_sweep('sweep0', '10.213.77.0/29', 1.5)]))"
    )
    done = subprocess.run(
        ["ip", "netns", "exec", sweeper, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == [{"mac": "02:00:5e:10:77:02", "ip": "10.213.77.2", "hostname": "", "source": "sweep"}]


def test_a_sweep_on_a_missing_interface_is_a_clear_error(namespaces: tuple[str, str]) -> None:
    sweeper, _ = namespaces
    code = (
        "from appliance.devices_seen import arp_sweep, SweepError\n"
        "try:\n    arp_sweep('nosuch0', '10.213.77.0/29', 0.5)\n"
        "except SweepError as e:\n    print('refused:', e)\n"
    )
    done = subprocess.run(
        ["ip", "netns", "exec", sweeper, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert "refused:" in done.stdout and "nosuch0" in done.stdout, done.stdout + done.stderr
