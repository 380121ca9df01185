"""The outbox across a crash: the alerter killed with SIGKILL while a message is on its way is started
again and the message is delivered exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.appliance.alerts.receivers import SmtpReceiver
from tests.appliance.alerts.stage import Stage

ROOT = Path(__file__).resolve().parents[3]


def wait_for(what: Callable[[], bool], timeout: float = 30.0) -> None:
    until = time.monotonic() + timeout
    while not what():
        if time.monotonic() > until:
            raise AssertionError("not within the deadline")
        time.sleep(0.02)


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    s = Stage(tmp_path / "events.sqlite")
    yield s
    s.close()


def start_alerter(store: Path, smtp_port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.appliance.alerts.alerter_child", str(store), str(smtp_port)], cwd=ROOT
    )


def state_of(stage: Stage, alert: int) -> list[str]:
    return [s for (s,) in stage.db.execute("SELECT state FROM alert_deliveries WHERE alert = ?", (alert,))]


def test_killed_mid_send_the_alerter_delivers_exactly_once_after_restart(stage: Stage) -> None:
    first = stage.alert(time.time())
    with SmtpReceiver() as smtp:
        smtp.hold.clear()  # the first message is held at the server, unanswered...
        smtp.refuse_held = True  # ... and, once let go, answered "try again later": never delivered
        alerter = start_alerter(stage.path, smtp.port)
        try:
            wait_for(smtp.arrived.is_set)
            os.kill(alerter.pid, signal.SIGKILL)  # kill -9 with the message on its way
            alerter.wait()
        finally:
            alerter.kill()
        assert state_of(stage, first) == ["pending"]  # the outbox still has it
        smtp.hold.set()
        assert smtp.mails == []

        alerter = start_alerter(stage.path, smtp.port)
        try:
            wait_for(lambda: state_of(stage, first) == ["sent"])
            assert len(smtp.mails) == 1
            os.kill(alerter.pid, signal.SIGKILL)  # killed again, after it was sent
            alerter.wait()
        finally:
            alerter.kill()

        alerter = start_alerter(stage.path, smtp.port)
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
