"""The dashboard's lists page, as staff see it at a centre that syncs from head office: the bundle in
force, its age, the last success and the last error; and the page follows a swap by itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from appliance.bundles.errors import BundleError
from appliance.bundles.sync import sync
from appliance.config import Config
from appliance.store import staff
from appliance.store.schema import connect
from appliance.store.staff import Role
from dashboard import create_app
from tests.appliance.bundles.conftest import HeadOffice
from tests.dashboard.conftest import Browser


def test_staff_see_the_bundle_in_force_and_the_last_error(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    config = centre()
    b = Browser(create_app(config, {"TESTING": True}).test_client(), "127.0.0.1")
    db = connect(config.events_path)
    staff.add_user(db, "viewer", "Viewer", Role.STAFF, "correct horse battery", 0.0)
    db.close()
    assert b.sign_in("viewer", "correct horse battery").status_code == 302
    page = b.get("/policy/lists").get_data(as_text=True)
    assert "No bundle from head office yet" in page and "never" in page

    head_office.publish(1)
    sync(config, datetime.now(UTC))
    page = b.get("/policy/lists").get_data(as_text=True)
    assert "<strong>bundle 1</strong>" in page and "0 h old" in page and "Last error" not in page
    assert "hq.adult" in page  # the lists table is the set in force's

    head_office.publish(2, extra_hosts="0.0.0.0 newly-listed.example\n")
    sync(config, datetime.now(UTC))  # the dashboard was not restarted
    assert "<strong>bundle 2</strong>" in b.get("/policy/lists").get_data(as_text=True)

    head_office.misbehaving.answers["/metadata/timestamp.json"] = (200, b"<html>captive portal</html>")
    with pytest.raises(BundleError):
        sync(config, datetime.now(UTC))
    page = b.get("/policy/lists").get_data(as_text=True)
    assert "<strong>bundle 2</strong>" in page and "Last error" in page
    assert "not valid signed metadata" in page
