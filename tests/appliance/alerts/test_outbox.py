"""The outbox across a crash: the alerter (`appliance alerts`, as systemd runs it) killed with SIGKILL
while a message is on its way is started again and the message is delivered exactly once."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.lists import compile_lists
from tests.appliance.alerts.receivers import SmtpReceiver
from tests.appliance.alerts.stage import Stage
from tests.appliance.proxy.conftest import Origin, write_config

ROOT = Path(__file__).resolve().parents[3]


def wait_for(what: Callable[[], bool], timeout: float = 30.0) -> None:
    until = time.monotonic() + timeout
    while not what():
        if time.monotonic() > until:
            raise AssertionError("not within the deadline")
        time.sleep(0.02)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A centre's configuration with the demo lists compiled, whose alerts.yaml `alerts_to` writes."""
    (tmp_path / "none.pem").write_text("")
    path = write_config(tmp_path, Origin(ca_pem=tmp_path / "none.pem"), 18080)
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("\npolicy:\n", f"\npolicy:\n  alerts: {tmp_path / 'alerts.yaml'}\n", 1), encoding="utf-8"
    )
    alerts_to(path, 9)  # nothing listens on port 9 (discard) here: replaced once the test's server runs
    compile_lists(load_config(path), now=dt.datetime.now(dt.UTC))
    return path


def alerts_to(config_path: Path, smtp_port: int) -> None:
    """Every alert to `duty` at once, by e-mail through the test's SMTP server on `smtp_port`."""
    url = f"mailto://127.0.0.1:{smtp_port}?from=appliance@centre.example&to=duty@centre.example&mode=insecure"
    (config_path.parent / "alerts.yaml").write_text(
        "centre: Demo centre\n"
        "link_base: https://appliance.lan\n"
        f"contacts:\n  duty:\n    channels: {{email: '{url}'}}\n"
        "ladder:\n  - {after_minutes: 0, notify: duty, min_severity: medium}\n",
        encoding="utf-8",
    )


@pytest.fixture
def stage(config_path: Path) -> Iterator[Stage]:
    s = Stage(load_config(config_path).events_path)
    yield s
    s.close()


def start_alerter(config_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "alerts", "--config", str(config_path)], cwd=ROOT
    )


def state_of(stage: Stage, alert: int) -> list[str]:
    return [s for (s,) in stage.db.execute("SELECT state FROM alert_deliveries WHERE alert = ?", (alert,))]


def test_killed_mid_send_the_alerter_delivers_exactly_once_after_restart(
    stage: Stage, config_path: Path
) -> None:
    first = stage.alert(time.time())
    with SmtpReceiver() as smtp:
        alerts_to(config_path, smtp.port)
        smtp.hold.clear()  # the first message is held at the server, unanswered...
        smtp.refuse_held = True  # ... and, once let go, answered "try again later": never delivered
        alerter = start_alerter(config_path)
        try:
            wait_for(smtp.arrived.is_set)
            os.kill(alerter.pid, signal.SIGKILL)  # kill -9 with the message on its way
            alerter.wait()
        finally:
            alerter.kill()
        assert state_of(stage, first) == ["pending"]  # the outbox still has it
        smtp.hold.set()
        assert smtp.mails == []

        alerter = start_alerter(config_path)
        try:
            wait_for(lambda: state_of(stage, first) == ["sent"])
            assert len(smtp.mails) == 1
            os.kill(alerter.pid, signal.SIGKILL)  # killed again, after it was sent
            alerter.wait()
        finally:
            alerter.kill()

        alerter = start_alerter(config_path)
        try:
            second = stage.alert(time.time())  # a new alert, to know the restarted alerter has stepped
            wait_for(lambda: state_of(stage, second) == ["sent"])
            alerter.send_signal(signal.SIGTERM)
            assert alerter.wait(timeout=30) == 0  # SIGTERM stops it cleanly
        finally:
            alerter.kill()
    first_mails = [m for m in smtp.mails if f"/alerts/{first}\n" in m.body]
    assert len(first_mails) == 1  # exactly once
    assert len(smtp.mails) == 2
