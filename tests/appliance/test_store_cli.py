"""`appliance users ...`, `appliance store check`: the first administrator is made on the command line,
with a password that is checked and stored only as a hash; no account exists before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from appliance.store import staff
from appliance.store.schema import connect

PASSWORD = "correct horse battery"


def _run(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args, "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_first_administrator_is_added_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\n", encoding="utf-8")
    assert "maria" not in _run(config, "users", "list").stdout
    added = _run(
        config,
        "users",
        "add",
        "maria",
        "--name",
        "Maria",
        "--role",
        "admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert "Added maria (Administrator)" in added.stdout
    listed = _run(config, "users", "list").stdout
    assert "maria" in listed and "Administrator" in listed
    db = connect(tmp_path / "var" / "appliance.sqlite")
    assert staff.sign_in(db, "maria", PASSWORD, "127.0.0.1", 0.0).role is staff.Role.ADMIN
    (stored,) = db.execute("SELECT password FROM staff").fetchone()
    assert PASSWORD not in stored


def test_a_weak_password_or_a_taken_name_is_refused_with_a_reason(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\n", encoding="utf-8")
    weak = _run(config, "users", "add", "maria", "--password-stdin", stdin="short\n")
    assert weak.returncode == 2 and "at least 10 characters" in weak.stderr
    assert _run(config, "users", "add", "maria", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    again = _run(config, "users", "add", "MARIA", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 2 and "already a staff account" in again.stderr


def test_store_check_runs_the_integrity_check(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\n", encoding="utf-8")
    checked = _run(config, "store", "check")
    assert checked.returncode == 0 and checked.stdout.strip().endswith(": ok")
