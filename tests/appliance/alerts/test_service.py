"""`appliance alerts` as a process: it runs on the policy in force until SIGTERM, and its commands say
plainly when there is no one to tell."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.lists import compile_lists
from tests.appliance.cli.conftest import run_appliance
from tests.appliance.proxy.conftest import Origin, write_config


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    (tmp_path / "none.pem").write_text("")
    path = write_config(tmp_path, Origin(ca_pem=tmp_path / "none.pem"), 18080)
    compile_lists(load_config(path), now=dt.datetime.now(dt.UTC))
    return path


def test_the_alerter_runs_on_the_policy_in_force_until_sigterm(config_path: Path) -> None:
    alerter = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "alerts", "--config", str(config_path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert alerter.stderr is not None
        for line in alerter.stderr:
            if "alerter running on" in line:
                break
        alerter.send_signal(signal.SIGTERM)
        assert alerter.wait(timeout=30) == 0
        assert "alerter stopped" in alerter.stderr.read()
    finally:
        alerter.kill()


def test_testing_the_channels_with_no_contacts_says_so(config_path: Path) -> None:
    done = run_appliance(config_path, "alerts", "test")
    assert done.returncode == 1
    assert "no channels: write the contacts and their channels in alerts.yaml" in done.stdout
