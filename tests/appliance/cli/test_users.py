"""`appliance users ...`: the first administrator is made on the command line, with a password that is
checked and stored only as a hash; no account exists before."""

from __future__ import annotations

from pathlib import Path

from appliance.store import staff
from appliance.store.schema import connect
from tests.appliance.cli.conftest import run_appliance

PASSWORD = "correct horse battery"


def test_the_first_administrator_is_added_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\n", encoding="utf-8")
    assert "maria" not in run_appliance(config, "users", "list").stdout
    added = run_appliance(
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
    listed = run_appliance(config, "users", "list").stdout
    assert "maria" in listed and "Administrator" in listed
    db = connect(tmp_path / "var" / "appliance.sqlite")
    assert staff.sign_in(db, "maria", PASSWORD, "127.0.0.1", 0.0).role is staff.Role.ADMIN
    (stored,) = db.execute("SELECT password FROM staff").fetchone()
    assert PASSWORD not in stored


def test_a_weak_password_or_a_taken_name_is_refused_with_a_reason(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\n", encoding="utf-8")
    weak = run_appliance(config, "users", "add", "maria", "--password-stdin", stdin="short\n")
    assert weak.returncode == 2 and "at least 10 characters" in weak.stderr
    assert (
        run_appliance(config, "users", "add", "maria", "--password-stdin", stdin=PASSWORD + "\n").returncode
        == 0
    )
    again = run_appliance(config, "users", "add", "MARIA", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 2 and "already a staff account" in again.stderr
