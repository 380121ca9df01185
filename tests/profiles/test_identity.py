"""Who is asking: a signed-in child's session, else the device, else the guest profile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from profiles.identity import (
    GUEST_IDENTITY,
    Child,
    Device,
    Devices,
    Session,
    SessionEnd,
    Sessions,
    Via,
    identify,
    normalise_mac,
)

NOW = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
AMINA = Child("c-7f3a", "Amina", "10-12")
DEVICES = Devices(
    [
        Device("library-pc-1", "under-10", mac="AA-BB-CC-00-00-01", managed=True),
        Device("library-pc-2", "13-17", network="10.0.0.12"),
        Device("quiet-room", "under-10", network="10.0.0.16/28"),
        Device("whole-centre", "guest", network="10.0.0.0/24"),
        Device("staff-laptop", "staff", network="fd00::5"),
    ]
)


def session(device: str, **kw: object) -> Session:
    values: dict[str, object] = {
        "child": AMINA,
        "device": device,
        "started": NOW - timedelta(minutes=30),
        "expires": NOW + timedelta(hours=3),
        "last_seen": NOW - timedelta(minutes=1),
    }
    return Session(**(values | kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ip", "mac", "profile", "via", "device"),
    [
        (
            "10.0.0.50",
            "aa:bb:cc:00:00:01",
            "under-10",
            Via.MAC,
            "library-pc-1",
        ),  # MAC first, any case or form
        ("10.0.0.12", "aabb.cc00.0001", "under-10", Via.MAC, "library-pc-1"),
        ("10.0.0.12", None, "13-17", Via.IP, "library-pc-2"),  # exact address
        ("10.0.0.20", None, "under-10", Via.IP, "quiet-room"),  # the narrowest network wins
        ("10.0.0.99", "11:22:33:44:55:66", "guest", Via.IP, "whole-centre"),
        ("fd00::5", None, "staff", Via.IP, "staff-laptop"),
        ("192.168.7.7", None, "guest", Via.GUEST, None),  # nobody knows it
        ("not-an-ip", "not-a-mac", "guest", Via.GUEST, None),
    ],
)
def test_devices(ip: str, mac: str | None, profile: str, via: Via, device: str | None) -> None:
    identity = identify(ip, mac, DEVICES, Sessions(), NOW)
    assert (identity.profile, identity.via) == (profile, via)
    assert (identity.device.name if identity.device else None) == device


def test_a_signed_in_child_uses_their_own_profile_on_a_shared_pc() -> None:
    sessions = Sessions([session("aa:bb:cc:00:00:01")])
    identity = identify("10.0.0.50", "AA:BB:CC:00:00:01", DEVICES, sessions, NOW)
    assert (identity.profile, identity.via, identity.child) == ("10-12", Via.SESSION, AMINA)
    assert identity.device is not None and identity.device.name == "library-pc-1" and identity.managed
    assert identity.subject == "child:c-7f3a"  # pseudonymous: never the display name


@pytest.mark.parametrize(
    ("ip", "mac", "via"),
    [
        ("10.0.0.50", "aa:bb:cc:00:00:07", Via.SESSION),  # the device she signed in on
        ("10.0.0.51", "aa:bb:cc:00:00:07", Via.IP),  # her device's MAC, copied by a device at another address
        ("10.0.0.50", "aa:bb:cc:00:00:08", Via.IP),  # her address with another MAC: not her device either
    ],
)
def test_a_session_holds_for_its_mac_at_its_address_only(ip: str, mac: str, via: Via) -> None:
    """Any device on the children's network can copy a MAC it has seen: a session (a child's, or staff's
    from a portal sign-in) is never taken over by a copy at another address."""
    sessions = Sessions([session("aa:bb:cc:00:00:07", address="10.0.0.50")])
    assert identify(ip, mac, DEVICES, sessions, NOW).via is via


def test_a_session_by_ip_where_the_mac_is_unknown() -> None:
    sessions = Sessions([session("10.0.0.99")])
    assert identify("10.0.0.99", None, DEVICES, sessions, NOW).via is Via.SESSION
    assert identify("10.0.0.98", None, DEVICES, sessions, NOW).via is Via.IP


@pytest.mark.parametrize(
    ("change", "end"),
    [
        ({"ended": NOW - timedelta(seconds=1)}, SessionEnd.LOGOUT),
        ({"expires": NOW}, SessionEnd.EXPIRED),  # closing time
        ({"last_seen": NOW - timedelta(minutes=20)}, SessionEnd.IDLE),
        ({"last_seen": NOW - timedelta(minutes=5), "idle": timedelta(minutes=5)}, SessionEnd.IDLE),
        ({}, None),
    ],
)
def test_sessions_end_at_logout_closing_time_or_when_idle(
    change: dict[str, object], end: SessionEnd | None
) -> None:
    ended = session("aa:bb:cc:00:00:01", **change)
    assert ended.end_reason(NOW) is end
    identity = identify("10.0.0.50", "aa:bb:cc:00:00:01", DEVICES, Sessions([ended]), NOW)
    assert identity.via is (Via.SESSION if end is None else Via.MAC)


def test_the_latest_sign_in_on_a_device_wins() -> None:
    other = Child("c-0001", "Ben", "13-17")
    older = session("10.0.0.99", started=NOW - timedelta(hours=2))
    newer = session("10.0.0.99", child=other)
    assert identify("10.0.0.99", None, DEVICES, Sessions([newer, older]), NOW).child == other


def test_nobody_known_is_the_guest() -> None:
    assert identify("10.9.9.9", None, Devices(), Sessions(), NOW) == GUEST_IDENTITY
    assert GUEST_IDENTITY.subject == "guest" and not GUEST_IDENTITY.managed


@pytest.mark.parametrize("mac", ["aa:bb:cc:dd:ee", "zz:bb:cc:dd:ee:ff", ""])
def test_bad_macs(mac: str) -> None:
    with pytest.raises(ValueError):
        normalise_mac(mac)


def test_a_device_with_a_bad_network_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'broken'"):
        Devices([Device("broken", "guest", network="10.0.0.300")])
