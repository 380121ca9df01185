"""A Debian 12 root made by debootstrap (minbase) with install.sh run in it once (`--offline`: the bundled
lists): shared by the install test (which upgrades it) and the boot test (which boots it). Made once per
test run, removed afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _mirror() -> str:
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    # A clean environment: nothing of this machine's own pip or Python settings reaches the chroot.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env)


def install(root: Path, *more: str) -> subprocess.CompletedProcess[str]:
    """install.sh run in `root` as a centre's technician would, from the wheels (no start: a chroot)."""
    script = "/src/deploy/raspberry-pi/install.sh"
    return run("chroot", str(root), "sh", script, "--wheels", "/wheels", "--no-start", *more)


@dataclass(frozen=True)
class Installed:
    root: Path
    first: subprocess.CompletedProcess[str]  # install.sh's first run in the fresh root


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    if os.geteuid() != 0 or not shutil.which("debootstrap") or not shutil.which("nft"):
        pytest.skip("needs root, debootstrap and nftables (`make test` installs them)")
    base = tmp_path_factory.mktemp("chroot")
    target = base / "root"
    made = run("debootstrap", "--variant=minbase", "bookworm", str(target), _mirror())
    if made.returncode != 0:
        pytest.skip(f"debootstrap could not reach a Debian mirror: {made.stderr[-500:]}")
    wheels = target / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), str(REPO)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "var", "test-artifacts", "*.egg-info", "__pycache__", ".*_cache"
    )
    shutil.copytree(REPO, target / "src", ignore=ignore)
    shutil.copy("/etc/resolv.conf", target / "etc" / "resolv.conf")
    subprocess.run(["mount", "-t", "proc", "proc", str(target / "proc")], check=True)
    try:
        # The bundled lists: the boot test needs nothing downloaded (the install test takes the recommended
        # set from its own mirror on its second run).
        yield Installed(target, install(target, "--offline"))
    finally:
        subprocess.run(["umount", "-l", str(target / "proc")], check=False)
        shutil.rmtree(base, ignore_errors=True)
