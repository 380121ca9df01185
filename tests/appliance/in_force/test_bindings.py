"""Devices staff named in the dashboard, as the DNS filter and the proxy take them in: a device named
with the staff profile by its MAC (allowed before MACs were refused for staff, so possibly still in a
store) is never staff, because any child's device can copy a MAC; other named devices apply."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from appliance.config import load_config
from appliance.in_force.bindings import Bindings
from appliance.in_force.live import load_live
from appliance.lists import compile_lists
from appliance.store import people
from appliance.store.schema import connect
from tests.appliance.proxy.conftest import Origin, write_config

STAFF_MAC, PC_MAC = "02:00:00:00:00:09", "02:00:00:00:00:10"


def test_a_stored_staff_device_named_by_mac_is_not_staff_and_other_named_devices_apply(
    tmp_path: Path,
) -> None:
    (tmp_path / "none.pem").write_text("")
    config_path = write_config(tmp_path, Origin(ca_pem=tmp_path / "none.pem"), 18080)
    config = load_config(config_path)
    compile_lists(config, now=dt.datetime.now(dt.UTC))
    live = load_live(config_path)
    db = connect(config.events_path)
    people.save_device(
        db, people.DeviceRecord("old-staff-laptop", STAFF_MAC, None, "staff", False), time.time()
    )
    people.save_device(db, people.DeviceRecord("room1-pc2", PC_MAC, None, "13-17", True), time.time())
    bound = Bindings(config.events_path, live.zone).poll(time.time())
    assert bound is not None
    live.bind(bound)
    assert live.client("127.0.0.77", STAFF_MAC, time.monotonic()).identity.profile == "guest"
    assert live.client("127.0.0.78", PC_MAC, time.monotonic()).identity.profile == "13-17"
