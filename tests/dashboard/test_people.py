"""Children and devices, as conversations with the dashboard: staff add a child and reset a PIN at the
desk, sign a child out, and administrators name the devices seen on the network."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from appliance.config import Config
from appliance.store import audit, people
from appliance.store.staff import Role, StaffUser
from dashboard import create_app
from tests.dashboard.conftest import add_child

ARP = """IP address       HW type     Flags       HW address            Mask     Device
192.168.50.20    0x1         0x2         3c:22:fb:12:34:56     *        eth1
192.168.50.44    0x1         0x2         02:11:22:33:44:55     *        eth1
"""
LEASES = "1767225600 3c:22:fb:12:34:56 192.168.50.20 amiras-ipad *\n"


@pytest.fixture
def config(make_config: Callable[..., Config], tmp_path: Path) -> Config:
    (tmp_path / "dnsmasq.leases").write_text(LEASES)
    return make_config(f"dns:\n  dhcp_leases: {tmp_path / 'dnsmasq.leases'}\n")


@pytest.fixture
def app(config: Config, tmp_path: Path) -> Flask:
    (tmp_path / "arp").write_text(ARP)
    return create_app(config, {"TESTING": True, "ARP_TABLE": str(tmp_path / "arp")})


def actions(db: Any) -> list[tuple[str, str, str]]:
    return [(e.action, e.subject, e.detail) for e in audit.entries(db)]


def test_staff_add_a_child_and_see_it_listed_without_the_pin(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any
) -> None:
    b = browse(as_user="staff")
    page = b.get("/people").get_data(as_text=True)
    assert "Add a child" in page and '<option value="10-12"' in page
    response = b.post(
        "/people/children",
        {"display_name": "  Amira   B ", "profile": "10-12", "pin": "48261", "again": "48261"},
    )
    assert response.status_code == 302
    page = b.get("/people").get_data(as_text=True)
    assert "Amira B" in page and "48261" not in page
    child = people.find_child(db, "Amira B")[0]
    assert child.profile == "10-12" and people.pin_matches(db, child.id, "48261")
    assert ("add-child", f"child:{child.id}", "profile 10-12") in actions(db)
    assert not any("48261" in detail for _, _, detail in actions(db))


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"display_name": "Sam", "profile": "10-12", "pin": "12", "again": "12"}, "4 to 8 digits"),
        ({"display_name": "Sam", "profile": "10-12", "pin": "1234", "again": "1235"}, "The two PINs differ"),
        (
            {"display_name": "Sam", "profile": "teens", "pin": "1234", "again": "1234"},
            "Choose one of the profiles",
        ),
        ({"display_name": "  ", "profile": "10-12", "pin": "1234", "again": "1234"}, "display name"),
    ],
)
def test_a_child_with_a_mistake_is_refused_with_the_reason(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any, form: dict[str, str], words: str
) -> None:
    b = browse(as_user="staff")
    b.get("/people")
    response = b.post("/people/children", form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert words in page and f'value="{form["pin"]}"' not in page  # a PIN is never sent back
    assert people.children(db) == []


def test_staff_reset_a_pin(browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any) -> None:
    child = add_child(db, "Jonah", pin="1111")
    b = browse(as_user="staff")
    b.get("/people")
    assert b.post(f"/people/children/{child.id}/pin", {"pin": "7294"}).status_code == 302
    assert people.pin_matches(db, child.id, "7294") and not people.pin_matches(db, child.id, "1111")
    assert ("reset-pin", f"child:{child.id}", "") in actions(db)
    refused = b.post(f"/people/children/{child.id}/pin", {"pin": "abc"})
    assert refused.status_code == 400 and "Jonah: A PIN is 4 to 8 digits" in refused.get_data(as_text=True)


def test_archiving_a_child_is_for_administrators(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any
) -> None:
    child = add_child(db, "Tia")
    staff = browse(as_user="staff")
    staff.get("/people")
    assert (
        staff.post(f"/people/children/{child.id}", {"profile": "10-12", "archived": "1"}).status_code == 403
    )
    admin = browse(as_user="admin")
    admin.get("/people")
    assert (
        admin.post(f"/people/children/{child.id}", {"profile": "13-17", "archived": "1"}).status_code == 302
    )
    assert people.get_child(db, child.id) == people.ChildRecord(child.id, "Tia", "13-17", True)
    assert "Tia is archived" in admin.get("/people").get_data(as_text=True)
    assert "Tia" not in admin.get("/people").get_data(as_text=True)
    assert "Tia" in admin.get("/people?archived=1").get_data(as_text=True)
    assert ("archive-child", f"child:{child.id}", "profile 13-17") in actions(db)


def test_staff_see_who_is_signed_in_and_sign_a_child_out(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any
) -> None:
    child = add_child(db, "Leo")
    t = time.time()
    session_id = people.start_session(db, child.id, "3c:22:fb:12:34:56", "192.168.50.20", t, t + 3600, 900)
    before = people.bindings_version(db)
    b = browse(as_user="staff")
    page = b.get("/people").get_data(as_text=True)
    assert "Signed in now" in page and "Leo" in page and f"/people/sessions/{session_id}/end" in page
    assert b.post(f"/people/sessions/{session_id}/end").status_code == 302
    assert people.open_sessions(db, time.time()) == []
    assert people.bindings_version(db) > before
    row = db.execute("SELECT end_reason FROM sessions WHERE id = ?", (session_id,)).fetchone()
    assert row[0] == "staff"
    assert ("end-session", f"child:{child.id}", "device 3c:22:fb:12:34:56") in actions(db)
    assert b.post(f"/people/sessions/{session_id}/end").status_code == 404


def test_the_devices_page_shows_devices_seen_with_their_lease_names(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser]
) -> None:
    page = browse(as_user="staff").get("/people/devices").get_data(as_text=True)
    assert "3c:22:fb:12:34:56" in page and "amiras-ipad" in page and "02:11:22:33:44:55" in page
    assert "Name it" not in page  # staff see the devices; administrators name them


def test_an_administrator_names_a_seen_device_in_one_click(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any
) -> None:
    b = browse(as_user="admin")
    page = b.get("/people/devices").get_data(as_text=True)
    assert "Name it" in page
    before = people.bindings_version(db)
    response = b.post(
        "/people/devices/save",
        {
            "new": "1",
            "name": "Laptop 3",
            "mac": "3C-22-FB-12-34-56",
            "address": "192.168.50.20",
            "profile": "13-17",
            "managed": "1",
        },
    )
    assert response.status_code == 302
    assert people.devices(db) == [people.DeviceRecord("Laptop 3", "3c:22:fb:12:34:56", None, "13-17", True)]
    assert people.bindings_version(db) == before + 1
    assert (
        "save-device",
        "device:Laptop 3",
        "mac 3c:22:fb:12:34:56, address -, profile 13-17, managed yes",
    ) in actions(db)
    assert "Saved Laptop 3: profile 13-17, centre-managed" in b.get("/people/devices").get_data(as_text=True)
    page = b.get("/people/devices").get_data(as_text=True)
    named = page.split("<td>Laptop 3")[1].split("</tr>")[0]
    assert "now (arp+dhcp)" in named and "amiras-ipad" in named
    assert 'aria-label="name for 3c:22:fb:12:34:56"' not in page  # no longer among the unnamed
    # The same name again from the "name it" form would overwrite another device: refused.
    again = b.post(
        "/people/devices/save",
        {"new": "1", "name": "Laptop 3", "mac": "02:11:22:33:44:55", "profile": "10-12"},
    )
    assert again.status_code == 400 and "already a device named" in again.get_data(as_text=True)
    # Changing it from its own row keeps the name and changes the rest.
    assert (
        b.post(
            "/people/devices/save", {"name": "Laptop 3", "mac": "3c:22:fb:12:34:56", "profile": "10-12"}
        ).status_code
        == 302
    )
    assert people.devices(db)[0].profile == "10-12" and not people.devices(db)[0].managed
    assert b.post("/people/devices/remove", {"name": "Laptop 3"}).status_code == 302
    assert people.devices(db) == []
    assert ("remove-device", "device:Laptop 3", "") in actions(db)


def test_a_bad_mac_is_refused_with_a_clear_message(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any
) -> None:
    b = browse(as_user="admin")
    b.get("/people/devices")
    before = people.bindings_version(db)
    response = b.post(
        "/people/devices/save", {"new": "1", "name": "Tablet", "mac": "3c:22:fb:12:34", "profile": "10-12"}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "&#39;3c:22:fb:12:34&#39; is not a MAC address" in page and "six pairs of hex digits" in page
    assert people.devices(db) == [] and people.bindings_version(db) == before
    no_address = b.post("/people/devices/save", {"new": "1", "name": "Tablet", "profile": "10-12"})
    assert no_address.status_code == 400 and "give its MAC address" in no_address.get_data(as_text=True)


def test_staff_cannot_change_devices(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any
) -> None:
    b = browse(as_user="staff")
    b.get("/people/devices")
    form = {"new": "1", "name": "Laptop 3", "mac": "3c:22:fb:12:34:56", "profile": "13-17"}
    assert b.post("/people/devices/save", form).status_code == 403
    assert b.post("/people/devices/remove", {"name": "Laptop 3"}).status_code == 403
    assert b.post("/people/devices/sweep").status_code == 403
    assert people.devices(db) == []


def test_a_sweep_without_a_configured_network_says_so(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APPLIANCE_ARP_SWEEP_INTERFACE", raising=False)
    b = browse(as_user="admin")
    assert "Look for devices" not in b.get("/people/devices").get_data(as_text=True)
    response = b.post("/people/devices/sweep")
    assert response.status_code == 400 and "APPLIANCE_ARP_SWEEP_INTERFACE" in response.get_data(as_text=True)


def test_every_page_here_needs_a_signed_in_member_of_staff(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser]
) -> None:
    anonymous = browse()
    for url in ("/people", "/people/devices"):
        assert anonymous.get(url).status_code == 302
    assert browse(address="127.0.0.31").get("/people").status_code == 403


def test_a_name_an_active_child_has_is_refused_whatever_its_case_and_spaces(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any
) -> None:
    first = add_child(db, "Amira B")
    b = browse(as_user="staff")
    b.get("/people")
    response = b.post(
        "/people/children", {"display_name": " amira   b", "profile": "10-12", "pin": "2222", "again": "2222"}
    )
    assert response.status_code == 400
    assert "There is already a child named Amira B" in response.get_data(as_text=True)
    assert [c.id for c in people.children(db)] == [first.id]
    # Once Amira B is archived her name is free again; restoring her then would make two: refused.
    people.update_child(db, first.id, "10-12", archived=True, now=time.time())
    add_child(db, "AMIRA B", pin="2222")
    admin = browse(as_user="admin")
    admin.get("/people")
    response = admin.post(f"/people/children/{first.id}", {"profile": "10-12", "archived": "0"})
    assert response.status_code == 400 and "There is already a child named AMIRA B" in response.get_data(
        as_text=True
    )
    assert people.get_child(db, first.id).archived


def test_an_administrator_renames_a_child_but_not_to_another_childs_name(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any
) -> None:
    sam, ben = add_child(db, "Sam"), add_child(db, "Ben", pin="5555")
    admin = browse(as_user="admin")
    admin.get("/people")
    form = {"display_name": "sam", "profile": "10-12", "archived": "0"}
    response = admin.post(f"/people/children/{ben.id}", form)
    assert response.status_code == 400 and "Ben: There is already a child named Sam" in response.get_data(
        as_text=True
    )
    assert people.get_child(db, ben.id).display_name == "Ben"
    form["display_name"] = "Sam  K"
    assert admin.post(f"/people/children/{ben.id}", form).status_code == 302
    assert people.get_child(db, ben.id).display_name == "Sam K" and people.find_child(db, "sam") == [
        people.get_child(db, sam.id)
    ]
    assert ("change-child", f"child:{ben.id}", "renamed Ben -> Sam K, profile 10-12 -> 10-12") in actions(db)


def test_add_a_child_offers_only_childrens_profiles_and_none_chosen(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any
) -> None:
    b = browse(as_user="staff")
    form = b.get("/people").get_data(as_text=True).split("<h2>Add a child</h2>", 1)[1]
    select = form.split('<select id="profile"', 1)[1].split("</select>", 1)[0]
    offered = re.findall(r'<option value="([^"]*)"', select)
    assert offered == ["", "under-10", "10-12", "13-17"]  # the guest and staff profiles are not for children
    assert re.search(r'<option value="" selected disabled>', select) and select.count("selected") == 1
    for profile in ("staff", "guest", ""):
        refused = b.post(
            "/people/children", {"display_name": "Sam", "profile": profile, "pin": "1234", "again": "1234"}
        )
        assert refused.status_code == 400 and "Choose one of the profiles" in refused.get_data(as_text=True)
    assert people.children(db) == []


def test_a_childs_name_longer_than_the_field_is_refused_not_cut(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any
) -> None:
    b = browse(as_user="staff")
    page = b.get("/people").get_data(as_text=True)
    field = re.search(r'<input id="display_name"[^>]*>', page)
    assert field and "maxlength" not in field.group(0)  # the browser would cut a pasted name silently
    long = "Amira " + "B" * 64
    refused = b.post(
        "/people/children", {"display_name": long, "profile": "10-12", "pin": "1234", "again": "1234"}
    )
    text = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "at most 64 letters" in text and long in text
    assert people.children(db) == []


def test_a_child_is_moved_only_to_a_childs_profile_never_to_the_staff_or_guest_one(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any
) -> None:
    sam = add_child(db, "Sam")
    admin = browse(as_user="admin")
    page = admin.get("/people").get_data(as_text=True)
    row = page.split(f'aria-label="profile for {sam.display_name}">', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'<option value="([^"]*)"', row) == ["under-10", "10-12", "13-17"]
    for profile in ("staff", "guest"):
        refused = admin.post(f"/people/children/{sam.id}", {"profile": profile, "archived": "0"})
        assert refused.status_code == 400 and "Choose one of the profiles" in refused.get_data(as_text=True)
        assert people.get_child(db, sam.id).profile == "10-12"
    assert admin.post(f"/people/children/{sam.id}", {"profile": "13-17", "archived": "0"}).status_code == 302
    assert people.get_child(db, sam.id).profile == "13-17"
