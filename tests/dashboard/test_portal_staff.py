"""Staff on the children's network, as HTTP conversations: the staff profile on a device comes from a staff
sign-in at the portal (name and password, throttled like the staff sign-in, audited, ended like a child's
session), never from a MAC or an address a child's device could claim; and the password is only taken
over HTTPS (or by a dashboard on loopback alone)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from appliance.store import audit, people
from appliance.store.schema import MIGRATIONS, connect
from appliance.store.staff import Role, StaffUser
from dashboard import create_app
from dashboard.database import identity_of
from profiles.identity import Via
from tests.dashboard.conftest import CHILD_IP, PASSWORD, Browser, add_child, csrf_of


def _staff_sign_in(b: Browser, username: str = "staff", password: str = PASSWORD) -> Any:
    b.get("/portal/staff")
    return b.post("/portal/staff/signin", {"username": username, "password": password})


def _identity(app: Any, address: str = CHILD_IP) -> Any:
    with app.test_request_context("/"):
        return identity_of(address)


def test_staff_sign_in_at_the_portal_makes_the_device_staff_until_they_sign_out(
    app: Any, browse: Callable[..., Browser], accounts: dict[Role, StaffUser], db: Any
) -> None:
    b = browse(CHILD_IP)
    assert _identity(app).profile == "guest"
    page = b.get("/portal").get_data(as_text=True)
    assert 'href="/portal/staff"' in page  # the way in, from the children's sign-in page
    assert _staff_sign_in(b).status_code == 302
    page = b.get("/portal").get_data(as_text=True)
    assert "You are signed in as staff (staff)" in page
    (session,) = people.open_sessions(db, time.time())
    assert (session.staff, session.profile, session.device) == (accounts[Role.STAFF].id, "staff", CHILD_IP)
    found = _identity(app)
    assert (found.profile, found.via, found.subject) == ("staff", Via.SESSION, "staff:staff")
    (entry,) = audit.entries(db, username="staff")
    assert (entry.action, entry.subject) == ("portal-sign-in", f"device:{CHILD_IP}")
    # Signing out ends it, as a child's does; audited too.
    assert b.post("/portal/signout", {}).status_code == 302
    assert people.open_sessions(db, time.time()) == [] and _identity(app).profile == "guest"
    assert [e.action for e in audit.entries(db, username="staff")] == ["portal-sign-out", "portal-sign-in"]


def test_a_staff_session_ends_like_a_childs_and_with_the_account(
    app: Any, config: Any, browse: Callable[..., Browser], accounts: dict[Role, StaffUser], db: Any
) -> None:
    # At midday: a session lasts until closing time, and 21 minutes on must not reach it whatever the
    # hour the suite runs at.
    t = datetime.now(ZoneInfo(config.policy.timezone)).replace(hour=12, minute=0).timestamp()
    app.config["NOW"] = t
    assert _staff_sign_in(browse(CHILD_IP), "lead").status_code == 302
    (session,) = people.open_sessions(db, t)
    # Idle: unused for the portal's idle time, it is over (the event writers move last_seen on while the
    # device is in use, keyed by the session's `child`, staff.<id> here).
    assert people.open_sessions(db, t + 21 * 60) == []
    db.execute("UPDATE sessions SET last_seen = ? WHERE child = ?", (t + 15 * 60, session.child))
    assert len(people.open_sessions(db, t + 21 * 60)) == 1
    # A disabled account's sign-in is over at once.
    admin = browse(as_user="admin")
    admin.get("/staff")
    lead = accounts[Role.LEAD]
    assert admin.post("/staff", {"id": str(lead.id), "role": "lead", "disabled": "1"}).status_code == 302
    assert people.open_sessions(db, t) == []
    # A child signing in on the device replaces a member of staff's session (one sign-in a device).
    amira = add_child(db, "Amira")
    b = browse("127.0.0.40")
    assert _staff_sign_in(b).status_code == 302
    b.get("/portal/signout")  # the welcome page, then the children's form once signed out
    b.post("/portal/signout", {})
    b.get("/portal")
    assert b.post("/portal/signin", {"name": "Amira", "pin": "4826", "accept": "yes"}).status_code == 302
    assert _staff_sign_in(browse("127.0.0.41")).status_code == 302
    assert {(s.child, s.device) for s in people.open_sessions(db, t)} == {
        (amira.id, "127.0.0.40"),
        (people.staff_key(accounts[Role.STAFF].id), "127.0.0.41"),
    }
    c = browse("127.0.0.41")
    c.get("/portal")
    c.post("/portal/signin", {"name": "Amira", "pin": "4826", "accept": "yes"})
    assert {(s.child, s.device) for s in people.open_sessions(db, t)} == {(amira.id, "127.0.0.41")}


def test_wrong_staff_passwords_are_throttled_and_audited(
    browse: Callable[..., Browser], accounts: dict[Role, StaffUser], db: Any
) -> None:
    b = browse(CHILD_IP)
    for _ in range(5):
        refused = _staff_sign_in(b, "staff", "not the password")
        assert refused.status_code == 401 and "do not match" in refused.get_data(as_text=True)
    locked = _staff_sign_in(b, "staff", PASSWORD)  # even the right one, for a while
    assert locked.status_code == 401 and "Too many attempts" in locked.get_data(as_text=True)
    assert people.open_sessions(db, time.time()) == []
    refusals = [e for e in audit.entries(db, username="staff") if e.action == "portal-sign-in-refused"]
    assert len(refusals) == 6 and refusals[0].subject == f"device:{CHILD_IP}"


def test_the_staff_password_is_only_taken_over_https_off_loopback(
    make_config: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any
) -> None:
    config = make_config(
        "dashboard:\n  listen: 0.0.0.0:80\n  staff_listen: 0.0.0.0:8081\n  portal_tls_listen: 0.0.0.0:443\n"
        "  admin_networks: [192.168.60.0/24]\n"
    )
    client = create_app(config, {"TESTING": True}).test_client()
    plain = client.get(
        "/portal/staff", base_url="http://192.168.50.1", environ_base={"REMOTE_ADDR": CHILD_IP}
    )
    text = plain.get_data(as_text=True)
    assert 'name="password"' not in text and 'href="https://192.168.50.1/portal/staff"' in text
    plain_site = {"base_url": "http://192.168.50.1", "environ_base": {"REMOTE_ADDR": CHILD_IP}}
    token = csrf_of(client.get("/portal", **plain_site).get_data(as_text=True))
    form = {"csrf_token": token, "username": "staff", "password": PASSWORD}
    posted = client.post("/portal/staff/signin", data=form, **plain_site)
    assert posted.status_code == 403 and "secure connection" in posted.get_data(as_text=True)
    secure = client.get(
        "/portal/staff", base_url="https://192.168.50.1", environ_base={"REMOTE_ADDR": CHILD_IP}
    )
    assert 'name="password"' in secure.get_data(as_text=True)
    assert people.open_sessions(db, time.time()) == []


def test_a_device_is_never_named_staff_by_its_mac(
    browse: Callable[..., Browser], accounts: dict[Role, StaffUser], db: Any
) -> None:
    b = browse(as_user="admin")
    b.get("/people/devices")
    refused = b.post(
        "/people/devices/save",
        {"new": "1", "name": "Maria's laptop", "mac": "3c:22:fb:12:34:56", "profile": "staff"},
    )
    assert refused.status_code == 400 and "cannot be given by MAC" in refused.get_data(as_text=True)
    assert people.devices(db) == []


def test_a_version_4_store_keeps_its_sessions_and_still_refuses_a_session_of_nobody(tmp_path: Path) -> None:
    path = tmp_path / "v4.sqlite"
    old = sqlite3.connect(path)
    for version, script in MIGRATIONS:
        if version <= 4:
            old.executescript(script)
    old.execute("PRAGMA user_version = 4")
    old.execute(
        "INSERT INTO children (id, display_name, profile, pin, created)"
        " VALUES ('k1', 'Amira', '10-12', 'x', 0)"
    )
    old.execute(
        "INSERT INTO sessions (child, device, client, started, expires, idle_s, last_seen)"
        " VALUES ('k1', '02:00:00:00:00:01', '10.0.0.2', 1, 4e9, 1200, 4e9)"
    )
    old.commit()
    old.close()
    db = connect(path)
    (session,) = people.open_sessions(db, 2.0)
    assert (session.child, session.display_name, session.staff) == ("k1", "Amira", None)
    with pytest.raises(sqlite3.IntegrityError, match="names a child that does not exist"):
        db.execute(
            "INSERT INTO sessions (child, device, client, started, expires, idle_s, last_seen)"
            " VALUES ('nobody', 'd', 'c', 1, 2, 3, 4)"
        )


def test_staff_sign_in_at_the_portal_is_refused_where_there_is_no_staff_profile(
    app: Any, browse: Callable[..., Browser], accounts: dict[Role, StaffUser], db: Any
) -> None:
    from dataclasses import replace

    config = app.config["APPLIANCE"]
    app.config["APPLIANCE"] = replace(config, portal=replace(config.portal, staff_profile="no-such-profile"))
    response = _staff_sign_in(browse(CHILD_IP))
    assert response.status_code == 404 and "not set up" in response.get_data(as_text=True)
    assert people.open_sessions(db, time.time()) == []  # no device bound to a profile nobody has


def test_a_device_named_staff_by_its_mac_is_no_more_staff_to_the_dashboard_than_to_the_services(
    make_config: Callable[..., Any], tmp_path: Path
) -> None:
    # Named before such names were refused, so possibly still in a store: the DNS filter and the proxy
    # leave it out (tests/appliance/in_force/test_bindings.py), and the dashboard (the block page's
    # verdict, the portal's "managed device") must see the same device, not a member of staff.
    staff_mac, pc_mac = "02:00:00:00:00:09", "02:00:00:00:00:10"
    leases = tmp_path / "dnsmasq.leases"
    leases.write_text(
        f"1767225600 {staff_mac} 127.0.0.77 old-laptop *\n1767225600 {pc_mac} 127.0.0.78 pc2 *\n"
    )
    app = create_app(make_config(f"dns:\n  dhcp_leases: {leases}\n"), {"TESTING": True})
    db = connect(app.config["STORE_PATH"])
    people.save_device(
        db, people.DeviceRecord("old-staff-laptop", staff_mac, None, "staff", False), time.time()
    )
    people.save_device(db, people.DeviceRecord("room1-pc2", pc_mac, None, "13-17", True), time.time())
    assert _identity(app, "127.0.0.77").profile == "guest"
    found = _identity(app, "127.0.0.78")
    assert (found.profile, found.managed) == ("13-17", True)
