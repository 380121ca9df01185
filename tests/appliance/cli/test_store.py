"""`appliance store check` and `appliance store backup`: the event store's integrity and its backups, as
an operator checks and makes them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from appliance.store.audit import record
from appliance.store.backup import back_up, last_backup
from appliance.store.schema import connect
from tests.appliance.cli.conftest import run_appliance


def test_store_check_runs_the_integrity_check(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\n", encoding="utf-8")
    checked = run_appliance(config, "store", "check")
    assert checked.returncode == 0 and checked.stdout.strip().endswith(": ok")


def test_store_backup_copies_the_store_whole_and_remembers_it(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\n", encoding="utf-8")
    db = connect(tmp_path / "var" / "appliance.sqlite")
    record(db, 1_800_000_000.0, None, "appliance", "test", "the store", "kept")
    db.close()

    made = run_appliance(config, "store", "backup")
    assert made.returncode == 0, made.stderr
    (copy,) = (tmp_path / "var" / "backups").glob("appliance-*.sqlite")
    assert f"to {copy}" in made.stdout
    assert copy.stat().st_mode & 0o777 == 0o600, "a backup holds children's names: its owner only"
    kept = sqlite3.connect(copy).execute("SELECT detail FROM audit WHERE action = 'test'").fetchall()
    assert kept == [("kept",)]
    remembered = last_backup(connect(tmp_path / "var" / "appliance.sqlite"))
    assert remembered is not None and remembered.path == str(copy)


def test_store_backup_keeps_the_newest_copies_only(tmp_path: Path) -> None:
    store = tmp_path / "appliance.sqlite"
    connect(store).close()
    made = [back_up(store, tmp_path / "usb", now=1_800_000_000 + day * 86_400, keep=2) for day in range(4)]
    assert sorted((tmp_path / "usb").iterdir()) == made[-2:]
    remembered = last_backup(connect(store))
    assert remembered is not None and remembered.ts == 1_800_000_000 + 3 * 86_400


def test_a_failed_backup_says_why_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\n", encoding="utf-8")
    not_a_folder = tmp_path / "usb"
    not_a_folder.write_text("a file where the folder should be", encoding="utf-8")
    failed = run_appliance(config, "store", "backup", "--to", str(not_a_folder))
    assert failed.returncode == 1
    assert "cannot back up the event store" in failed.stderr and str(not_a_folder) in failed.stderr
    assert last_backup(connect(tmp_path / "var" / "appliance.sqlite")) is None
