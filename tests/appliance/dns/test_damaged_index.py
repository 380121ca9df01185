"""A compiled index damaged in place under a running `appliance dns` (`truncate`, `cp` over the mapped
file): the filter comes back on the previous good index, by a reload when nothing read the damaged
mapping first, else by the restart systemd gives it after SIGBUS, instead of failing to start again.

Two compiles make the two indexes tell themselves apart: the first (kept as `filters.idx.previous`) lists
pornhub.com; the second lists newly-listed.example too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from appliance.config import load_config
from appliance.lists import compile_lists
from appliance.storage import previous_index
from tests.appliance.dns.conftest import KIDS, PROFILES, FakeUpstream, answers, config_text
from tests.own_list import with_own_list
from tests.ports import free_port

APPLIANCE = [sys.executable, "-m", "appliance.cli"]
NEW = "newly-listed.example"
BLOCK_PAGE = "192.168.50.1"  # the kids profile's block answer in the test configuration


def _two_compiles(tmp_path: Path, upstream: FakeUpstream) -> Path:
    """The test configuration with its adult list in `tmp_path`, compiled twice (NEW only the second
    time); the configuration file."""
    shipped = resources.files("appliance") / "defaults" / "lists" / "adult.hosts"
    adult = tmp_path / "adult.hosts"
    adult.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(PROFILES, encoding="utf-8")
    config = tmp_path / "appliance.yaml"
    text = config_text(tmp_path / "var", profiles, [upstream.address])
    config.write_text(with_own_list(text, adult), encoding="utf-8")
    compile_lists(load_config(config), now=datetime(2026, 1, 1, tzinfo=UTC))
    with adult.open("a", encoding="utf-8") as f:
        f.write(f"0.0.0.0 {NEW}\n")
    compile_lists(load_config(config), now=datetime.now(UTC))
    return config


class Supervised:
    """`appliance dns` as systemd runs it (Restart=on-failure): started again whenever it has ended."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log, self.port = config, log, free_port()
        self.ended: list[int] = []  # exit codes of the runs that ended (-7: killed by SIGBUS)
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        out = self.log.open("ab")
        command = [*APPLIANCE, "dns", "--config", str(self.config), "--listen", f"127.0.0.1:{self.port}"]
        return subprocess.Popen(command, stdout=out, stderr=out)

    def keep_running(self) -> None:
        code = self.process.poll()
        if code is not None:
            self.ended.append(code)
            self.process = self._start()

    def ask(self, name: str) -> dns.message.Message | None:
        """The answer to `name` from a KIDS device; None if none came (starting, or just died)."""
        self.keep_running()
        try:
            return dns.query.udp(
                dns.message.make_query(name, "A"), "127.0.0.1", port=self.port, source=KIDS, timeout=0.5
            )
        except (dns.exception.Timeout, ConnectionRefusedError):
            return None

    def blocked(self, name: str, timeout: float = 20.0) -> bool:
        """Whether `name` gets the block page (False: answered from upstream), asked until answered."""
        deadline = time.monotonic() + timeout
        while (reply := self.ask(name)) is None:
            assert time.monotonic() < deadline, f"no answer for {name}:\n{self.log.read_text()}"
            time.sleep(0.1)
        return answers(reply) == [(name, "A", BLOCK_PAGE)]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)


@pytest.fixture
def supervised(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Supervised]:
    config = _two_compiles(tmp_path, upstream)
    running = Supervised(config, tmp_path / "dns.log")
    yield running
    running.stop()


def _index(supervised: Supervised) -> Path:
    return load_config(supervised.config).index_path


def test_the_compile_keeps_the_previous_good_index_and_serves_a_read_only_one(supervised: Supervised):
    index = _index(supervised)
    assert os.stat(index).st_mode & 0o777 == 0o444
    assert previous_index(index).is_file()
    assert os.stat(index).st_ino != os.stat(previous_index(index)).st_ino
    assert supervised.blocked(NEW) and supervised.blocked("www.pornhub.com")


def test_an_index_truncated_while_nothing_reads_it_is_reloaded_onto_the_previous_good_one(
    supervised: Supervised,
):
    assert supervised.blocked(NEW)
    os.truncate(_index(supervised), 0)  # `truncate -s 0 filters.idx`, in place under the mapping
    # The file watch (every 2 s) notices the change; nothing asks meanwhile, so nothing reads the
    # damaged mapping: the reload checks the file, refuses it and loads the previous good index.
    deadline = time.monotonic() + 15
    while "reloaded" not in supervised.log.read_text():
        assert time.monotonic() < deadline, supervised.log.read_text()
        time.sleep(0.2)
    assert "serving the previous good index" in supervised.log.read_text()
    assert not supervised.blocked(NEW)  # the previous index does not list it
    assert supervised.blocked("www.pornhub.com")
    assert supervised.ended == []  # reloaded, never restarted
    assert "filters.idx: empty file" in supervised.log.read_text()


def test_an_index_truncated_under_questions_comes_back_on_the_previous_good_one(supervised: Supervised):
    """Questions that meet the truncated file (the host table is read with pread, so no SIGBUS) cost
    at most their own answers; the watch reloads onto the previous good index, and the filter stays up.
    Were it killed (a mapped page of another section), it would start again on the previous one."""
    assert supervised.blocked(NEW)
    os.truncate(_index(supervised), 0)
    for i in range(5):  # new names: each reads the index
        supervised.ask(f"name-{i}.example")
    deadline = time.monotonic() + 15
    while supervised.blocked(NEW):  # (answered from the cache until the reload)
        assert time.monotonic() < deadline, supervised.log.read_text()
        time.sleep(0.2)
    assert supervised.blocked("www.pornhub.com")
    assert supervised.ended in ([], [-signal.SIGBUS])
    assert supervised.ask("en.wikipedia.org") is not None
    assert supervised.process.poll() is None


def test_an_index_overwritten_by_cp_is_checked_at_start_and_the_previous_one_served(supervised: Supervised):
    index = _index(supervised)
    supervised.stop()
    # `cp other-file filters.idx` as root writes through the read-only bits, into the same inode.
    damaged = bytearray(index.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # same size, same header: only the checksum tells
    with open(index, "r+b") as f:
        f.write(damaged)
    supervised.keep_running()
    assert not supervised.blocked(NEW)
    assert supervised.blocked("www.pornhub.com")
    assert "body checksum mismatch" in supervised.log.read_text()
    assert "serving the previous good index" in supervised.log.read_text()
