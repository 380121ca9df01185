"""`appliance dns` with its query log on a disk that fills up (an SD card): every question is still
answered; the events of the full disk are kept and written when there is room again, with the names
first asked while the disk was full (whose answers were defined then, once) named again afterwards; the
store stays whole and its events all name what exists. A small tmpfs of the test's own (root only)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from appliance.config import load_config
from appliance.lists import compile_lists
from tests.appliance.dns.conftest import PROFILES, TEENS, FakeUpstream, config_text
from tests.conftest import SmallDisk, assert_store_whole
from tests.ports import free_port

APPLIANCE = [sys.executable, "-m", "appliance.cli"]


def _events(store: Path) -> list[str]:
    with sqlite3.connect(store) as db:
        return [host for (host,) in db.execute("SELECT host FROM event_log ORDER BY ts")]


def test_the_dns_filter_on_a_full_disk_answers_and_its_log_catches_up_when_there_is_room(
    tmp_path: Path, upstream: FakeUpstream, small_disk: SmallDisk
):
    names = [f"site-{i}.example" for i in range(15)]
    for i, name in enumerate(names):
        upstream.add(name, "A", f"198.51.100.{i + 1}")
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(PROFILES, encoding="utf-8")  # teens: `log_allowed: event`, every answer an event
    store = small_disk.path / "appliance.sqlite"
    config = tmp_path / "appliance.yaml"
    text = config_text(tmp_path / "var", profiles, [upstream.address])
    config.write_text(text.replace("dns:\n", f"dns:\n  events_path: {store}\n", 1), encoding="utf-8")
    compile_lists(load_config(config), now=datetime.now(UTC))
    port = free_port()
    log = tmp_path / "dns.log"
    command = [*APPLIANCE, "dns", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out)

    def ask(name: str) -> str:
        deadline = time.monotonic() + 15
        while True:
            try:
                reply = dns.query.udp(
                    dns.message.make_query(name, "A"), "127.0.0.1", port=port, source=TEENS, timeout=0.5
                )
                return str(dns.rcode.to_text(reply.rcode()))
            except dns.exception.Timeout:
                assert time.monotonic() < deadline and process.poll() is None, log.read_text()

    def logged(want: int) -> list[str]:
        deadline = time.monotonic() + 15
        while len(found := _events(store)) < want:
            assert time.monotonic() < deadline, f"{len(found)} events of {want}:\n{log.read_text()}"
            time.sleep(0.2)
        return found

    try:
        for name in names[:5]:
            assert ask(name) == "NOERROR"
        assert logged(5) == names[:5]

        small_disk.fill()
        for _ in range(2):  # new names while full: their answers are defined in these batches only
            for name in names[5:10]:
                assert ask(name) == "NOERROR"  # answered all the same
        time.sleep(1.0)  # handed over (four times a second) and refused
        assert len(_events(store)) == 5

        small_disk.free()
        for name in names[5:]:  # those again (remembered: not defined again), and five new ones
            assert ask(name) == "NOERROR"
        found = logged(5 + 10 + 10)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert found == names[:5] + names[5:10] * 2 + names[5:]
    assert len(_events(store)) == 25
    assert_store_whole(store)
    text = log.read_text()
    assert text.count("the disk is full") == 1, text
    assert "writing again" in text
    assert "cannot rollback" not in text and "FOREIGN KEY" not in text
    assert os.path.getsize(store) > 0
