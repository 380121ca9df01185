"""install.sh, run for real in a Debian 12 root made by debootstrap in the test (minbase): it installs the
packages, the user, the folders with tight permissions, the program, the configuration, the units and the
rules, and a second run upgrades in place keeping configuration and data. The Python packages come from a
wheelhouse built here (install.sh --wheels), the Debian ones from the machine's own mirror.

The first run keeps the bundled lists (--offline); the second takes the list catalogue's recommended preset
from a mirror the test serves on loopback (--lists-mirror), laid out as head office's would be and built
from the real lists in ../shared/data where present (UT1 categories packed as UT1 publishes them), small
generated ones otherwise; the third goes back to the bundled lists, for the boot test that follows.

Takes a few minutes; skipped without root or debootstrap (`make test` installs it)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from appliance.bundles.repository import Repository
from appliance.config.catalogue import Catalogue, load_catalogue
from filters.sources import Format
from tests.catalogue_mirror import build_mirror, probe_name, shared_copy
from tests.deploy.conftest import Installed, install, run

RECOMMENDED = "recommended"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, bool]]]:
    """The recommended preset's lists served on loopback (the chroot shares this machine's network):
    its address, and which entries are the real lists."""
    root = tmp_path_factory.mktemp("mirror")
    catalogue = load_catalogue()
    real = build_mirror(root / "lists", catalogue, catalogue.presets[RECOMMENDED].entries)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/lists", real
    server.shutdown()


def probes(catalogue: Catalogue, real: dict[str, bool]) -> dict[str, str]:
    """A name each of a few recommended lists blocks that the bundled demo lists do not: from the real
    list where the mirror has it (its first domain), else the generated stand-in's name."""
    out = {}
    for name in ("ut1-phishing", "malware-filter-phishing", "ut1-malware", "hagezi-tif", "stevenblack-porn",
                 "hagezi-nsfw", "ut1-drogue", "ut1-gambling", "hagezi-doh-vpn-proxy-bypass"):  # fmt: skip
        entry = catalogue.entries[name]
        copy = shared_copy(entry) if real.get(name) else None
        if copy is None:
            out[name] = probe_name(entry)
            continue
        lines = (copy / "domains" if entry.format is Format.UT1 else copy).read_text(errors="replace")
        for line in lines.splitlines():
            words = line.split("#")[0].split()
            if not words or line.startswith(("!", "[")):
                continue
            host = words[-1].strip("|^")
            if "." in host and not host.replace(".", "").isdigit() and "localhost" not in host:
                out[name] = host
                break
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_install_sh_sets_up_a_fresh_debian_and_upgrades_in_place(
    installed: Installed, mirror: tuple[str, dict[str, bool]]
) -> None:
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
    for unit in (
        "appliance-dns",
        "appliance-proxy",
        "appliance-dashboard",
        "appliance-alerts",
        "appliance-controls",
        "nftables",
        "dnsmasq",
    ):
        assert f"{unit}.service" in enabled, unit
    assert {
        "appliance-lists.timer",
        "appliance-sync.timer",
        "appliance-refusals.timer",
        "appliance-backup.timer",
    } <= enabled
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
    # The bundled lists, as --offline asked: the demo preset, compiled, and said to be minimal.
    config = etc / "appliance.yaml"
    assert "  preset: demo\n" in config.read_text() and "lists.preset is demo" in first.stdout
    assert "protection is minimal: only the bundled demo lists" in first.stdout
    # A second run upgrades in place: the centre's configuration and data stay as they are.
    config.write_text(config.read_text() + "\n# edited by the centre\n")
    edited = config.read_text()
    # The second run also joins head office's bundles: its root installed, a sync section added; and
    # takes the recommended lists from the mirror: only the lines for them change.
    made = Repository.create(root / "tmp" / "hq", root / "tmp" / "hq-keys", datetime.now(UTC))
    root_json = "/tmp/hq/metadata/1.root.json"
    address, real = mirror
    # The lists' own servers are this machine's closed port 443 inside the root: were the mirror to miss
    # a file, the download would fail at once rather than leave for the Internet.
    hosts = root / "etc" / "hosts"
    kept_hosts = hosts.read_text() if hosts.exists() else ""
    catalogue = load_catalogue()
    upstream = sorted({urlsplit(e.url).hostname or "" for e in catalogue.entries.values() if e.url})
    hosts.write_text(kept_hosts + "".join(f"127.0.0.1 {host}\n" for host in upstream))
    second = install(
        root, "--head-office-url", "https://hq.example/lists", "--head-office-root", root_json,
        "--preset", RECOMMENDED, "--lists-mirror", address,
    )  # fmt: skip
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    now = config.read_text()
    lists_lines = edited.replace(
        "  preset: demo\n", f"  preset: {RECOMMENDED}\n  fetch:\n    mirror: {address}\n", 1
    )
    assert now == lists_lines + "\nsync:\n  url: https://hq.example/lists\n  ring: stable\n"
    assert oct(config.stat().st_mode & 0o777) == "0o640" and config.stat().st_gid == etc.stat().st_gid
    # Every list of the recommended preset came from the mirror and was compiled.
    report_file = var / "index" / "report.json"
    compiled = {s["source"]: s for s in json.loads(report_file.read_text())["sources"]}
    log = (var / "install-compile.log").read_text()
    assert sorted(compiled) == sorted(catalogue.presets[RECOMMENDED].entries), log[-6000:]
    for name in catalogue.presets[RECOMMENDED].entries:
        assert compiled[name]["entries"] > 0 and not compiled[name]["rejected"], compiled[name]
        if real.get(name):
            expected = catalogue.entries[name].entries
            if catalogue.entries[name].counted == "data":
                assert abs(compiled[name]["entries"] - expected) <= max(10, expected // 10), name
    assert "protection is minimal" not in second.stdout
    # Names the bundled lists lack are blocked now, each by its list.
    for name, host in probes(catalogue, real).items():
        found = run(
            "chroot", str(root), "/opt/appliance/venv/bin/appliance", "lists", "match", host, "--config",
            "/etc/appliance/appliance.yaml",
        )  # fmt: skip
        assert "listed as blocked" in found.stdout and name in found.stdout, (name, host, found.stdout)
    checked = run("chroot", str(root), "/opt/appliance/venv/bin/appliance", "check", "--config",
                  "/etc/appliance/appliance.yaml")  # fmt: skip
    assert checked.returncode == 0 and "protection is minimal" not in checked.stdout, checked.stdout
    assert "no list feeds" not in checked.stdout, checked.stdout
    installed_root = etc / "head-office-root.json"
    assert installed_root.read_bytes() == (made.metadata / "1.root.json").read_bytes()
    assert oct(installed_root.stat().st_mode & 0o777) == "0o644"
    assert (var / "index" / "filters.idx").exists()  # compiled anew from the kept configuration
    # A third run goes back to the bundled lists (what the boot test runs on): only the preset changes.
    before = config.read_text()
    third = install(root, "--offline")
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert config.read_text() == before.replace(f"  preset: {RECOMMENDED}\n", "  preset: demo\n", 1)
    compiled = {s["source"] for s in json.loads(report_file.read_text())["sources"]}
    assert compiled == set(catalogue.presets["demo"].entries)
    hosts.write_text(kept_hosts)
