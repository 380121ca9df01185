"""install.sh, run for real in a Debian 12 root made by debootstrap in the test (minbase): it installs the
packages, the user, the folders with tight permissions, the program, the configuration, the units and the
rules, and a second run upgrades in place keeping configuration and data. The Python packages come from a
wheelhouse built here (install.sh --wheels), the Debian ones from the machine's own mirror.

Takes a few minutes; skipped without root or debootstrap (`make test` installs it)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("debootstrap") or not shutil.which("nft"),
    reason="needs root, debootstrap and nftables",
)


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


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
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
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target / "proc")], check=False)
        shutil.rmtree(base, ignore_errors=True)


def install(root: Path) -> subprocess.CompletedProcess[str]:
    return run(
        "chroot", str(root), "sh", "/src/deploy/raspberry-pi/install.sh", "--wheels", "/wheels", "--no-start"
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_install_sh_sets_up_a_fresh_debian_and_upgrades_in_place(root: Path) -> None:
    first = install(root)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Next:" in first.stdout and "users add" in first.stdout
    etc, var, units = (
        root / "etc" / "appliance",
        root / "var" / "lib" / "appliance",
        root / "etc" / "systemd" / "system",
    )
    # Folders and permissions: the data and the configuration readable by the appliance's user only.
    assert oct(var.stat().st_mode & 0o777) == "0o750" and oct(etc.stat().st_mode & 0o777) == "0o750"
    assert oct((etc / "appliance.yaml").stat().st_mode & 0o777) == "0o640"
    passwd = (root / "etc" / "passwd").read_text()
    assert "appliance:" in passwd and "/usr/sbin/nologin" in passwd.split("appliance:", 1)[1].split("\n")[0]
    # The program, the lists compiled by it, the units and the rules.
    assert (root / "opt" / "appliance" / "venv" / "bin" / "appliance").exists()
    assert (var / "index" / "filters.idx").stat().st_size > 0
    for unit in (
        "appliance-dns.service",
        "appliance-proxy.service",
        "appliance-dashboard.service",
        "appliance-lists.service",
        "appliance-lists.timer",
    ):
        assert "/opt/appliance/venv/bin/appliance" in (units / unit).read_text() or unit.endswith(".timer")
    rules = root / "etc" / "nftables.d" / "appliance.nft"
    checked = run("nft", "-c", "-f", str(rules))
    assert checked.returncode == 0, checked.stderr
    assert 'include "/etc/nftables.d/appliance.nft"' in (root / "etc" / "nftables.conf").read_text()
    verified = run(
        "systemd-analyze",
        "verify",
        "--man=no",
        f"--root={root}",
        *(
            f"/etc/systemd/system/{u}"
            for u in ("appliance-dns.service", "appliance-proxy.service", "appliance-dashboard.service")
        ),
    )
    assert verified.returncode == 0, verified.stderr
    # A second run upgrades in place: the centre's configuration and data stay as they are.
    config = etc / "appliance.yaml"
    config.write_text(config.read_text() + "\n# edited by the centre\n")
    before = digest(config), digest(var / "index" / "filters.idx")
    second = install(root)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert digest(config) == before[0] and "# edited by the centre" in config.read_text()
    assert (var / "index" / "filters.idx").exists()
