"""install.sh, run for real in a Debian 12 root made by debootstrap in the test (minbase): it installs the
packages, the user, the folders with tight permissions, the program, the configuration, the units and the
rules, and a second run upgrades in place keeping configuration and data. The Python packages come from a
wheelhouse built here (install.sh --wheels), the Debian ones from the machine's own mirror.

Takes a few minutes; skipped without root or debootstrap (`make test` installs it)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from appliance.bundles.repository import Repository
from tests.deploy.conftest import Installed, install, run


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_install_sh_sets_up_a_fresh_debian_and_upgrades_in_place(installed: Installed) -> None:
    root, first = installed.root, installed.first
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
    assert (root / "usr" / "bin" / "sqlite3").exists()  # the backup in docs/raspberry-pi.md uses it
    assert (var / "index" / "filters.idx").stat().st_size > 0
    for unit in (
        "appliance-dns.service",
        "appliance-proxy.service",
        "appliance-dashboard.service",
        "appliance-lists.service",
        "appliance-lists.timer",
    ):
        assert "/opt/appliance/venv/bin/appliance" in (units / unit).read_text() or unit.endswith(".timer")
    # Enabled for the next boot (links only: nothing runs in a chroot), with the rules and DHCP.
    enabled = {link.name for link in units.glob("*.wants/*") if link.is_symlink()}
    for unit in ("appliance-dns", "appliance-proxy", "appliance-dashboard", "nftables", "dnsmasq"):
        assert f"{unit}.service" in enabled, unit
    assert {"appliance-lists.timer", "appliance-sync.timer"} <= enabled
    rules = root / "etc" / "nftables.d" / "appliance.nft"
    checked = run("nft", "-c", "-f", str(rules))
    assert checked.returncode == 0, checked.stderr
    # The staff network on its own interface (VLAN 60 on the children's cable), which the rules key on.
    assert 'iifname "eth1.60" tcp dport 8081 accept' in rules.read_text()
    network = root / "etc" / "systemd" / "network"
    assert {p.name for p in network.iterdir()} >= {
        "10-appliance-children.network",
        "20-appliance-staff.netdev",
        "20-appliance-staff.network",
    }
    assert "Address=192.168.60.1/24" in (network / "20-appliance-staff.network").read_text()
    assert "systemd-networkd.service" in enabled
    assert not any(link.name == "systemd-networkd-wait-online.service" for link in units.rglob("*"))
    dhcp = (root / "etc" / "dnsmasq.d" / "appliance.conf").read_text()
    assert "interface=eth1.60" in dhcp and "dhcp-range=set:staff,192.168.60.100" in dhcp
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
    edited = config.read_text()
    # The second run also joins head office's bundles: its root installed, a sync section added.
    made = Repository.create(root / "tmp" / "hq", root / "tmp" / "hq-keys", datetime.now(UTC))
    root_json = "/tmp/hq/metadata/1.root.json"
    second = install(root, "--head-office-url", "https://hq.example/lists", "--head-office-root", root_json)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    now = config.read_text()
    assert (
        now.startswith(edited)
        and now[len(edited) :] == "\nsync:\n  url: https://hq.example/lists\n  ring: stable\n"
    )
    installed_root = etc / "head-office-root.json"
    assert installed_root.read_bytes() == (made.metadata / "1.root.json").read_bytes()
    assert oct(installed_root.stat().st_mode & 0o777) == "0o644"
    assert (var / "index" / "filters.idx").exists()  # compiled anew from the kept configuration
