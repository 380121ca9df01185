"""Children, devices and portal sessions in the store, as the portal and the answering processes see them."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.store import people
from appliance.store.schema import StoreError, connect

MAC = "dc:a6:32:01:02:03"
T = 1_800_000_000.0


@pytest.fixture
def db(tmp_path: Path):
    connection = connect(tmp_path / "store.sqlite")
    yield connection
    connection.close()


def test_a_session_belongs_to_its_device_not_to_an_address_passed_on(db):
    child = people.add_child(db, "Amira", "10-12", "4826", T)
    people.start_session(db, child.id, MAC, "192.168.50.20", T, T + 3600, 1200)
    assert people.session_on(db, MAC, T + 1) is not None
    # Another device (another MAC, or none known) now holding the address is not signed in as Amira.
    assert people.session_on(db, "192.168.50.20", T + 1) is None
    assert people.session_on(db, "aa:bb:cc:dd:ee:ff", T + 1) is None


@pytest.mark.parametrize(
    ("at", "last_seen", "open_"),
    [
        (T + 60, T, True),  # in use
        (T + 1200, T, False),  # idle for the whole idle time
        (T + 1199, T, True),
        (T + 3600, T + 3599, False),  # closing time
    ],
)
def test_a_session_is_open_until_idle_or_closing_time(db, at, last_seen, open_):
    child = people.add_child(db, "Amira", "10-12", "4826", T)
    people.start_session(db, child.id, MAC, "192.168.50.20", T, T + 3600, 1200)
    db.execute("UPDATE sessions SET last_seen = ?", (last_seen,))
    assert bool(people.open_sessions(db, at)) is open_
    people.close_stale_sessions(db, at)
    (ended,) = db.execute("SELECT ended IS NOT NULL FROM sessions").fetchone()
    assert bool(ended) is not open_


def test_every_change_of_sessions_or_devices_bumps_the_bindings_counter(db):
    child = people.add_child(db, "Amira", "10-12", "4826", T)
    seen = [people.bindings_version(db)]
    session = people.start_session(db, child.id, MAC, "192.168.50.20", T, T + 3600, 1200)
    seen.append(people.bindings_version(db))
    people.end_session(db, session, "logout", T + 5)
    seen.append(people.bindings_version(db))
    people.save_device(db, people.DeviceRecord("room1-pc1", MAC, None, "10-12", True), T)
    seen.append(people.bindings_version(db))
    people.remove_device(db, "room1-pc1")
    seen.append(people.bindings_version(db))
    assert seen == sorted(set(seen)) and len(seen) == 5


def test_archiving_a_child_ends_their_session(db):
    child = people.add_child(db, "Amira", "10-12", "4826", T)
    people.start_session(db, child.id, MAC, "192.168.50.20", T, T + 3600, 1200)
    people.update_child(db, child.id, "10-12", archived=True, now=T)
    assert people.open_sessions(db, T + 1) == []
    assert people.find_child(db, "Amira") == []


@pytest.mark.parametrize("pin", ["12", "abcd", "123456789", ""])
def test_a_pin_is_four_to_eight_digits(db, pin):
    with pytest.raises(StoreError, match="4 to 8 digits"):
        people.add_child(db, "Amira", "10-12", pin, T)


def test_a_pin_is_stored_hashed_and_checked(db):
    child = people.add_child(db, "Amira", "10-12", "4826", T)
    (stored,) = db.execute("SELECT pin FROM children").fetchone()
    assert "4826" not in stored and stored.startswith("$scrypt-p$")  # with the pepper (test_pin_pepper.py)
    assert people.pin_matches(db, child.id, "4826") and not people.pin_matches(db, child.id, "4827")


@pytest.mark.parametrize("taken", ["Sam", "sam", "  SAM ", "SaM"])
def test_a_name_an_active_child_has_is_refused_and_an_archived_childs_is_free(db, taken):
    sam = people.add_child(db, "Sam", "10-12", "1111", T)
    with pytest.raises(StoreError, match="there is already a child named Sam"):
        people.add_child(db, taken, "10-12", "2222", T)
    people.update_child(db, sam.id, "10-12", archived=True, now=T)
    again = people.add_child(db, taken, "10-12", "2222", T)
    with pytest.raises(StoreError, match="already a child named"):
        people.update_child(db, sam.id, "10-12", archived=False, now=T)  # restoring would make two
    people.update_child(db, sam.id, "10-12", archived=False, now=T, display_name="Sam K")
    assert [c.display_name for c in people.find_child(db, "sam")] == [again.display_name]
