"""The DNS filter and the proxy workers map the compiled index once: after the nightly compile replaces
it and they reload, the index they started with is let go (a 1 GB Pi cannot keep two of the full set
resident in every process)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.lists import compile_lists
from tests.appliance.dns.conftest import PROFILES, FakeUpstream, config_text
from tests.ports import free_port

APPLIANCE = [sys.executable, "-m", "appliance.cli"]
RELOAD_WAIT_S = 20.0


def index_mappings(pid: int, index: Path) -> list[tuple[int, str]]:
    """(inode, path) of each mapping of `index` in the process, by /proc/PID/maps: a file replaced
    since it was mapped shows as "PATH (deleted)" with its old inode."""
    found = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(str(index)):
            found.append((int(fields[4]), fields[5]))
    return found


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _workers(proxy: subprocess.Popen[bytes]) -> list[int]:
    """The proxy's worker processes: its children (forked from it; their event writers are theirs)."""
    return _children(proxy.pid)


def _wait_for(what: str, condition: object, log: Path) -> None:
    deadline = time.monotonic() + RELOAD_WAIT_S
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}; log:\n{log.read_text(errors='replace')[-3000:]}"
        time.sleep(0.2)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    yield fake
    fake.close()


@pytest.fixture
def running(tmp_path: Path, upstream: FakeUpstream) -> Iterator[tuple[Path, Path, list[int], Path]]:
    """`appliance dns` and `appliance proxy --workers 2` on a compiled index: (config, index, the pids
    that map it, the log)."""
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(PROFILES, encoding="utf-8")
    proxy_port = free_port()
    config = tmp_path / "appliance.yaml"
    config.write_text(
        config_text(
            tmp_path / "var", profiles, [upstream.address], f"proxy:\n  listen: 127.0.0.1:{proxy_port}\n"
        ),
        encoding="utf-8",
    )
    index = load_config(config).index_path
    compile_lists(load_config(config), now=datetime.now(UTC))
    log = tmp_path / "services.log"
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        dns = subprocess.Popen(
            [*APPLIANCE, "dns", "--config", str(config), "--listen", f"127.0.0.1:{free_port()}"],
            stdout=out,
            stderr=out,
            env=env,
        )
        proxy = subprocess.Popen(
            [*APPLIANCE, "proxy", "--config", str(config), "--workers", "2"], stdout=out, stderr=out, env=env
        )
    try:
        _wait_for("the proxy's workers did not start", lambda: len(_workers(proxy)) == 2, log)
        pids = [dns.pid, *_workers(proxy)]
        _wait_for(
            "not every process mapped the index", lambda: all(index_mappings(p, index) for p in pids), log
        )
        yield config, index, pids, log
    finally:
        for process in (dns, proxy):
            process.terminate()
        for process in (dns, proxy):
            process.wait(30)


def test_after_a_compile_each_process_maps_only_the_new_index(
    running: tuple[Path, Path, list[int], Path],
) -> None:
    config, index, pids, log = running
    for _ in range(2):  # two nightly compiles
        compile_lists(load_config(config), now=datetime.now(UTC))
        inode = index.stat().st_ino
        _wait_for(
            "a process did not reload the new index",
            lambda inode=inode: all(inode in {i for i, _ in index_mappings(p, index)} for p in pids),
            log,
        )
    # The old index goes with the reload, or at the latest by the next look at the files (2 s).
    deadline = time.monotonic() + 5
    while any(len(index_mappings(p, index)) != 1 for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {p: index_mappings(p, index) for p in pids} == {p: [(inode, str(index))] for p in pids}
