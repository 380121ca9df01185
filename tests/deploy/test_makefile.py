"""`make run` installs what the appliance needs and nothing else; `make test` adds the test and lint
tools. Read from what make would run in a fresh clone (`make -n`), and from pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.catalogue_mirror import REPO

TOOLS = ("pytest", "hypothesis", "mypy", "ruff", "selenium", "import-linter")


def planned(tmp_path: Path, target: str) -> list[str]:
    """The commands `make TARGET` would run in a fresh clone (no .venv yet)."""
    if not shutil.which("make"):
        pytest.skip("needs make")
    for name in ("Makefile", "pyproject.toml", "deploy/system-packages.sh"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, tmp_path / name)
    done = subprocess.run(
        ["make", "-n", "-C", str(tmp_path), target], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_make_run_installs_the_appliance_without_the_test_and_lint_tools(tmp_path: Path) -> None:
    steps = planned(tmp_path, "run")
    installs = [s for s in steps if "pip install" in s and "--upgrade pip" not in s]
    assert installs == [".venv/bin/python -m pip install --quiet -e ."]
    assert not any("--test" in s or "[dev" in s for s in steps)
    assert ".venv/bin/appliance lists compile" in steps
    runtime = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in runtime if d.split(">")[0].split("<")[0].split("=")[0].strip() in TOOLS]


def test_make_test_installs_the_tools_and_runs_every_check(tmp_path: Path) -> None:
    steps = planned(tmp_path, "test")
    assert ".venv/bin/python -m pip install --quiet -e '.[dev]'" in steps
    assert "sh deploy/system-packages.sh --test" in steps
    for check in (".venv/bin/ruff check .", ".venv/bin/mypy", ".venv/bin/lint-imports", ".venv/bin/pytest"):
        assert check in steps, check
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    for tool in TOOLS:
        assert any(d.startswith(tool) for d in dev), tool
    assert "make test" in (REPO / ".ci" / "run").read_text()
