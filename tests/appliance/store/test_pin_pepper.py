"""Children's PINs against a copy of the store: hashed with the centre's pepper (a file beside the store,
never in it), so the store's hashes alone do not give up a four-digit PIN to a search of all 10,000;
PINs hashed before the pepper still sign in and are hashed again with it; the pepper file is made once,
0600, and never replaced; and without it the portal refuses with a clear message instead of failing."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.store import people, secrets
from appliance.store.schema import connect
from dashboard import create_app
from tests.dashboard.conftest import Browser

T = 1_800_000_000.0
CHILD_IP = "127.0.0.31"


@pytest.fixture
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt at its smallest cost, so that a test can search all 10,000 PINs the way an attacker with
    a copy of the store would (the stored hash names its own cost parameters)."""
    monkeypatch.setattr(secrets, "N", 2)
    monkeypatch.setattr(secrets, "R", 1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = connect(tmp_path / "var" / "appliance.sqlite")
    yield db
    db.close()


def search_every_pin(stored: str) -> list[str]:
    """What a copy of the store gives an attacker: every four-digit PIN tried against the hash, with the
    parameters and salt the hash names."""
    n, r, p, salt, digest = stored.split("$")[-5:]
    expected = secrets._unb64(digest)
    return [
        pin
        for pin in (f"{i:04d}" for i in range(10_000))
        if hashlib.scrypt(
            pin.encode(), salt=secrets._unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
        == expected
    ]


def copy_of(db: sqlite3.Connection, folder: Path) -> sqlite3.Connection:
    """A backup of the store file alone, as `sqlite3 .backup` makes it."""
    folder.mkdir()
    copy = sqlite3.connect(folder / "appliance.sqlite")
    db.backup(copy)
    return copy


def test_a_copy_of_the_store_does_not_give_up_a_pin_to_a_search_of_all_10000(
    store: sqlite3.Connection, tmp_path: Path, fast_scrypt: None
) -> None:
    amira = people.add_child(store, "Amira", "10-12", "4826", T)
    copy = copy_of(store, tmp_path / "stolen")
    (stored,) = copy.execute("SELECT pin FROM children WHERE id = ?", (amira.id,)).fetchone()
    assert search_every_pin(stored) == []
    # The search is real: it finds a PIN hashed the way PINs were before the pepper.
    assert search_every_pin(secrets.hash_secret("4826")) == ["4826"]
    # Nor does the copy sign anyone in: its folder has no pepper.
    with pytest.raises(secrets.PepperError, match="is missing"):
        people.pin_matches(copy, amira.id, "4826")
    # The appliance itself, with its pepper file, does.
    assert people.pin_matches(store, amira.id, "4826") and not people.pin_matches(store, amira.id, "4827")


def test_a_pin_hashed_before_the_pepper_signs_in_and_is_hashed_again_with_it(
    store: sqlite3.Connection,
) -> None:
    amira = people.add_child(store, "Amira", "10-12", "4826", T)
    old = secrets.hash_secret("4826")  # as every PIN was stored before the pepper
    store.execute("UPDATE children SET pin = ? WHERE id = ?", (old, amira.id))

    def stored() -> str:
        return str(store.execute("SELECT pin FROM children WHERE id = ?", (amira.id,)).fetchone()[0])

    assert not people.pin_matches(store, amira.id, "1111") and stored() == old  # a wrong PIN changes nothing
    assert people.pin_matches(store, amira.id, "4826")
    assert stored().startswith("$scrypt-p$")
    assert people.pin_matches(store, amira.id, "4826") and not people.pin_matches(store, amira.id, "1111")


def test_the_pepper_file_is_made_once_beside_the_store_readable_by_its_owner_only(
    store: sqlite3.Connection, tmp_path: Path
) -> None:
    mask = os.umask(0o022)
    try:
        people.add_child(store, "Amira", "10-12", "4826", T)
    finally:
        os.umask(mask)
    pepper = tmp_path / "var" / "pin-pepper.key"
    assert oct(pepper.stat().st_mode & 0o777) == "0o600"
    made = pepper.read_bytes()
    assert len(bytes.fromhex(made.decode())) == 32
    people.add_child(store, "Ben", "10-12", "1234", T)
    assert pepper.read_bytes() == made  # never replaced
    assert sorted(p.name for p in pepper.parent.iterdir() if "pepper" in p.name) == ["pin-pepper.key"]


def test_a_damaged_pepper_file_is_refused_and_left_as_it_is(
    store: sqlite3.Connection, tmp_path: Path
) -> None:
    pepper = tmp_path / "var" / "pin-pepper.key"
    pepper.write_text("not a pepper\n")
    with pytest.raises(secrets.PepperError, match="not a PIN pepper"):
        people.add_child(store, "Amira", "10-12", "4826", T)
    assert pepper.read_text() == "not a pepper\n"


def test_a_pin_made_with_another_pepper_is_named_as_such(store: sqlite3.Connection, tmp_path: Path) -> None:
    """A store restored on a new Pi without its pepper file: the first PIN set there makes a new pepper;
    the other children's PINs are then neither right nor wrong, and say what to do."""
    amira = people.add_child(store, "Amira", "10-12", "4826", T)
    (tmp_path / "var" / "pin-pepper.key").unlink()
    ben = people.add_child(store, "Ben", "10-12", "1234", T)
    assert people.pin_matches(store, ben.id, "1234")
    with pytest.raises(secrets.PepperError, match=r"holds another one.*set a new PIN for the child"):
        people.pin_matches(store, amira.id, "4826")
    people.reset_pin(store, amira.id, "4826")  # what staff do
    assert people.pin_matches(store, amira.id, "4826")


def test_without_its_pepper_file_the_portal_refuses_to_sign_in_and_says_why_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "appliance.yaml"
    # Open at any hour: the portal closes at 20:00 by default, and CI runs whenever it runs.
    path.write_text(f"data_dir: {tmp_path / 'var'}\nportal:\n  closing_time: '24:00'\n", encoding="utf-8")
    config = load_config(path)
    app = create_app(config, {"TESTING": True})
    db = connect(config.events_path)
    people.add_child(db, "Amira", "10-12", "4826", T)
    db.close()
    (config.data_dir / "pin-pepper.key").unlink()  # a restore that left it behind
    b = Browser(app.test_client(), CHILD_IP)
    b.get("/portal")

    response = b.post("/portal/signin", {"name": "Amira", "pin": "4826", "accept": "yes"})

    assert response.status_code == 503
    assert "ask a member of staff" in response.get_data(as_text=True)
    assert "pin-pepper.key" in caplog.text and "is missing" in caplog.text
    assert not (config.data_dir / "pin-pepper.key").exists()  # not made again by a sign-in
