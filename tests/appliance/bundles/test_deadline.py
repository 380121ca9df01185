"""A slow mirror (a byte every fraction of a second: no read ever times out) against `appliance sync`: the
whole sync gives up at `sync.deadline_s`, exits non-zero, records "gave up after N s" for `--status` and
the dashboard, and the set in force stays as it was; the next sync from a healthy mirror takes the bundle.

Each sync runs as its own process under a generous timeout, so code without a deadline fails the test
instead of hanging it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from appliance.bundles.state import read_state
from appliance.bundles.sync import sync
from appliance.config import Config
from appliance.store import staff
from appliance.store.schema import connect
from appliance.store.staff import Role
from dashboard import create_app
from tests.appliance.bundles.conftest import HeadOffice
from tests.appliance.bundles.test_sync import in_force
from tests.dashboard.conftest import Browser

APPLIANCE = str(Path(sys.executable).parent / "appliance")
GUARD_S = 60  # far above the deadlines below; only code that never gives up reaches it


def run_sync(config: Config) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [APPLIANCE, "sync", "--config", config.origin], capture_output=True, text=True, timeout=GUARD_S
    )


def test_a_mirror_trickling_every_file_is_given_up_at_the_deadline(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    config = centre("  deadline_s: 2\n")
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    before = in_force(config)
    head_office.publish(2)
    head_office.misbehaving.trickle_s = 0.2  # timestamp.json alone would take minutes

    done = run_sync(config)

    assert done.returncode == 2
    assert "gave up after 2 s (sync.deadline_s) while reaching head office" in done.stderr
    assert in_force(config) == before  # bundle 1, its index untouched
    state = read_state(config.data_dir)
    assert state.last_error is not None and state.last_error.startswith("gave up after 2 s")
    assert state.last_error_at and state.in_force == 1 and not state.unfinished
    shown = subprocess.run(
        [APPLIANCE, "sync", "--status", "--config", config.origin], capture_output=True, text=True, check=True
    ).stdout
    assert "in force: bundle 1" in shown and "last error" in shown and "gave up after 2 s" in shown

    head_office.misbehaving.trickle_s = 0  # the mirror recovers
    assert run_sync(config).returncode == 0
    assert read_state(config.data_dir).in_force == 2


def test_a_bundle_file_trickled_is_named_and_shown_to_staff(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    config = centre("  deadline_s: 3\n")
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    before = in_force(config)
    head_office.publish(2)
    head_office.misbehaving.trickle_s, head_office.misbehaving.trickle_only = 0.2, "adult.hosts"

    done = run_sync(config)

    assert done.returncode == 2
    assert "gave up after 3 s (sync.deadline_s) while downloading bundles/2/lists/adult.hosts" in done.stderr
    assert in_force(config) == before
    b = Browser(create_app(config, {"TESTING": True}).test_client(), "127.0.0.1")
    db = connect(config.events_path)
    staff.add_user(db, "viewer", "Viewer", Role.STAFF, "correct horse battery", 0.0)
    db.close()
    assert b.sign_in("viewer", "correct horse battery").status_code == 302
    page = b.get("/policy/lists").get_data(as_text=True)
    assert "<strong>bundle 1</strong>" in page and "Last error" in page
    assert "gave up after 3 s" in page and "downloading bundles/2/lists/adult.hosts" in page


def test_a_sync_stopped_from_outside_shows_as_unfinished(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    head_office.publish(2)
    head_office.misbehaving.trickle_s = 0.2
    running = subprocess.Popen([APPLIANCE, "sync", "--config", config.origin])
    try:
        waited = 0.0
        while not read_state(config.data_dir).unfinished and waited < GUARD_S:
            time.sleep(0.05)
            waited += 0.05
    finally:
        running.kill()  # as systemd's TimeoutStartSec would: no outcome is ever recorded
        running.wait()
    state = read_state(config.data_dir)
    assert state.unfinished and state.in_force == 1
    shown = subprocess.run(
        [APPLIANCE, "sync", "--status", "--config", config.origin], capture_output=True, text=True, check=True
    ).stdout
    assert "no outcome: still running, or stopped from outside" in shown
