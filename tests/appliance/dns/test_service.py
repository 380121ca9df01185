"""`appliance dns` as an operator runs it: it answers, reloads on SIGHUP, stops cleanly on SIGTERM, and
says clearly what is wrong when it cannot start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dns.message
import dns.query

from appliance.config import load_config
from appliance.heartbeat import STALE_S, last_beats
from appliance.lists import compile_lists
from tests.appliance.dns.conftest import KIDS, PROFILES, FakeUpstream, answers, config_text
from tests.ports import free_port

APPLIANCE = [sys.executable, "-m", "appliance.cli"]


def _config(tmp_path: Path, upstream: FakeUpstream) -> Path:
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(PROFILES, encoding="utf-8")
    config = tmp_path / "appliance.yaml"
    config.write_text(config_text(tmp_path / "var", profiles, [upstream.address]), encoding="utf-8")
    return config


def _ask(port: int, name: str, timeout: float = 10.0) -> dns.message.Message:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return dns.query.udp(
                dns.message.make_query(name, "A"), "127.0.0.1", port=port, source=KIDS, timeout=0.5
            )
        except (TimeoutError, ConnectionRefusedError, dns.exception.Timeout):
            if time.monotonic() > deadline:
                raise


def test_the_dns_command_answers_says_it_is_alive_reloads_and_stops(tmp_path: Path, upstream: FakeUpstream):
    config = _config(tmp_path, upstream)
    compile_lists(load_config(config), now=datetime.now(UTC))
    port = free_port()
    proc = subprocess.Popen(
        [*APPLIANCE, "dns", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        assert answers(_ask(port, "www.pornhub.com")) == [("www.pornhub.com", "A", "192.168.50.1")]
        # Its heartbeat, which the overview reads to say the DNS filter runs.
        alive = last_beats(tmp_path / "var")
        assert "dns" in alive and time.time() - alive["dns"] < STALE_S
        (tmp_path / "profiles.yaml").write_text(
            PROFILES.replace("    blocked_answer: block-page\n", "    blocked_answer: zero\n"),
            encoding="utf-8",
        )
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while answers(_ask(port, "www.pornhub.com")) != [("www.pornhub.com", "A", "0.0.0.0")]:
            assert time.monotonic() < deadline, "the reload did not apply"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert f"answering on 127.0.0.1:{port}" in out
    assert "reloaded" in out
    assert "stopped after" in out


def _dns_refused(config: Path, listen: str = "127.0.0.1:0") -> subprocess.CompletedProcess[str]:
    """`appliance dns` that is expected to refuse to start."""
    return subprocess.run(
        [*APPLIANCE, "dns", "--config", str(config), "--listen", listen],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_without_compiled_lists_the_command_says_what_to_run(tmp_path: Path, upstream: FakeUpstream):
    config = _config(tmp_path, upstream)
    done = _dns_refused(config)
    assert done.returncode == 2
    assert "appliance lists compile" in done.stderr


def test_a_bad_listen_address_is_named(tmp_path: Path, upstream: FakeUpstream):
    config = _config(tmp_path, upstream)
    compile_lists(load_config(config), now=datetime.now(UTC))
    done = _dns_refused(config, "127.0.0.1:99999")
    assert done.returncode == 2
    assert "--listen" in done.stderr and "99999" in done.stderr


def test_a_device_with_an_unknown_profile_is_refused_with_its_file(tmp_path: Path, upstream: FakeUpstream):
    config = _config(tmp_path, upstream)
    config.write_text(config.read_text().replace("profile: strict}", "profile: strcit}"), encoding="utf-8")
    compile_lists(load_config(config), now=datetime.now(UTC))
    done = _dns_refused(config)
    assert done.returncode == 2
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "strcit" in text)
    assert f"{config}:{line}: device 'strict-pc': no profile 'strcit'" in done.stderr
    # `appliance check` names it the same way, before anything is started.
    checked = subprocess.run([*APPLIANCE, "check", "--config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 1
    assert f"{config}:{line}: device 'strict-pc': no profile 'strcit'" in checked.stdout
