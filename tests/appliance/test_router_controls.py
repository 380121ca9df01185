"""What the router's control sets hold (appliance.router_controls), for the devices the gateway has seen
on the children's network under a real policy: who is paused by each kind of pause, who may make video
calls, and the sets written by the real nft (in a network namespace made here). What the sets do to
packets is proven in tests/deploy/test_router_controls_netns.py."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from appliance.config import load_config
from appliance.config.policy import PolicySettings
from appliance.in_force.bindings import Bound
from appliance.in_force.live import Live, load_live
from appliance.lists import compile_lists
from appliance.policy_files import read_policy_files
from appliance.router import ruleset
from appliance.router_controls import (
    ControlSets,
    ControlsNotApplied,
    apply_sets,
    calls_allowed,
    children_networks,
    control_sets,
)
from profiles.controls import NO_CONTROLS, Controls, Pause, Scope
from profiles.identity import Child, Session, Sessions

NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
NETWORK = ipaddress.ip_network("10.80.1.0/24")
KID, CALLER, SIGNED, STAFF_SIGNED, GUEST = "10.80.1.2", "10.80.1.3", "10.80.1.4", "10.80.1.5", "10.80.1.6"
OUTSIDE = "10.80.2.7"  # on the WAN side: never the router's to control
KID_MAC, CALLER_MAC = "02:00:00:80:01:02", "02:00:00:80:01:03"
SIGNED_MAC, STAFF_MAC = "02:00:00:80:01:04", "02:00:00:80:01:05"
SEEN = {
    KID: KID_MAC,
    CALLER: CALLER_MAC,
    SIGNED: SIGNED_MAC,  # a shared PC, a child signed in at the portal
    STAFF_SIGNED: STAFF_MAC,  # a shared PC, staff signed in at the portal
    GUEST: None,  # an address whose MAC the gateway does not know
    OUTSIDE: "02:00:00:80:02:07",
}

_PROFILES = """profiles:
  guest:
    description: Guests
    blocked_categories: [video-calls]
  staff: {description: Staff, bypass: true}
  no-calls:
    description: Children's phones, no video calls
    blocked_categories: [video-calls]
  calls:
    description: The video-call corner
  youngest:
    description: Allowlist only
    mode: allowlist-only
    allow: [bbc.co.uk]
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Live:
    folder = tmp_path_factory.mktemp("router-controls")
    shipped = resources.files("appliance") / "defaults"
    text = (shipped / "appliance.yaml").read_text(encoding="utf-8")
    text = text.replace("path: lists/", f"path: {shipped / 'lists'}/").split("\npolicy:")[0]
    (folder / "profiles.yaml").write_text(_PROFILES, encoding="utf-8")
    config_path = folder / "appliance.yaml"
    config_path.write_text(
        f"""{text}
data_dir: {folder / "var"}
devices:
  - {{name: kid-phone, mac: "{KID_MAC}", profile: no-calls}}
  - {{name: call-pc, mac: "{CALLER_MAC}", profile: calls}}
  - {{name: shared-pc, mac: "{SIGNED_MAC}", profile: youngest}}
  - {{name: shared-pc-2, mac: "{STAFF_MAC}", profile: youngest}}
policy:
  timezone: Europe/London
  profiles: {folder / "profiles.yaml"}
router:
  lan_interface: lan0
  wan_interface: wan0
""",
        encoding="utf-8",
    )
    compile_lists(load_config(config_path), now=datetime.now(UTC))
    loaded = load_live(config_path)
    day = datetime.now(UTC)  # `Live.identify` reads the clock: sessions open around now

    def session(child: Child, mac: str, address: str) -> Session:
        return Session(child, mac, day - timedelta(hours=1), day + timedelta(hours=3), day, address=address)

    amira = Child("c1", "Amira", "calls")
    sam = Child("sam", "sam", "staff", staff=True)
    loaded.bind(
        Bound(Sessions([session(amira, SIGNED_MAC, SIGNED), session(sam, STAFF_MAC, STAFF_SIGNED)]), ())
    )
    return loaded


def _pause(scope: Scope, target: str = "", *, minutes: int | None = None, ago: int = 5) -> Pause:
    since = NOW - timedelta(minutes=ago)
    until = None if minutes is None else since + timedelta(minutes=minutes)
    return Pause(id=7, scope=scope, target=target, since=since, until=until, by="sam")


def _paused(live: Live, *pauses: Pause) -> tuple[str, ...]:
    return control_sets(live, Controls(pauses=pauses), SEEN, [NETWORK], NOW).paused_v4


def test_each_kind_of_pause_covers_the_devices_it_names(live: Live) -> None:
    assert _paused(live) == ()
    assert _paused(live, _pause(Scope.DEVICE, KID_MAC)) == (KID,)  # the device key: its MAC
    assert _paused(live, _pause(Scope.DEVICE, GUEST)) == (GUEST,)  # no MAC known: its address
    assert _paused(live, _pause(Scope.CHILD, "c1")) == (SIGNED,)  # where Amira is signed in
    assert _paused(live, _pause(Scope.PROFILE, "no-calls")) == (KID,)
    assert _paused(live, _pause(Scope.PROFILE, "calls")) == (CALLER, SIGNED)  # Amira's profile too
    assert _paused(live, _pause(Scope.DEVICE, KID_MAC), _pause(Scope.CHILD, "c1")) == (KID, SIGNED)
    assert _paused(live, _pause(Scope.DEVICE, "02:00:00:80:02:07")) == ()  # not the children's network


def test_a_centre_pause_is_the_whole_childrens_network_but_staff_signed_in(live: Live) -> None:
    paused = [ipaddress.ip_network(n) for n in _paused(live, _pause(Scope.CENTRE))]
    covered = {str(a) for n in paused for a in n}
    assert covered == {str(a) for a in NETWORK} - {STAFF_SIGNED}
    assert len(paused) == 8  # intervals: the /24 less one address


def test_a_pause_is_over_when_its_time_is_up(live: Live) -> None:
    assert _paused(live, _pause(Scope.DEVICE, KID_MAC, minutes=15, ago=14)) == (KID,)
    assert _paused(live, _pause(Scope.DEVICE, KID_MAC, minutes=15, ago=15)) == ()
    assert _paused(live, _pause(Scope.CENTRE, minutes=15, ago=15)) == ()
    assert _paused(live, _pause(Scope.DEVICE, KID_MAC, ago=-1)) == ()  # not begun


def test_calls_are_on_only_where_the_profile_does_not_block_video_calls(live: Live) -> None:
    sets = control_sets(live, NO_CONTROLS, SEEN, [NETWORK], NOW)
    # The call corner (calls), staff signed in at the portal (a bypass profile); not the kid's phone
    # (video-calls blocked), the guest (the same), nor Amira's PC before she signed in (allowlist-only):
    # signed in, her profile's.
    assert sets.calls_on_v4 == (CALLER, SIGNED, STAFF_SIGNED)


def test_the_shipped_profiles_switch_calls_off_for_guests_and_the_younger_children(live: Live) -> None:
    shipped = read_policy_files(PolicySettings(timezone="Europe/London")).bind(live.policy.index)
    calls = {name: calls_allowed(shipped, name) for name in shipped.profiles}
    # Blocked for guests, under-10 and 10-12; flagged (high) for 13-17, which allows; staff bypass.
    assert {name for name, on in calls.items() if not on} >= {"guest", "under-10", "10-12"}
    assert calls["13-17"] and calls["staff"]


_ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wan0\t00000000\t0102500A\t0003\t0\t0\t0\t00000000\t0\t0\t0
lan0\t0001500A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
lan0\t0000A8C0\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
lan0\t0000000A\t0101500A\t0003\t0\t0\t0\t000000FF\t0\t0\t0
wan0\t0002500A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def test_the_childrens_networks_are_the_routes_on_their_interface_without_a_gateway(tmp_path: Path) -> None:
    routes = tmp_path / "route"
    routes.write_text(_ROUTES, encoding="ascii")  # as the kernel writes /proc/net/route
    assert children_networks("lan0", routes) == [NETWORK, ipaddress.ip_network("192.168.0.0/16")]
    assert children_networks("eth9", routes) == []
    assert children_networks("lan0", tmp_path / "missing") == []


@pytest.fixture
def router_namespace(tmp_path: Path) -> Iterator[str]:
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"):
        pytest.skip("needs root, nft (Debian's nftables) and ip: a network namespace and its rules")
    ns = f"rctl{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _in(ns: str) -> Any:
    def run(command: Sequence[str], **options: Any) -> subprocess.CompletedProcess[str]:
        result: subprocess.CompletedProcess[str] = subprocess.run(
            ["ip", "netns", "exec", ns, *command], **options
        )
        return result

    return run


def _listed(ns: str, name: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "set", "inet", "appliance", name],
        capture_output=True,
        text=True,
        check=True,
    )
    return " ".join(done.stdout.split())


def test_the_sets_are_replaced_whole_in_the_loaded_rules(
    live: Live, router_namespace: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.nft"
    rules.write_text(ruleset(live.config), encoding="utf-8")
    subprocess.run(["ip", "netns", "exec", router_namespace, "nft", "-f", str(rules)], check=True)
    run = _in(router_namespace)
    apply_sets(ControlSets(paused_v4=(KID, "10.80.1.128/25"), calls_on_v4=(CALLER, SIGNED)), run)
    assert "elements = { 10.80.1.2, 10.80.1.128/25 }" in _listed(router_namespace, "paused_v4")
    assert "elements = { 10.80.1.3, 10.80.1.4 }" in _listed(router_namespace, "calls_on_v4")
    apply_sets(ControlSets(calls_on_v4=(CALLER,)), run)  # the pauses over, Amira signed out
    assert "elements" not in _listed(router_namespace, "paused_v4")
    assert "elements = { 10.80.1.3 }" in _listed(router_namespace, "calls_on_v4")


def test_without_the_routers_rules_the_sets_are_refused_with_what_to_do(router_namespace: str) -> None:
    with pytest.raises(ControlsNotApplied, match=r"rules are not loaded.*appliance router rules"):
        apply_sets(ControlSets(paused_v4=(KID,)), _in(router_namespace))
