"""Staff's controls at the router, proven in network namespaces made here: three children's devices on the
gateway's children's switch (a bridge, `lan0`), the gateway behind the real ruleset of appliance/router.py
running the real controller (`appliance router controls`, following a real store), and an "internet" host
that answers UDP and TCP echoes and pings. Staff's pauses are written to the store as the dashboard writes
them (appliance.store.controls); what the devices can still reach shows what the router did. Every
namespace and process is removed afterwards, even when a test fails.

The devices, each named in appliance.yaml by its address and each with `direct_ports` (the only traffic of
the children's network the router forwards past the proxy, with small pings): the kid's phone (`no-calls`,
whose profile blocks video-calls), the call-corner PC (`calls`, which does not) and a second phone
(`no-calls`), which is never paused by name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.lists import compile_lists
from appliance.router import ruleset
from appliance.store import controls as store_controls
from appliance.store.schema import connect, transaction
from profiles.controls import Scope
from tests.deploy.test_router_netns import _PING, in_netns, sh, veth

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
    reason="needs root, nft (Debian's nftables) and ip: network namespaces and their rules",
)

KID, CALLER, OTHER, GW_LAN = "10.79.1.2", "10.79.1.3", "10.79.1.4", "10.79.1.1"
NEWCOMER = "10.79.1.9"  # a guest's phone, not named, that has not spoken yet
GW_WAN, NET = "10.79.2.1", "10.79.2.2"
KID_MAC, CALLER_MAC, OTHER_MAC = "02:00:00:79:01:02", "02:00:00:79:01:03", "02:00:00:79:01:04"
NEWCOMER_MAC = "02:00:00:79:01:09"
GAME, STUN = 5000, 3478  # a port every profile here opens directly; the STUN/TURN port

_PROFILES = """profiles:
  guest:
    description: Guests
    blocked_categories: [video-calls]
  staff: {description: Staff, bypass: true}
  no-calls:
    description: Children's phones, no video calls
    blocked_categories: [video-calls]
    direct_ports: [udp/3478, udp/5000, tcp/3478, tcp/5000]
  calls:
    description: The video-call corner
    direct_ports: [udp/3478, udp/5000, tcp/3478, tcp/5000]
"""

# The internet host: echoes every UDP datagram and accepts TCP on both ports.
_ECHO = f"""
import socket, threading
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(100)
        s.sendto(data, peer)
def tcp(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(50)
    while True:
        s.accept()[0].close()
for port in ({GAME}, {STUN}):
    threading.Thread(target=udp, args=(port,), daemon=True).start()
    threading.Thread(target=tcp, args=(port,), daemon=True).start()
threading.Event().wait()
"""

_UDP = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout({wait})
s.bind(({source!r}, 0))
s.connect(({host!r}, {port}))
s.send(b"hello")
try:
    s.recv(100)
    print("answered")
except OSError as e:
    print(type(e).__name__)
"""

_TCP = """
import socket
s = socket.socket()
s.settimeout({wait})
s.bind(({source!r}, 0))
try:
    s.connect(({host!r}, {port}))
    print("connected")
except OSError as e:
    print(type(e).__name__)
"""


@dataclass
class Lab:
    tag: str
    gw: str
    net: str
    db_path: Path
    processes: list[subprocess.Popen[bytes]]
    log: Path
    rules: Path
    profiles: Path

    def ns(self, source: str) -> str:
        """The namespace of the device at `source`."""
        return {KID: "kid", CALLER: "call", OTHER: "oth", NEWCOMER: "new"}[source] + self.tag

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(f"{name}{self.tag}" for name in ("kid", "call", "oth", "new"))

    def udp(self, source: str, port: int, wait: float = 0.5) -> str:
        return in_netns(self.ns(source), _UDP.format(source=source, host=NET, port=port, wait=wait))

    def tcp(self, source: str, port: int, wait: float = 0.5) -> str:
        return in_netns(self.ns(source), _TCP.format(source=source, host=NET, port=port, wait=wait))

    def ping(self, source: str) -> str:
        return in_netns(
            self.ns(source), _PING.format(host=NET, times=1).replace("settimeout(3)", "settimeout(0.5)")
        )

    def sets(self) -> str:
        return sh("nft", "list", "table", "inet", "appliance", netns=self.gw).stdout


def _until(condition: Callable[[], bool], within: float) -> float:
    """Seconds until `condition` held (checked as fast as it answers); AssertionError after `within`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within} s")
    return time.monotonic() - start


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("controls")
    shipped = resources.files("appliance") / "defaults"
    text = (shipped / "appliance.yaml").read_text(encoding="utf-8")
    text = text.replace("path: lists/", f"path: {shipped / 'lists'}/").split("\npolicy:")[0]
    (folder / "profiles.yaml").write_text(_PROFILES, encoding="utf-8")
    config_path = folder / "appliance.yaml"
    config_path.write_text(
        f"""{text}
data_dir: {folder / "var"}
devices:
  - {{name: kid-phone, network: {KID}, profile: no-calls}}
  - {{name: call-pc, network: {CALLER}, profile: calls}}
  - {{name: other-phone, network: {OTHER}, profile: no-calls}}
policy:
  timezone: Europe/London
  profiles: {folder / "profiles.yaml"}
dns:
  listen: ["0.0.0.0:5353"]
router:
  lan_interface: lan0
  wan_interface: wan0
""",
        encoding="utf-8",
    )
    config = load_config(config_path)
    compile_lists(config, now=datetime.now(UTC))
    tag = uuid.uuid4().hex[:6]
    built = Lab(
        tag=tag,
        gw=f"cgw{tag}",
        net=f"cnet{tag}",
        db_path=config.events_path,
        processes=[],
        log=folder / "controls.log",
        rules=folder / "rules.nft",
        profiles=folder / "profiles.yaml",
    )
    namespaces = (*built.devices, built.gw, built.net)
    try:
        for ns in namespaces:
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", netns=ns)
        sh("ip", "link", "add", "lan0", "type", "bridge", netns=built.gw)
        devices = ((KID, KID_MAC), (CALLER, CALLER_MAC), (OTHER, OTHER_MAC), (NEWCOMER, NEWCOMER_MAC))
        for n, (address, mac) in enumerate(devices):
            ns = built.ns(address)
            veth(ns, "c0", built.gw, f"p{n}", mac)
            sh("ip", "link", "set", f"p{n}", "master", "lan0", netns=built.gw)
            sh("ip", "link", "set", f"p{n}", "up", netns=built.gw)
            sh("ip", "addr", "add", f"{address}/24", "dev", "c0", netns=ns)
            sh("ip", "link", "set", "c0", "up", netns=ns)
            sh("ip", "route", "add", "default", "via", GW_LAN, netns=ns)
        veth(built.gw, "wan0", built.net, "n0")
        for ns, dev, address in (
            (built.gw, "lan0", f"{GW_LAN}/24"),
            (built.gw, "wan0", f"{GW_WAN}/24"),
            (built.net, "n0", f"{NET}/24"),
        ):
            sh("ip", "addr", "add", address, "dev", dev, netns=ns)
            sh("ip", "link", "set", dev, "up", netns=ns)
        sh("ip", "route", "add", "default", "via", GW_WAN, netns=built.net)
        sh("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", netns=built.gw)
        built.rules.write_text(ruleset(config), encoding="utf-8")
        sh("nft", "-f", str(built.rules), netns=built.gw)
        with open(folder / "echo.log", "wb") as out:
            built.processes.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", built.net, sys.executable, "-c", _ECHO], stdout=out, stderr=out
                )
            )
        # The gateway has met the three devices (as it does each device that asks it anything).
        for address in (KID, CALLER, OTHER):
            assert in_netns(built.gw, _PING.format(host=address, times=1)) == "pong"
        connect(config.events_path).close()  # the store, as the dashboard makes it
        with open(built.log, "wb") as out:
            built.processes.append(
                subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        built.gw,
                        sys.executable,
                        "-m",
                        "appliance.cli",
                        "router",
                        "controls",
                        "--config",
                        str(config_path),
                    ],
                    stdout=out,
                    stderr=out,
                )
            )
        # Ready once it has said whose calls may go out.
        _until(lambda: "calls_on_v4 {\n\t\ttype ipv4_addr\n\t\telements" in built.sets(), within=30)
        _until(lambda: built.udp(KID, GAME) == "answered", within=10)
        yield built
    finally:
        for process in built.processes:
            process.terminate()
        for process in built.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for ns in namespaces:
            sh("ip", "netns", "del", ns, check=False)


def _pause(lab: Lab, scope: Scope, target: str, label: str) -> int:
    db = connect(lab.db_path)
    try:
        return store_controls.pause(
            db, scope=scope, target=target, label=label, minutes=None, by="sam", reason="", now=time.time()
        )
    finally:
        db.close()


def _resume(lab: Lab, pause_id: int) -> None:
    db = connect(lab.db_path)
    try:
        assert store_controls.resume(db, pause_id, by="sam", now=time.time())
    finally:
        db.close()


def test_a_paused_device_is_cut_off_within_a_second_and_comes_back_when_resumed(lab: Lab) -> None:
    assert lab.udp(KID, GAME) == "answered"
    assert lab.ping(KID) == "pong"
    pause_id = _pause(lab, Scope.DEVICE, KID_MAC, "kid-phone")
    # Dropped within a second of the pause in the store (each try waits a tenth for its echo).
    _until(lambda: lab.udp(KID, GAME, wait=0.1) == "TimeoutError", within=1.0)
    assert lab.tcp(KID, GAME) == "TimeoutError"  # nothing forwarded, whatever the port
    assert lab.ping(KID) == "TimeoutError"
    assert lab.udp(OTHER, GAME) == "answered"  # the other phone is not paused
    _resume(lab, pause_id)
    _until(lambda: lab.udp(KID, GAME, wait=0.1) == "answered", within=1.0)
    assert lab.tcp(KID, GAME) == "connected"


def test_a_pause_ends_by_itself_when_its_time_is_up(lab: Lab) -> None:
    pause_id = _pause(lab, Scope.DEVICE, KID_MAC, "kid-phone")
    _until(lambda: lab.udp(KID, GAME, wait=0.1) == "TimeoutError", within=1.0)
    # Its time runs out in a moment (as a 15-minute pause's does at the quarter hour).
    db = connect(lab.db_path)
    try:
        ends = time.time() + 1.0
        with transaction(db):
            db.execute("UPDATE pauses SET until = ? WHERE id = ?", (ends, pause_id))
            store_controls.bump_controls(db)
    finally:
        db.close()
    _until(lambda: time.time() > ends, within=2.0)
    _until(lambda: lab.udp(KID, GAME, wait=0.1) == "answered", within=1.0)


def test_rules_loaded_again_during_a_pause_are_paused_again_within_seconds(lab: Lab) -> None:
    """Loading the rules (install.sh, nftables' restart) starts the sets empty; the controller writes them
    again every two seconds even when nothing changed."""
    pause_id = _pause(lab, Scope.DEVICE, KID_MAC, "kid-phone")
    _until(lambda: lab.udp(KID, GAME, wait=0.1) == "TimeoutError", within=1.0)
    sh("nft", "-f", str(lab.rules), netns=lab.gw)  # the sets empty: the kid's phone through again
    _until(lambda: lab.udp(KID, GAME, wait=0.1) == "TimeoutError", within=3.0)  # written every 2 s
    _resume(lab, pause_id)
    _until(lambda: lab.udp(KID, GAME, wait=0.1) == "answered", within=1.0)


def test_a_centre_pause_cuts_off_the_whole_childrens_network_even_devices_not_seen_yet(lab: Lab) -> None:
    pause_id = _pause(lab, Scope.CENTRE, "", "the centre")
    _until(lambda: lab.udp(KID, GAME, wait=0.1) == "TimeoutError", within=1.0)
    assert lab.udp(CALLER, GAME) == "TimeoutError" and lab.udp(OTHER, GAME) == "TimeoutError"
    # A guest's phone the gateway has never met: paused from its first packet (its small pings, all a
    # guest may send past the proxy, go nowhere).
    assert lab.ping(NEWCOMER) == "TimeoutError"
    _resume(lab, pause_id)
    _until(lambda: lab.udp(KID, GAME, wait=0.1) == "answered", within=1.0)
    assert lab.ping(NEWCOMER) == "pong"


def test_stun_is_dropped_for_a_device_whose_profile_blocks_video_calls_and_passes_for_one_allowing_them(
    lab: Lab,
) -> None:
    # The kid's phone (video calls blocked): its game's port passes, STUN/TURN does not, UDP nor TCP.
    assert lab.udp(KID, GAME) == "answered"
    assert lab.udp(KID, STUN) == "TimeoutError"
    assert lab.tcp(KID, GAME) == "connected"
    assert lab.tcp(KID, STUN) == "TimeoutError"
    # The call corner's PC (calls allowed): both.
    assert lab.udp(CALLER, STUN) == "answered"
    assert lab.tcp(CALLER, STUN) == "connected"
    assert lab.udp(CALLER, GAME) == "answered"


def test_a_profile_saved_to_allow_video_calls_opens_stun_within_a_second(lab: Lab) -> None:
    """The controller follows the policy files as the DNS filter does: a profile edited (from the
    dashboard's profile form, or by hand) is in force at the router within a second."""
    before = lab.profiles.read_text(encoding="utf-8")
    blocked = "    description: Children's phones, no video calls\n    blocked_categories: [video-calls]\n"
    assert blocked in before and lab.udp(KID, STUN) == "TimeoutError"
    try:
        lab.profiles.write_text(
            before.replace(blocked, "    description: Children's phones\n"), encoding="utf-8"
        )
        _until(lambda: lab.udp(KID, STUN, wait=0.1) == "answered", within=1.5)
    finally:
        lab.profiles.write_text(before, encoding="utf-8")
    _until(lambda: lab.udp(KID, STUN, wait=0.1) == "TimeoutError", within=1.5)
