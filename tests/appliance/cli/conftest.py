"""What the commands' tests share: the `appliance` command run as a process, and the fixtures of the
commands' subjects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.appliance.bundles.conftest import head_office

__all__ = ["head_office", "run_appliance"]


def run_appliance(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args, "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
