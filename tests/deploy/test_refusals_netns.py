"""The router's refusals counted per children's device, proven in network namespaces made here: a child
(two addresses: two devices as far as the gateway can tell) on the gateway's children's port `lan0`, a
staff PC on `stf0`, the gateway behind the real ruleset of appliance/router.py, and an "internet" host
with a known DNS-over-HTTPS resolver's address. The reader (appliance.refusals) runs the real nft inside
the gateway's namespace. Every namespace is removed afterwards, even when a test fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance.config import load_config
from appliance.refusals import RefusalsUnreadable, new_refusals, record_refusals, refused_tunnels
from appliance.router import ruleset
from appliance.store.schema import connect
from tests.deploy.test_router_netns import _CONNECT, _PING, _UDP, in_netns, sh, veth

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
    reason="needs root, nft (Debian's nftables) and ip: network namespaces and their rules",
)

CHILD, OTHER_CHILD, GW_LAN = "10.78.1.2", "10.78.1.3", "10.78.1.1"
STAFF_PC, GW_STAFF = "10.78.9.5", "10.78.9.1"
GW_WAN, NET, DOH_RESOLVER = "10.78.2.1", "10.78.2.2", "9.9.9.9"  # 9.9.9.9: on the refused list


@dataclass(frozen=True)
class Lab:
    child: str
    staff: str
    gw: str
    net: str
    rules: Path

    def run_in_gw(self, command: Sequence[str], **options: Any) -> subprocess.CompletedProcess[str]:
        """subprocess.run, in the gateway's namespace: how the reader is run there."""
        result: subprocess.CompletedProcess[str] = subprocess.run(
            ["ip", "netns", "exec", self.gw, *command], **options
        )
        return result

    def read(self, *kinds: str) -> dict[str, int]:
        return refused_tunnels(self.run_in_gw, kinds=kinds) if kinds else refused_tunnels(self.run_in_gw)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("refusals")
    config_path = folder / "appliance.yaml"
    config_path.write_text(
        f"data_dir: {folder}\ndns:\n  listen: ['0.0.0.0:5353']\n"
        "router:\n  lan_interface: lan0\n  wan_interface: wan0\n  staff_interface: stf0\n"
        "  staff_networks: [10.78.9.0/24]\n",
        encoding="utf-8",
    )
    tag = uuid.uuid4().hex[:6]
    built = Lab(f"rkid{tag}", f"rstf{tag}", f"rgw{tag}", f"rnet{tag}", folder / "rules.nft")
    built.rules.write_text(ruleset(load_config(config_path)), encoding="utf-8")
    namespaces = (built.child, built.staff, built.gw, built.net)
    try:
        for ns in namespaces:
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", netns=ns)
        veth(built.child, "c0", built.gw, "lan0")
        veth(built.staff, "c0", built.gw, "stf0")
        veth(built.gw, "wan0", built.net, "n0")
        for ns, dev, address in (
            (built.child, "c0", f"{CHILD}/24"),
            (built.child, "c0", f"{OTHER_CHILD}/24"),
            (built.staff, "c0", f"{STAFF_PC}/24"),
            (built.gw, "lan0", f"{GW_LAN}/24"),
            (built.gw, "stf0", f"{GW_STAFF}/24"),
            (built.gw, "wan0", f"{GW_WAN}/24"),
            (built.net, "n0", f"{NET}/24"),
            (built.net, "n0", f"{DOH_RESOLVER}/32"),
        ):
            sh("ip", "addr", "add", address, "dev", dev, netns=ns)
            sh("ip", "link", "set", dev, "up", netns=ns)
        sh("ip", "route", "add", "default", "via", GW_LAN, netns=built.child)
        sh("ip", "route", "add", "default", "via", GW_STAFF, netns=built.staff)
        sh("ip", "route", "add", "default", "via", GW_WAN, netns=built.net)
        sh("ip", "route", "add", "default", "via", NET, netns=built.gw)  # the Internet: the resolver too
        sh("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", netns=built.gw)
        # The kernel answers a host with at most ~6 quick refusals, then one a second: these tests refuse
        # more, and wait for each answer. (Counting does not depend on it: every refused packet counts.)
        sh("sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0", netns=built.gw)
        sh("nft", "-f", str(built.rules), netns=built.gw)
        yield built
    finally:
        for ns in namespaces:
            sh("ip", "netns", "del", ns, check=False)


def tcp(lab: Lab, host: str, port: int, source: str = CHILD, netns: str | None = None) -> str:
    """A TCP connection from `source`: "connected", "refused …" or the error's name."""
    code = _CONNECT.format(host=host, port=port).replace("settimeout(3)", "settimeout(1)")
    code = code.replace("s.settimeout(1)\n", f"s.settimeout(1)\ns.bind(({source!r}, 0))\n", 1)
    return in_netns(netns or lab.child, code)


def udp(lab: Lab, host: str, port: int, source: str = CHILD, netns: str | None = None) -> str:
    """One UDP datagram from `source` (and a wait for an answer): "refused" when the gateway rejects it."""
    code = _UDP.format(host=host, port=port, bind=f"s.bind(({source!r}, 0))").replace("(3)", "(1)")
    return in_netns(netns or lab.child, code)


def test_each_kind_of_refused_tunnel_is_counted_for_the_device_that_tried_it(lab: Lab) -> None:
    for _ in range(3):
        assert tcp(lab, NET, 853).startswith("refused")  # DNS over TLS: one SYN, refused
    for _ in range(2):
        assert udp(lab, NET, 853) == "refused"  # DNS over QUIC
    for _ in range(4):
        assert udp(lab, NET, 443) == "refused"  # QUIC
    # A known resolver's address is refused as administratively prohibited (no route to host: OSError).
    assert udp(lab, DOH_RESOLVER, 443) == "OSError"  # DoH over HTTP/3
    assert tcp(lab, DOH_RESOLVER, 5443).startswith("OSError")  # DNSCrypt's port
    assert lab.read("dot") == {CHILD: 5}
    assert lab.read("doh") == {CHILD: 2}
    assert lab.read("quic") == {CHILD: 4}
    # What the alerter counts as attempts to get round the filter: DoT and DoH, not Chrome's QUIC.
    assert lab.read() == {CHILD: 7}
    assert lab.read("dot", "doh", "quic") == {CHILD: 11}


def test_allowed_and_merely_dropped_traffic_and_the_staff_network_are_not_counted(lab: Lab) -> None:
    # From another child's address: web traffic (to the proxy's port, where nothing listens here), a small
    # ping (forwarded), a game's UDP (dropped, as everything undecided is: no refusal, no count).
    tcp(lab, NET, 80, source=OTHER_CHILD)
    tcp(lab, NET, 443, source=OTHER_CHILD)
    assert in_netns(lab.child, _PING.format(host=NET, times=1)) == "pong"
    assert udp(lab, NET, 5000, source=OTHER_CHILD) == "TimeoutError"
    # A staff PC is refused DoT and QUIC too, but is no child: not counted.
    assert tcp(lab, NET, 853, source=STAFF_PC, netns=lab.staff).startswith("refused")
    assert udp(lab, NET, 443, source=STAFF_PC, netns=lab.staff) == "refused"
    counted = lab.read("dot", "doh", "quic")
    assert OTHER_CHILD not in counted and STAFF_PC not in counted


def test_new_refusals_are_those_since_the_last_reading_even_after_the_counts_were_dropped(lab: Lab) -> None:
    first = lab.read("dot")
    assert tcp(lab, NET, 853, source=OTHER_CHILD).startswith("refused")
    assert tcp(lab, NET, 853).startswith("refused")
    assert tcp(lab, NET, 853).startswith("refused")
    second = lab.read("dot")
    assert new_refusals(first, second) == {CHILD: 2, OTHER_CHILD: 1}
    assert new_refusals(second, lab.read("dot")) == {}  # nothing since
    # The rules loaded again (after a change to appliance.yaml): the kernel's counts start again from
    # nothing, lower than before; the refusal after it is still one new refusal.
    sh("nft", "-f", str(lab.rules), netns=lab.gw)
    assert lab.read("dot") == {}
    assert tcp(lab, NET, 853).startswith("refused")
    third = lab.read("dot")
    assert third == {CHILD: 1} and new_refusals(second, third) == {CHILD: 1}


def test_each_reading_records_only_the_refusals_new_since_the_last_into_the_store(
    lab: Lab, tmp_path: Path
) -> None:
    """`appliance router refusals` (on its timer) adds what is new since its previous reading to the store,
    where the alerter finds it: a second reading with nothing since adds nothing."""
    db = connect(tmp_path / "events.sqlite")
    record_refusals(db, 1.0, lab.run_in_gw)  # whatever earlier tests left: the baseline
    assert tcp(lab, NET, 853).startswith("refused")
    assert tcp(lab, NET, 853, source=OTHER_CHILD).startswith("refused")
    assert record_refusals(db, 2.0, lab.run_in_gw) == {CHILD: 1, OTHER_CHILD: 1}
    assert record_refusals(db, 3.0, lab.run_in_gw) == {}
    rows = db.execute("SELECT ts, client, count FROM refusals WHERE ts > 1 ORDER BY client").fetchall()
    assert rows == sorted([(2.0, CHILD, 1), (2.0, OTHER_CHILD, 1)], key=lambda r: r[1])


def test_a_full_count_still_refuses(lab: Lab) -> None:
    """Counting never opens anything: with the set full (4,096 addresses), a new device's QUIC is refused
    all the same, only not counted."""
    sh("nft", "flush set inet appliance refused_quic_v4", netns=lab.gw)
    others = ", ".join(f"10.99.{n // 256}.{n % 256}" for n in range(4096))
    sh("nft", f"add element inet appliance refused_quic_v4 {{ {others} }}", netns=lab.gw)
    try:
        assert udp(lab, NET, 443, source=OTHER_CHILD) == "refused"
        assert OTHER_CHILD not in lab.read("quic") and len(lab.read("quic")) == 4096
    finally:
        sh("nft", "flush set inet appliance refused_quic_v4", netns=lab.gw)


@pytest.fixture
def bare_namespace() -> Iterator[str]:
    ns = f"rbare{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", ns)
    try:
        yield ns
    finally:
        sh("ip", "netns", "del", ns, check=False)


def _in(ns: str, *prefix: str) -> Any:
    def run(command: Sequence[str], **options: Any) -> subprocess.CompletedProcess[str]:
        result: subprocess.CompletedProcess[str] = subprocess.run(
            ["ip", "netns", "exec", ns, *prefix, *command], **options
        )
        return result

    return run


def test_without_the_router_rules_there_is_nothing_to_count(bare_namespace: str) -> None:
    """Not router mode: the appliance's table is not loaded, and the reading is empty, not an error."""
    assert refused_tunnels(_in(bare_namespace)) == {}


def test_rules_loaded_before_the_counts_existed_are_said_to_be_reloaded(bare_namespace: str) -> None:
    sh("nft", "add", "table", "inet", "appliance", netns=bare_namespace)
    with pytest.raises(RefusalsUnreadable, match=r"no set refused_dot_v4.*load them again"):
        refused_tunnels(_in(bare_namespace))


def test_a_reader_without_the_right_to_list_the_rules_is_told(lab: Lab) -> None:
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux) to drop the capability")
    no_admin = ("setpriv", "--inh-caps=-all", "--bounding-set=-net_admin", "--")
    with pytest.raises(RefusalsUnreadable, match=r"failed: .*Operation not permitted"):
        refused_tunnels(_in(lab.gw, *no_admin))
