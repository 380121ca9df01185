"""A child's tablet asking the real DNS filter for the DoH and Private Relay canaries: each question is
an event in the store (kept, not only counted), each counts on the device's conduct flag, and the third
within ten minutes raises the shipped `bypass` alert. A technician's device (a profile that bypasses
filtering) asking the same raises nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from appliance.alerts.raising import Raiser
from appliance.config import PolicySettings
from appliance.policy_files import read_policy_files
from appliance.store.schema import connect
from tests.appliance.dns.conftest import KIDS, STAFF, Running, make_dns, upstream

__all__ = ["make_dns", "upstream"]  # the DNS filter's fixtures, used here

ALERTS = read_policy_files(PolicySettings()).alerts


def test_canaries_asked_of_the_real_dns_filter_are_bypass_attempts(
    make_dns: Callable[..., Running], tmp_path: Path
) -> None:
    running = make_dns()
    for name in ("use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com"):
        assert running.query(name, source=KIDS).rcode() == 3  # NXDOMAIN: the device turns its bypass off
        running.query(name, source=STAFF)
    running.flush_log()
    db = connect(tmp_path / "var" / "appliance.sqlite")
    try:
        raiser = Raiser(db, area_of={})
        [alert] = raiser.step(ALERTS, time.time())
        assert db.execute("SELECT subject, count FROM conduct_flags").fetchall() == [
            ("device:kids-tablet", 3)
        ]
        assert db.execute(
            "SELECT rule, severity, subject, count FROM alerts WHERE id = ?", (alert,)
        ).fetchall() == [("bypass", "high", "device:kids-tablet", 3)]
    finally:
        db.close()
