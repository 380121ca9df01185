"""Servers a test starts as subprocesses (`appliance dns`, `appliance alerts`, the dashboard...), each
with its output in a log file that a failure shows, and a wait with a deadline that says what it waited
for."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Process:
    """A server started by a test: its output goes to `log` (read on failure)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.popen.returncode}:\n{self.output()}")

    def wait_saying(self, said: str, timeout: float = 30.0) -> None:
        """Wait until the server's output says `said` (it has started); fail if it exits first."""

        def ready() -> bool:
            self.check_alive()
            return said in self.output()

        wait_until(ready, f"{self.name} to say {said!r}", timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def start(name: str, argv: list[str], log: Path) -> Process:
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
    return Process(name, popen, log)


def wait_until(
    check: Callable[[], Any], what: str | Callable[[], str], timeout: float = 10.0, every: float = 0.1
) -> Any:
    """The first true value of check(), asked every `every` seconds; fails after `timeout`, saying what
    it waited for (`what`, or what() then: a server's log, say)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            said = what if isinstance(what, str) else what()
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {said}")
        time.sleep(every)
