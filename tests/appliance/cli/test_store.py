"""`appliance store check`: the event store's integrity, as an operator checks it."""

from __future__ import annotations

from pathlib import Path

from tests.appliance.cli.conftest import run_appliance


def test_store_check_runs_the_integrity_check(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\n", encoding="utf-8")
    checked = run_appliance(config, "store", "check")
    assert checked.returncode == 0 and checked.stdout.strip().endswith(": ok")
