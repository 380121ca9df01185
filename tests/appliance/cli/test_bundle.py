"""`appliance bundle ...`: what the command line itself checks before head office's code runs."""

from __future__ import annotations

from pathlib import Path

from appliance.cli import main
from tests.appliance.bundles.conftest import HeadOffice


def test_versions_have_one_bound_everywhere(head_office: HeadOffice, tmp_path: Path) -> None:
    code = main(
        [
            "bundle",
            "build",
            str(head_office.source),
            "--out",
            str(tmp_path / "b"),
            "--version",
            "1" + "0" * 20,
        ]
    )
    assert code == 2 and not (tmp_path / "b").exists()
