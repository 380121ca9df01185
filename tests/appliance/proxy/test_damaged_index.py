"""The compiled index damaged in place under a running `appliance proxy`: its workers come back on the
previous good index (a reload, or a worker started again after SIGBUS), and a worker that cannot start
at all is started again less and less often, never in a loop.

Two compiles tell the indexes apart: the first (kept as `filters.idx.previous`) lists pornhub.com; the
second lists newly-listed.example too."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.lists import compile_lists
from appliance.proxy.supervisor import RESTART_MAX_S, RESTART_S, STEADY_S, restart_delay
from appliance.storage import previous_index
from tests.appliance.proxy.conftest import (
    KIDS,
    Internet,
    Origin,
    Proxy,
    Sites,
    fetch,
    write_config,
)
from tests.own_list import with_own_list
from tests.ports import free_port

NEW = "newly-listed.example"


@pytest.mark.parametrize(
    ("last_delay", "ran_s", "delay"),
    [
        pytest.param(0.0, 0.5, RESTART_S, id="a-worker-of-the-first-start"),
        pytest.param(RESTART_S, 0.5, 2 * RESTART_S, id="died-again-as-it-started"),
        pytest.param(8.0, 3.0, 16.0, id="and-again"),
        pytest.param(RESTART_MAX_S, 1.0, RESTART_MAX_S, id="never-longer-than-the-most"),
        pytest.param(40.0, 1.0, RESTART_MAX_S, id="doubling-capped"),
        pytest.param(32.0, STEADY_S, RESTART_S, id="served-a-while-first"),
    ],
)
def test_a_worker_that_keeps_dying_waits_longer_each_time(last_delay: float, ran_s: float, delay: float):
    assert restart_delay(last_delay, ran_s) == delay


@dataclass
class Running:
    proxy: Proxy
    log: Path
    origin: Origin

    def status(self, host: str) -> int | None:
        """The status a KIDS device gets for http://host/ (None: the connection failed)."""
        try:
            return fetch(self.proxy, KIDS, f"http://{host}:{self.origin.http_port}/")[0]
        except OSError:
            return None

    def until(self, host: str, status: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.status(host) != status:
            assert time.monotonic() < deadline, f"{host} never got {status}:\n{self.log.read_text()}"
            time.sleep(0.2)

    @property
    def index(self) -> Path:
        return load_config(self.proxy.config).index_path


@pytest.fixture
def running(tmp_path: Path, origin: Origin, internet: Internet, sites: Sites) -> Iterator[Running]:
    shipped = resources.files("appliance") / "defaults" / "lists" / "adult.hosts"
    adult = tmp_path / "adult.hosts"
    adult.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    port = free_port()
    config_path = write_config(tmp_path, origin, port, internet.address, sites=sites)
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(with_own_list(text, adult), encoding="utf-8")
    config = load_config(config_path)
    compile_lists(config, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    with adult.open("a", encoding="utf-8") as f:
        f.write(f"0.0.0.0 {NEW}\n")
    compile_lists(config, now=dt.datetime.now(dt.UTC))
    log_path = tmp_path / "proxy.log"
    log = log_path.open("wb")
    command = [sys.executable, "-m", "appliance.cli", "proxy", "--config", str(config_path), "--workers", "2"]
    process = subprocess.Popen(command, stdout=log, stderr=log)
    proxy = Proxy(port, config.data_dir, config.ca_dir / "mitmproxy-ca-cert.pem", process, config_path)
    found = Running(proxy, log_path, origin)
    try:
        found.until(NEW, 403, timeout=60)  # started, on the second index
        yield found
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()


def test_an_index_truncated_under_the_proxy_is_replaced_by_the_previous_good_one(running: Running):
    os.truncate(running.index, 0)
    for i in range(4):  # new hosts: each reads the index (a worker may die of SIGBUS on it)
        running.status(f"site-{i}.example")
    running.until(NEW, 200)  # the previous index does not list it
    assert running.status("www.pornhub.com") == 403
    log = running.log.read_text()
    assert "serving the previous good index" in log
    # Each worker at most died once on the damaged mapping and came back: no restart loop.
    ended = re.findall(r"proxy worker \d+ ended \((.*?)\)", log)
    assert len(ended) <= 2 and set(ended) <= {"killed by SIGBUS"}, log
    assert running.proxy.process.poll() is None


def test_a_worker_that_cannot_start_is_tried_again_less_and_less_often(running: Running):
    for path in (running.index, previous_index(running.index)):
        os.truncate(path, 0)  # nothing usable left: a worker cannot start
    # The running workers read the host table with pread and survive the damage (their look-ups fail
    # closed); killed (out of memory, say), the ones started in their place cannot start.
    pid = running.proxy.process.pid
    for worker in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        os.kill(int(worker), signal.SIGKILL)
    started = time.monotonic()
    while len(waits := re.findall(r"starting another in (\d+) s", running.log.read_text())) < 6:
        assert time.monotonic() - started < 60, running.log.read_text()
        time.sleep(0.5)
    log = running.log.read_text()
    assert "proxy worker cannot start" in log and "Traceback" not in log
    # Two workers, each waiting twice as long as before: 1, 2, 4 s (in whatever order they interleave).
    assert sorted(int(w) for w in waits) == [1, 1, 2, 2, 4, 4]
    compile_lists(load_config(running.proxy.config), now=dt.datetime.now(dt.UTC))  # a good index again
    running.until(NEW, 403, timeout=30)
