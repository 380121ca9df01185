"""The installed appliance, booted. The Debian 12 root that install.sh set up (tests/deploy/conftest.py)
boots with systemd as its PID 1 inside the gateway's network namespace, with the units, the nftables
rules, dnsmasq, systemd-networkd's files and the configuration as install.sh left them: the shipped LAN
(192.168.50.0/24 on eth1, the WAN on eth0). The staff network is the shipped one (192.168.60.0/24) on a
second port, eth2, as the guide describes for a Pi with a second adapter: this kernel has no 802.1Q VLANs
for the shipped eth1.60 (the rules only see the interface's name). Two devices on the children's network
get their addresses from its DHCP: a tablet the centre named by its MAC with the under-10 profile, and a
visitor's phone nobody named (the guest profile); a staff laptop gets its address on the staff network.
An "internet" host gives the upstream DNS and a web server.

Proven from the devices: the DHCP lease names the appliance as gateway and DNS and the appliance knows the
tablet by its MAC from the lease; filtering follows each device's profile; the staff laptop reaches the
staff pages over HTTPS (the appliance's own certificate) and the children's devices cannot; and a
service killed (SIGKILL) is restarted by systemd while the gateway keeps filtering, never letting a query
out unfiltered in the meantime. Every namespace, process and control group is removed afterwards, even
on failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest

from appliance.bundles.build import build
from appliance.bundles.repository import Repository
from tests.deploy.conftest import Installed, run
from tests.deploy.test_router_netns import _CONNECT, _ECHO, echoed, in_netns, sh, veth

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("busybox") or not shutil.which("nsenter"),
    reason="needs root, busybox (its udhcpc is the devices' DHCP client) and nsenter",
)

GW = "192.168.50.1"  # the LAN address in the shipped appliance-pi.yaml and dnsmasq-appliance.conf
WAN, NET = "10.77.3.1", "10.77.3.2"
OUTSIDE_RESOLVER = "203.0.113.53"  # the internet host answers there too, unfiltered
TABLET_MAC, PHONE_MAC, LAPTOP_MAC = "02:00:00:00:50:03", "02:00:00:00:50:04", "02:00:00:00:60:05"
STAFF_GW = "192.168.60.1"  # the staff network's address in the shipped files
SERVICES = ("nftables", "dnsmasq", "appliance-dns", "appliance-proxy", "appliance-dashboard")

# Run as the new PID and mount namespace's first process: make the installed root "/" (pivot_root: the
# units' own mount namespaces need a real root mount, which chroot does not give) and hand over to systemd.
# /sys read-only, as container managers give it: udev does not run in a container, and systemd-networkd
# then configures the links without waiting for it.
_BOOT = """
set -e
mount --make-rprivate /
mount --bind "$1" "$1"
cd "$1"
mkdir -p .oldroot
pivot_root . .oldroot
mount -t proc proc /proc
mount -t sysfs -o ro sysfs /sys
umount -l /.oldroot
exec /usr/bin/env -i container=appliance-test /lib/systemd/systemd
"""

# The internet host's DNS server: every A question gets the internet host's own address.
_UPSTREAM = """
import socket, dns.message, dns.rdatatype, dns.rrset
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    data, peer = s.recvfrom(4096)
    query = dns.message.from_wire(data)
    answer = dns.message.make_response(query)
    question = query.question[0]
    if question.rdtype == dns.rdatatype.A:
        answer.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", {net!r}))
    s.sendto(answer.to_wire(), peer)
"""

# udhcpc's script: takes the lease the way a device's own network stack would, and writes it down.
_LEASE_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr add "$ip/${{mask:-24}}" dev "$interface"
    ip route add default via "$router"
    echo "$ip $router $dns" > {out} ;;
esac
"""

_ASK = """
import dns.exception, dns.message, dns.query, dns.rcode
q = dns.message.make_query({name!r}, "A")
try:
    r = dns.query.udp(q, {server!r}, timeout={timeout})
except dns.exception.Timeout:
    print("no answer")
else:
    print(dns.rcode.to_text(r.rcode()), *[rd.to_text() for rrset in r.answer for rd in rrset])
"""

_GET = """
import http.client
c = http.client.HTTPConnection({host!r}, 80, timeout=10)
c.request("GET", {path!r}, headers={{"Host": {name!r}}})
r = c.getresponse()
print(r.status)
print(r.read().decode("utf-8", "replace"))
"""


class Pi:
    """The booted root in the gateway namespace `gw`, the tablet and the phone on its LAN bridge (eth1),
    the internet host `net` on its WAN (eth0)."""

    def __init__(self, root: Path, folder: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.root, self.folder = root, folder
        self.tablet, self.phone, self.gw, self.net = f"tab{tag}", f"pho{tag}", f"pi{tag}", f"inet{tag}"
        self.laptop = f"lap{tag}"
        self.groups = [
            group / f"appliance-boot-{tag}"
            for group in [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").iterdir()]
            if (group / "cgroup.procs").exists()
        ]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.boot: subprocess.Popen[bytes] | None = None

    def build(self) -> None:
        for ns in (self.tablet, self.phone, self.laptop, self.gw, self.net):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", netns=ns)
        # The LAN: a bridge named as the shipped configuration names the Pi's LAN port, two devices on it.
        sh("ip", "link", "add", "eth1", "type", "bridge", netns=self.gw)
        for ns, mac, port in ((self.tablet, TABLET_MAC, "lan-t"), (self.phone, PHONE_MAC, "lan-p")):
            veth(ns, "eth0", self.gw, port, mac)
            sh("ip", "link", "set", port, "master", "eth1", netns=self.gw)
            sh("ip", "link", "set", port, "up", netns=self.gw)
            sh("ip", "link", "set", "eth0", "up", netns=ns)
        sh("ip", "addr", "add", f"{GW}/24", "dev", "eth1", netns=self.gw)  # the Pi's static LAN address
        sh("ip", "link", "set", "eth1", "up", netns=self.gw)
        # The staff network's port: its address comes from systemd-networkd at boot, as install.sh set up.
        veth(self.laptop, "eth0", self.gw, "eth2", LAPTOP_MAC)
        sh("ip", "link", "set", "eth0", "up", netns=self.laptop)
        veth(self.gw, "eth0", self.net, "n0")
        sh("ip", "addr", "add", f"{WAN}/24", "dev", "eth0", netns=self.gw)
        sh("ip", "link", "set", "eth0", "up", netns=self.gw)
        sh("ip", "route", "add", "default", "via", NET, netns=self.gw)
        sh("ip", "addr", "add", f"{NET}/24", "dev", "n0", netns=self.net)
        sh("ip", "addr", "add", f"{OUTSIDE_RESOLVER}/32", "dev", "n0", netns=self.net)
        sh("ip", "link", "set", "n0", "up", netns=self.net)
        sh("ip", "route", "add", "default", "via", WAN, netns=self.net)
        self.start(sys.executable, "-c", _UPSTREAM.format(net=NET), netns=self.net)
        self.start(sys.executable, "-c", _ECHO, netns=self.net)

    def start(self, *args: str, netns: str) -> None:
        with open(self.folder / f"{netns}.log", "ab") as out:
            self.processes.append(
                subprocess.Popen(["ip", "netns", "exec", netns, *args], stdout=out, stderr=out)
            )

    def power_on(self) -> None:
        """Boot the root with systemd as PID 1 of new PID, mount and control-group namespaces, in `gw`.
        Its control groups nest under our own (removed at the end), not at the machine's top."""
        for group in self.groups:
            group.mkdir()
        unshare = "unshare --pid --fork --mount --uts --ipc --cgroup --kill-child"
        # Join our control groups first (the unshared control-group namespace is rooted where we are).
        command = f'for g; do echo $$ > "$g/cgroup.procs"; done; exec ip netns exec {self.gw} {unshare} '
        command += f'sh -c "$BOOT" boot {self.root}'
        with open(self.folder / "boot.log", "wb") as out:
            self.boot = subprocess.Popen(
                ["sh", "-c", command, "sh", *map(str, self.groups)],
                stdout=out,
                stderr=out,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "BOOT": _BOOT},
            )

    def init_pid(self) -> int:
        """The booted system's PID 1, as this machine numbers it."""
        assert self.boot is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self.boot.pid}/task/{self.boot.pid}/children")
            found = children.read_text().split() if children.exists() else []
            if found:
                return int(found[0])
            time.sleep(0.1)
        raise AssertionError(f"systemd did not start: {(self.folder / 'boot.log').read_text()[-2000:]}")

    def inside(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A command run in the booted system (its root, processes and mounts)."""
        nsenter = ["nsenter", "--target", str(self.init_pid()), "--mount", "--pid", "--root", "--wd"]
        return subprocess.run([*nsenter, *args], capture_output=True, text=True, timeout=60)

    def journal(self) -> str:
        return self.inside("journalctl", "--no-pager", "-n", "80").stdout

    def property(self, unit: str, name: str) -> str:
        return self.inside("systemctl", "show", "--value", "-p", name, unit).stdout.strip()

    def power_off(self) -> None:
        if self.boot is not None:
            self.boot.kill()  # unshare --kill-child: its PID 1 dies, and with it every process inside
            self.boot.wait(10)
        for process in self.processes:
            process.kill()
            process.wait(10)
        for ns in (self.tablet, self.phone, self.laptop, self.gw, self.net):
            sh("ip", "netns", "del", ns, check=False)
        for group in self.groups:
            _remove_group(group)


def _remove_group(group: Path) -> None:
    """A control group and those under it, deepest first, once their processes are gone."""
    if not group.exists():
        return
    deadline = time.monotonic() + 10
    inner = sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for folder in [*inner, group]:
        while True:
            try:
                folder.rmdir()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@pytest.fixture(scope="module")
def pi(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pi]:
    root = installed.root
    folder = tmp_path_factory.mktemp("boot")
    config = root / "etc" / "appliance" / "appliance.yaml"
    resolv = root / "etc" / "resolv.conf"
    network = root / "etc" / "systemd" / "network"
    children, vlan, staff_net = (
        network / "10-appliance-children.network",
        network / "20-appliance-staff.netdev",
        network / "20-appliance-staff.network",
    )
    leases_conf = root / "etc" / "dnsmasq.d" / "appliance.conf"
    rules = root / "etc" / "nftables.d" / "appliance.nft"
    changed = (config, resolv, children, vlan, staff_net, leases_conf, rules)
    kept = {path: path.read_bytes() for path in changed}
    # The staff network on a second port (eth2) instead of VLAN 60: what the guide says to change.
    children.write_text("\n".join(x for x in children.read_text().splitlines() if not x.startswith("VLAN=")))
    vlan.unlink()
    staff_net.write_text(staff_net.read_text().replace("Name=eth1.60", "Name=eth2"))
    leases_conf.write_text(leases_conf.read_text().replace("interface=eth1.60", "interface=eth2"))
    # What the centre's technician would add: the tablet by its MAC; and the WAN's resolver, which on a
    # Pi the broadband router's DHCP would give.
    # And head office: its root installed, its address in a sync section (replacing one install.sh
    # may have written), its repository served by the internet host.
    repo = _head_office(folder)
    hq_root = root / "etc" / "appliance" / "head-office-root.json"
    kept[hq_root] = hq_root.read_bytes() if hq_root.exists() else b""
    shutil.copyfile(repo / "metadata" / "1.root.json", hq_root)
    hq_root.chmod(0o644)
    own = config.read_text().split("\nsync:\n")[0]
    own = own.replace("staff_interface: eth1.60", "staff_interface: eth2")
    # The test's "internet" sits on a private range, which children are otherwise never let reach.
    own = own.replace("  mode: transparent\n", f"  mode: transparent\n  reachable_networks: [{NET}/24]\n", 1)
    assert "reachable_networks" in own
    config.write_text(
        own + f'\n  - {{name: tablet-3, mac: "{TABLET_MAC}", profile: under-10}}\n'  # after the staff network
        f"sync:\n  url: http://{NET}:8000\n"
    )
    resolv.write_text(f"nameserver {NET}\n")
    rendered = run(
        "chroot", str(root), "/opt/appliance/venv/bin/appliance", "router", "rules", "--config",
        "/etc/appliance/appliance.yaml",
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    rules.write_text(rendered.stdout)
    built = Pi(root, folder)
    try:
        built.build()
        built.start(sys.executable, "-m", "http.server", "8000", "--directory", str(repo), netns=built.net)
        built.power_on()
        deadline = time.monotonic() + 120
        while (states := built.inside("systemctl", "is-active", *SERVICES).stdout.split()) != [
            "active"
        ] * len(SERVICES):
            assert time.monotonic() < deadline, f"{states}\n{built.journal()}"
            time.sleep(0.5)
        yield built
    finally:
        built.power_off()
        for path, content in kept.items():
            if content:
                path.write_bytes(content)
            else:
                path.unlink(missing_ok=True)


def _head_office(folder: Path) -> Path:
    """Head office's repository with bundle 1: the shipped adult list and one name of its own."""
    source = folder / "hq-src"
    (source / "lists").mkdir(parents=True)
    shipped = Path(str(resources.files("appliance") / "defaults" / "lists"))
    hosts = (shipped / "adult.hosts").read_text() + "0.0.0.0 only-in-the-bundle.example\n"
    (source / "lists" / "adult.hosts").write_text(hosts)
    (source / "bundle.yaml").write_text(
        "sources:\n  - {name: adult, format: hosts, category: adult, path: lists/adult.hosts}\n"
        "health: {blocked: [www.pornhub.com], allowed: [www.bbc.co.uk]}\n"
    )
    now = datetime.now(UTC)
    repo = Repository.create(folder / "hq-repo", folder / "hq-keys", now)
    repo.publish(build(source, folder / "hq-built", 1, now).folder, (), now)
    return folder / "hq-repo"


def ask(pi: Pi, device: str, name: str, server: str = GW, timeout: float = 3) -> str:
    return in_netns(device, _ASK.format(name=name, server=server, timeout=timeout))


def get(pi: Pi, device: str, name: str, path: str = "/") -> tuple[int, str]:
    status, _, body = in_netns(device, _GET.format(host=NET, name=name, path=path)).partition("\n")
    return int(status), body


def dhcp(pi: Pi, device: str, hostname: str) -> list[str]:
    """`device` asks the LAN for an address with udhcpc; its address, gateway and DNS server."""
    script, out = pi.folder / f"{device}.dhcp", pi.folder / f"{device}.lease"
    script.write_text(_LEASE_SCRIPT.format(out=out))
    script.chmod(0o755)
    done = sh("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "10", "-T", "1", "-s", str(script),
              "-x", f"hostname:{hostname}", netns=device, check=False)  # fmt: skip
    assert done.returncode == 0 and out.exists(), done.stdout + done.stderr + pi.journal()
    return out.read_text().split()


def addressed(pi: Pi, device: str, hostname: str) -> None:
    """`device` has its lease (from an earlier test or now)."""
    if not (pi.folder / f"{device}.lease").exists():
        dhcp(pi, device, hostname)


def test_the_installed_appliance_boots_with_every_service_running(pi: Pi) -> None:
    assert pi.inside("systemctl", "is-active", "appliance-lists.timer").stdout.strip() == "active"
    assert "table inet appliance" in sh("nft", "list", "tables", netns=pi.gw).stdout
    assert sh("sysctl", "-n", "net.ipv4.ip_forward", netns=pi.gw).stdout.strip() == "1"  # from sysctl.d
    # No administrator ships: the first start logs a one-time set-up link for the system journal.
    deadline = time.monotonic() + 30
    while "No administrator yet. Open https://<the appliance's address>:8081/setup/" not in (
        started := pi.inside("journalctl", "--no-pager", "-u", "appliance-dashboard").stdout
    ):
        assert time.monotonic() < deadline, started
        time.sleep(0.5)


def test_devices_get_their_address_from_dhcp_and_their_profile_by_mac(pi: Pi) -> None:
    for device, hostname in ((pi.tablet, "tablet-3"), (pi.phone, "visitors-phone")):
        address, router, dns = dhcp(pi, device, hostname)
        assert address.startswith("192.168.50.") and (router, dns) == (GW, GW)
    leases = (pi.root / "var" / "lib" / "misc" / "dnsmasq.leases").read_text()
    assert TABLET_MAC in leases and "tablet-3" in leases and PHONE_MAC in leases
    # Both are kept from the adult site; only the visitor's phone (guest) reaches an ordinary site: the
    # tablet, known by its MAC from the lease, is on the under-10 allowlist.
    assert ask(pi, pi.tablet, "www.pornhub.com") == f"NOERROR {GW}"
    assert ask(pi, pi.phone, "www.pornhub.com") == f"NOERROR {GW}"
    assert ask(pi, pi.phone, "www.example.org") == f"NOERROR {NET}"
    deadline = time.monotonic() + 10  # the filter reads a changed lease file within seconds
    while (answer := ask(pi, pi.tablet, "www.example.org")) != f"NOERROR {GW}":
        assert time.monotonic() < deadline, answer
        time.sleep(0.5)
    # The staff pages' own port is not open to the children's network; the portal's is.
    assert in_netns(pi.phone, _CONNECT.format(host=GW, port=8081)).startswith("TimeoutError")
    assert in_netns(pi.phone, _CONNECT.format(host=GW, port=80)) == "connected"
    # Web traffic goes through the proxy, which knows the devices the same way.
    status, body = get(pi, pi.phone, "en.wikipedia.org", "/wiki/Rainbow")
    assert status == 200 and echoed(body)[1].startswith("GET /wiki/Rainbow")
    status, body = get(pi, pi.tablet, "www.pornhub.com", "/video")
    assert status == 403 and "This page is blocked" in body


_STAFF_GET = """
import http.client, ssl
context = ssl.create_default_context(cafile={ca!r})
c = http.client.HTTPSConnection({host!r}, 8081, timeout=10, context=context)
c.request("GET", "/signin")
r = c.getresponse()
print(r.status, "Sign in" in r.read().decode())
"""


def test_the_staff_network_gets_its_own_addresses_and_the_staff_pages_over_https(pi: Pi) -> None:
    try:
        address, router, dns = dhcp(pi, pi.laptop, "staff-laptop")
    except AssertionError as e:
        links = sh("ip", "-d", "addr", netns=pi.gw).stdout
        units = pi.inside("journalctl", "--no-pager", "-u", "systemd-networkd", "-u", "dnsmasq").stdout
        raise AssertionError(links + units + pi.inside("networkctl", "--no-pager").stdout) from e
    assert address.startswith("192.168.60.") and (router, dns) == (STAFF_GW, STAFF_GW)
    ca = pi.root / "var" / "lib" / "appliance" / "ca" / "mitmproxy-ca-cert.pem"
    deadline = time.monotonic() + 60  # HTTPS starts once the proxy has made the CA
    while (answer := in_netns(pi.laptop, _CONNECT.format(host=STAFF_GW, port=8081))) != "connected":
        assert time.monotonic() < deadline, answer + pi.journal()
        time.sleep(0.5)
    assert in_netns(pi.laptop, _STAFF_GET.format(ca=str(ca), host=STAFF_GW)) == "200 True"
    # A device on the staff network is staff (the shipped staff-network entry): an adult site is flagged,
    # not blocked; it goes out directly, not through the proxy.
    assert ask(pi, pi.laptop, "www.pornhub.com", server=STAFF_GW) == f"NOERROR {NET}"
    # The children's devices reach neither address's staff port.
    addressed(pi, pi.phone, "visitors-phone")
    for host in (GW, STAFF_GW):
        assert in_netns(pi.phone, _CONNECT.format(host=host, port=8081)).startswith("TimeoutError")


def _killed(pi: Pi, unit: str) -> str:
    """SIGKILL the unit's main process, as a crash would; its old PID."""
    main = pi.property(unit, "MainPID")
    assert main not in ("", "0"), pi.journal()
    pi.inside("kill", "-9", main)
    return main


def _restarted(pi: Pi, unit: str, old: str) -> None:
    deadline = time.monotonic() + 60
    while not (
        pi.property(unit, "ActiveState") == "active" and pi.property(unit, "MainPID") not in (old, "0")
    ):
        assert time.monotonic() < deadline, pi.journal()
        time.sleep(0.3)
    assert pi.property(unit, "NRestarts") == "1"


def test_a_killed_dns_filter_is_restarted_and_no_query_gets_out_unfiltered(pi: Pi) -> None:
    addressed(pi, pi.phone, "visitors-phone")
    old = _killed(pi, "appliance-dns")
    # While it is down, a query to an outside resolver (which would answer anything) is still redirected
    # to the appliance: no answer at all, never the outside's.
    assert ask(pi, pi.phone, "www.pornhub.com", server=OUTSIDE_RESOLVER, timeout=1) in (
        "no answer",
        f"NOERROR {GW}",
    )
    _restarted(pi, "appliance-dns", old)
    deadline = time.monotonic() + 30
    while (answer := ask(pi, pi.phone, "www.pornhub.com", server=OUTSIDE_RESOLVER)) != f"NOERROR {GW}":
        assert answer == "no answer" and time.monotonic() < deadline, answer
        time.sleep(0.3)


def test_a_killed_proxy_or_dashboard_is_restarted_and_serves_again(pi: Pi) -> None:
    addressed(pi, pi.phone, "visitors-phone")
    for unit in ("appliance-proxy", "appliance-dashboard"):
        _restarted(pi, unit, _killed(pi, unit))
    deadline = time.monotonic() + 60
    while True:
        try:
            status, body = get(pi, pi.phone, "www.pornhub.com", "/video")
            portal = in_netns(pi.phone, _GET.format(host=GW, name="appliance.lan", path="/portal"))
            break
        except AssertionError:  # the workers are still starting
            assert time.monotonic() < deadline, pi.journal()
            time.sleep(0.5)
    assert status == 403 and "This page is blocked" in body
    assert portal.startswith("200") and "filtered and monitored" in portal


def test_the_sync_service_takes_head_offices_bundle_and_the_gateway_filters_with_it(pi: Pi) -> None:
    addressed(pi, pi.phone, "visitors-phone")
    assert ask(pi, pi.phone, "only-in-the-bundle.example") == f"NOERROR {NET}"  # not listed yet
    done = pi.inside("systemctl", "start", "appliance-sync.service")  # what the timer runs, hardened
    assert done.returncode == 0, (
        done.stderr + pi.inside("journalctl", "--no-pager", "-u", "appliance-sync").stdout
    )
    assert "bundle 1 in force" in pi.inside("journalctl", "--no-pager", "-u", "appliance-sync").stdout
    assert ask(pi, pi.phone, "only-in-the-bundle.example") == f"NOERROR {GW}"  # checked after the swap too
    status = pi.inside(
        "runuser", "-u", "appliance", "--", "/opt/appliance/venv/bin/appliance", "sync", "--status"
    ).stdout
    assert "in force: bundle 1" in status and "last error" not in status
