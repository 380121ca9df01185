"""The systemd units that go on the Pi: rendered by deploy/raspberry-pi/render-units.sh, accepted by
`systemd-analyze verify`, hardened (`systemd-analyze security --offline`), and with the least privilege:
only a unit binding a port below 1024 may, and the network's administration only where the router's
rules are read or their sets written (the refusals' half-minute run; the controls, which listen on
nothing)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config.sync import SyncSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "raspberry-pi"
SERVICES = (
    "appliance-dns",
    "appliance-proxy",
    "appliance-dashboard",
    "appliance-alerts",
    "appliance-lists",
    "appliance-sync",
    "appliance-refusals",
    "appliance-controls",
    "appliance-backup",
)

pytestmark = pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("opt")
    (prefix / "venv").symlink_to(Path(sys.executable).parent.parent)  # the venv this suite runs in
    out = tmp_path_factory.mktemp("units")
    subprocess.run(["sh", str(DEPLOY / "render-units.sh"), str(out), str(prefix)], check=True)
    return out


def test_systemd_accepts_every_unit(units: Path) -> None:
    files = sorted(str(p) for p in units.iterdir())
    assert len(files) == 13
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *files], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "appliance" in Path(files[0]).read_text() and "@PREFIX@" not in "".join(
        Path(f).read_text() for f in files
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_is_hardened(units: Path, service: str) -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(units / f"{service}.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= 2.5  # "OK" in systemd's words; docs/raspberry-pi.md has the figures


@pytest.mark.parametrize("service", SERVICES)
def test_capabilities_only_where_a_low_port_is_bound(units: Path, service: str) -> None:
    text = (units / f"{service}.service").read_text()
    bounding = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M)
    assert bounding is not None
    wanted = {"appliance-dns": "CAP_NET_BIND_SERVICE", "appliance-dashboard": "CAP_NET_BIND_SERVICE"}
    # Reading the firewall's refusal counts needs CAP_NET_ADMIN: a half-minute oneshot. Writing the
    # controls' sets needs it too: the one long-running service with it, which listens on nothing.
    admins = ("appliance-refusals", "appliance-controls")
    wanted |= dict.fromkeys(admins, "CAP_NET_ADMIN")
    assert bounding.group(1).strip() == wanted.get(service, "")
    assert ("CAP_NET_ADMIN" in text) == (service in admins) and "User=appliance" in text
    oneshots = ("appliance-lists", "appliance-sync", "appliance-refusals", "appliance-backup")  # on timers
    if service not in oneshots:
        assert "Restart=on-failure" in text


def _megabytes(text: str, key: str) -> int:
    found = re.search(rf"^{key}=(\d+)M$", text, re.M)
    assert found, f"no {key}=<n>M"
    return int(found.group(1))


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_a_memory_limit_that_fits_a_1gb_pi(units: Path, service: str) -> None:
    text = (units / f"{service}.service").read_text()
    high, most = _megabytes(text, "MemoryHigh"), _megabytes(text, "MemoryMax")
    assert 0 < high < most <= 640  # the kernel slows a unit before it kills it; no unit may take the Pi


def test_the_long_running_services_fit_a_1gb_pi_together(units: Path) -> None:
    """The DNS filter and the dashboard at their limits still leave the proxy its measured working set
    (about 300 MB, the comment in appliance-proxy.service), on the 900 MB a 1 GB Pi has for programs."""
    limits = {s: _megabytes((units / f"{s}.service").read_text(), "MemoryMax") for s in SERVICES}
    assert limits["appliance-dns"] + limits["appliance-dashboard"] + 300 <= 900


def test_a_stuck_sync_is_stopped_only_after_its_own_deadline_and_check(units: Path) -> None:
    """`appliance sync` gives up by itself at sync.deadline_s and records it; the unit's limit is the
    backstop above that and the swap's health check, never the first to fire."""
    text = (units / "appliance-sync.service").read_text()
    found = re.search(r"^TimeoutStartSec=(\d+)min$", text, re.M)
    assert found
    defaults = SyncSettings(url="https://head-office.example")
    assert defaults.deadline_s + defaults.health_timeout_s < int(found.group(1)) * 60
