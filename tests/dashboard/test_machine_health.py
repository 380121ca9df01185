"""The machine's own troubles, said plainly to staff at the top of every page: a full (or nearly full) disk
and compiled lists that failed their checks; never to children. And a change the dashboard cannot save
for want of disk space gets a page that says so, not an error."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from flask import Flask

from appliance.config import Config, load_config
from appliance.storage import previous_index
from dashboard import create_app
from tests.conftest import SmallDisk
from tests.dashboard.conftest import CHILD_IP, Browser, config_text


def test_a_healthy_machine_shows_no_line(browse: Callable[..., Browser], accounts: object):
    page = browse(as_user="staff").get("/review").get_data(as_text=True)
    assert 'role="alert"' not in page


def test_damaged_lists_are_named_on_every_staff_page_with_what_is_served_instead(
    config: Config, browse: Callable[..., Browser], accounts: object
):
    index = config.index_path
    previous_index(index).write_bytes(index.read_bytes())  # an earlier compile's
    os.chmod(index, 0o644)
    os.truncate(index, 100)  # damaged in place
    staff = browse(as_user="staff")
    for url in ("/review", "/incidents", "/policy"):
        page = staff.get(url).get_data(as_text=True)
        assert 'role="alert"' in page, url
        assert "the compiled lists are damaged" in page and "compiled index truncated" in page
        assert "serve the previous good lists (filters.idx.previous" in page
    # A child on the portal is never told.
    portal = browse(address=CHILD_IP).get("/portal").get_data(as_text=True)
    assert "compiled lists" not in portal


@pytest.fixture
def full_disk_app(tmp_path, small_disk: SmallDisk, compiled_index) -> Flask:  # type: ignore[no-untyped-def]
    data = small_disk.path / "var"
    (data / "index").mkdir(parents=True)
    (data / "index" / compiled_index.name).write_bytes(compiled_index.read_bytes())
    path = tmp_path / "appliance.yaml"
    path.write_text(config_text(data), encoding="utf-8")
    return create_app(load_config(path), {"TESTING": True})


def test_a_full_disk_is_said_on_staff_pages_and_a_change_it_refuses_says_why(
    full_disk_app: Flask, small_disk: SmallDisk
):
    from appliance.store import staff
    from appliance.store.schema import connect
    from appliance.store.staff import Role
    from tests.dashboard.conftest import PASSWORD, STAFF_IP

    db = connect(full_disk_app.config["STORE_PATH"])
    staff.add_user(db, "lead", "Lead Person", Role.LEAD, PASSWORD, 0.0)
    # Kept open, as the event writers keep theirs: the store's -wal and -shm files stay.
    signed_in = Browser(full_disk_app.test_client(), STAFF_IP)
    assert signed_in.sign_in("lead").status_code == 302
    small_disk.fill()

    page = signed_in.get("/review").get_data(as_text=True)
    assert "disk full: 0 kB free for" in page and "Filtering goes on" in page
    # Signing in writes to the store: on a full disk it cannot, and the page says why.
    refused = Browser(full_disk_app.test_client(), STAFF_IP).sign_in("lead")
    assert refused.status_code == 503
    assert "Disk full" in refused.get_data(as_text=True)
    small_disk.free()
    assert "disk full" not in _fresh(signed_in, full_disk_app)
    db.close()


def _fresh(browser: Browser, app: Flask) -> str:
    from dashboard import health

    health._checked.clear()  # (looked at every CHECK_EVERY_S: now)
    return str(browser.get("/review").get_data(as_text=True))
