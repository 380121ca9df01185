"""Router mode, proven in network namespaces made here: two child devices on the children's switch (a
bridge, the gateway's `lan0`), a staff PC on the staff network's own port (`stf0`, `router.staff_interface`:
on a Pi, a VLAN like eth1.60 or a second port; this kernel has no VLANs, and the rules only see the
interface's name), the gateway (the real DNS filter, proxy and dashboard behind the real ruleset of
appliance/router.py, loaded with nft), and an "internet" host. Traffic stays inside the namespaces; every
namespace is removed afterwards, even when a test fails.

What a child cannot get around: a hard-coded outside resolver is answered by the appliance all the same;
DNS over TLS (853) and QUIC (UDP 443) are refused at once; the known DNS-over-HTTPS resolvers are
refused; the gateway itself answers only DNS, DHCP, the proxy and the portal from the children's side;
nothing but the proxy's traffic and ping leaves the children's network (a named device's profile may open
`direct_ports`, exactly those); a staff-range address or a copied staff MAC on the children's side is
never staff. The staff network reaches the staff pages (HTTPS, the appliance's own certificate) and the
Internet directly; staff sign in at the portal to make a children's device staff.

The internet host answers DNS on NET:53 (a few blocked demo names with NET_BLOCKED, every other name with
NET) and serves HTTP and HTTPS on both addresses, each answer's first line naming the address it was
reached on (`served-by 10.77.2.2`): what a request really connected to is visible to the tests.
"""

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

from appliance.config import Config, load_config
from appliance.lists import compile_lists
from appliance.router import ruleset
from tests.appliance.proxy.conftest import _origin_ca

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
    reason="needs root, nft (Debian's nftables) and ip: network namespaces and their rules",
)

CHILD, GW_LAN, GW_WAN, NET = "10.77.1.2", "10.77.1.1", "10.77.2.1", "10.77.2.2"
NET_BLOCKED = "10.77.2.3"  # the internet host's second address: where the blocked demo names resolve
CENTRE_PC = "10.77.1.3"  # a centre-owned PC on the same host: managed, trusts the appliance's CA
CALL_PC = "10.77.1.4"  # named with the `calls` profile, whose direct_ports open tcp/8000 and udp/5000
COPYCAT = "10.77.1.9"  # a second child device, wearing the staff laptop's MAC
STAFF_PC, GW_STAFF = "10.77.9.5", "10.77.9.1"  # the staff network, on its own port
SPOOFED = "10.77.9.66"  # a staff-range address a child sets on the children's port
CHILD_MAC, STAFF_MAC = "02:00:00:77:01:02", "02:00:00:77:09:05"
OUTSIDE_RESOLVER = "203.0.113.53"  # nobody answers there: only the redirect can
DOH_RESOLVER = "9.9.9.9"  # on the refused list; the internet host has it too
LOCAL_NAMES = {"printer.example": STAFF_PC}  # a public name whose answer is on the centre's own network
BLOCKED_DEMO_NAMES = ("www.pornhub.com", "pornhub.com", "www.xvideos.com", "bet365.com", "www.bet365.com")


def sh(*args: str, check: bool = True, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    command = ["ip", "netns", "exec", netns, *args] if netns else list(args)
    return subprocess.run(command, check=check, capture_output=True, text=True, timeout=30)


def veth(one: str, name: str, other: str, peer: str, mac: str | None = None) -> None:
    """A cable between namespaces: `name` in `one` (with hardware address `mac`), `peer` in `other`."""
    address = ["address", mac] if mac else []
    sh(
        "ip",
        "link",
        "add",
        name,
        *address,
        "netns",
        one,
        "type",
        "veth",
        "peer",
        "name",
        peer,
        "netns",
        other,
    )


class Lab:
    """The namespaces: child and child2 on a bridge `lan0` in gw (the children's switch), the staff PC on
    gw's `stf0` (the staff network's own port), gw's `wan0` to net."""

    def __init__(self, tag: str) -> None:
        self.child, self.child2, self.staff = f"kid{tag}", f"kd2{tag}", f"stf{tag}"
        self.gw, self.net = f"gw{tag}", f"net{tag}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.config: Config | None = None
        self.logs = Path()
        self.origin_ca = self.appliance_ca = Path()

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.child, self.child2, self.staff, self.gw, self.net)

    def build(self) -> None:
        for ns in self.namespaces:
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", netns=ns)
        sh("ip", "link", "add", "lan0", "type", "bridge", netns=self.gw)
        for ns, mac, port in (
            (self.child, CHILD_MAC, "p-kid"),
            (self.child2, STAFF_MAC, "p-kd2"),  # a copy of the staff laptop's MAC
        ):
            veth(ns, "c0", self.gw, port, mac)
            sh("ip", "link", "set", port, "master", "lan0", netns=self.gw)
            sh("ip", "link", "set", port, "up", netns=self.gw)
        veth(self.staff, "c0", self.gw, "stf0", STAFF_MAC)
        veth(self.gw, "wan0", self.net, "n0")
        for ns, dev, address in (
            (self.child, "c0", f"{CHILD}/24"),
            (self.child, "c0", f"{CENTRE_PC}/24"),
            (self.child, "c0", f"{CALL_PC}/24"),
            (self.child2, "c0", f"{COPYCAT}/24"),
            (self.staff, "c0", f"{STAFF_PC}/24"),
            (self.gw, "lan0", f"{GW_LAN}/24"),
            (self.gw, "stf0", f"{GW_STAFF}/24"),
            (self.gw, "wan0", f"{GW_WAN}/24"),
            (self.net, "n0", f"{NET}/24"),
            (self.net, "n0", f"{NET_BLOCKED}/24"),
        ):
            sh("ip", "addr", "add", address, "dev", dev, netns=ns)
            sh("ip", "link", "set", dev, "up", netns=ns)
        sh("ip", "addr", "add", f"{DOH_RESOLVER}/32", "dev", "n0", netns=self.net)
        for ns in (self.child, self.child2):
            sh("ip", "route", "add", "default", "via", GW_LAN, netns=ns)
        sh("ip", "route", "add", "default", "via", GW_STAFF, netns=self.staff)
        sh("ip", "route", "add", "default", "via", GW_WAN, netns=self.net)
        sh("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", netns=self.gw)

    def start(self, *args: str, netns: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a program in `netns`; its output goes to `log` (a pipe nobody read would fill up)."""
        with open(log or os.devnull, "wb") as out:
            process = subprocess.Popen(["ip", "netns", "exec", netns, *args], stdout=out, stderr=out)
        self.processes.append(process)
        return process

    def destroy(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)


def in_netns(netns: str, code: str) -> str:
    """Run Python `code` in `netns`; its printed output."""
    done = sh(sys.executable, "-c", code, netns=netns, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("router")
    shipped = resources.files("appliance") / "defaults"
    text = (shipped / "appliance.yaml").read_text(encoding="utf-8")
    text = text.replace("path: lists/", f"path: {shipped / 'lists'}/").split("\npolicy:")[0]
    # The shipped profiles, open at any hour (the tests run whenever CI does).
    profiles = (shipped / "policy" / "profiles.yaml").read_text(encoding="utf-8")
    (folder / "profiles.yaml").write_text(
        "\n".join(line for line in profiles.splitlines() if not line.startswith("    schedule:"))
        # The video-call corner: a service the centre approved, reached past the proxy.
        + "\n  calls:\n    description: The video-call corner\n    direct_ports: [tcp/8000, udp/5000]\n",
        encoding="utf-8",
    )
    origin_ca, origin_cert, origin_key = _origin_ca(folder)
    config_path = folder / "appliance.yaml"
    config_path.write_text(
        f"""{text}
data_dir: {folder / "var"}
devices:
  - {{name: room1-pc1, network: {CENTRE_PC}, profile: "10-12", managed: true}}
  - {{name: call-pc, network: {CALL_PC}, profile: calls}}
  - {{name: staff-laptop, network: {STAFF_PC}, profile: staff}}
policy:
  timezone: Europe/London
  profiles: {folder / "profiles.yaml"}
dns:
  listen: ["0.0.0.0:5353"]
  upstreams: ["{NET}:53"]
  block_page_addresses: ["{GW_LAN}"]
proxy:
  listen: 0.0.0.0:8080
  mode: transparent
  workers: 1
  centre: Riverside Youth Centre
  upstream_trusted_ca: {origin_ca}
  reachable_networks: [10.77.2.0/24]  # the lab's "internet" sits on the WAN's private range
dashboard:
  listen: 0.0.0.0:80
  staff_listen: 0.0.0.0:8081
  portal_tls_listen: 0.0.0.0:443
  admin_networks: [10.77.9.0/24]
portal:
  closing_time: "24:00"  # the tests run at any hour
router:
  lan_interface: lan0
  wan_interface: wan0
  staff_interface: stf0
  staff_networks: [10.77.9.0/24]
""",
        encoding="utf-8",
    )
    config = load_config(config_path)
    compile_lists(config, now=datetime.now(UTC))
    built = Lab(uuid.uuid4().hex[:6])
    built.config = config
    try:
        built.build()
        rules = folder / "rules.nft"
        rules.write_text(ruleset(config), encoding="utf-8")
        sh("nft", "-f", str(rules), netns=built.gw)
        appliance = Path(sys.executable).parent / "appliance"
        built.logs = folder
        dns_filter = built.start(
            str(appliance), "dns", "--config", str(config_path), netns=built.gw, log=folder / "dns.log"
        )
        deadline = time.monotonic() + 30
        while True:
            probe = sh(
                sys.executable,
                "-c",
                _ASK.format(server=GW_LAN, port=5353, name="probe.invalid"),
                netns=built.gw,
                check=False,
            )
            if probe.returncode == 0:
                break
            if dns_filter.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"the DNS filter did not start: {(folder / 'dns.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        built.start(sys.executable, "-c", _INTERNET_DNS, netns=built.net)
        built.start(sys.executable, "-c", _ECHO, netns=built.net)
        built.start(
            sys.executable,
            "-c",
            _ECHO_TLS.format(cert=str(origin_cert), key=str(origin_key)),
            netns=built.net,
        )
        built.origin_ca = origin_ca
        built.appliance_ca = config.ca_dir / "mitmproxy-ca-cert.pem"
        built.start(
            str(appliance), "proxy", "--config", str(config_path), netns=built.gw, log=folder / "proxy.log"
        )
        built.start(
            sys.executable, "-m", "dashboard", str(config_path), netns=built.gw, log=folder / "web.log"
        )
        for host, port, ns in (
            (NET, 80, built.net),
            (NET, 443, built.net),
            (GW_LAN, 8080, built.gw),
            (GW_LAN, 80, built.gw),
            (GW_LAN, 443, built.gw),  # HTTPS waits for the CA the proxy makes
            (GW_STAFF, 8081, built.gw),
        ):
            _wait_for(ns, host, port)
        yield built
    finally:
        built.destroy()


def _wait_for(netns: str, host: str, port: int) -> None:
    deadline = time.monotonic() + 60
    while in_netns(netns, _CONNECT.format(host=host, port=port)) != "connected":
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing listens on {host}:{port} in {netns}")
        time.sleep(0.3)


# The internet host's web server, on both its addresses: answers every request with the address it was
# reached on, then what it received (path and headers).
_ECHO = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Echo(BaseHTTPRequestHandler):
    def setup(self):
        super().setup()
        # As real web servers do (RFC 9112 2.2): blank lines before a request are skipped.
        while self.rfile.peek(2)[:2] == b"\\r\\n":
            self.rfile.read(2)
    def do_GET(self):
        served = "served-by " + self.connection.getsockname()[0] + "\\n"
        body = (served + "GET " + self.path + "\\n" + str(self.headers)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("0.0.0.0", 80), Echo).serve_forever()
"""

_ECHO_TLS = (
    _ECHO.replace('ThreadingHTTPServer(("0.0.0.0", 80), Echo).serve_forever()', "")
    + """
import ssl
server = ThreadingHTTPServer(("0.0.0.0", 443), Echo)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain({cert!r}, {key!r})
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""
)


def echoed(body: str) -> tuple[str, str]:
    """An echo server's answer: (the address it was reached on, the request it received)."""
    first, _, rest = body.partition("\n")
    assert first.startswith("served-by "), body[:500]
    return first.removeprefix("served-by "), rest


# The internet host's DNS server (NET:53): the blocked demo names resolve to NET_BLOCKED, every other name
# to NET (A only; other types get an empty answer).
_INTERNET_DNS = f"""
import socket, dns.message, dns.rdatatype, dns.rrset
blocked = {set(BLOCKED_DEMO_NAMES)!r}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(({NET!r}, 53))
while True:
    data, peer = s.recvfrom(4096)
    try:
        query = dns.message.from_wire(data)
    except Exception:
        continue
    answer = dns.message.make_response(query)
    question = query.question[0]
    if question.rdtype == dns.rdatatype.A:
        name = question.name.to_text(omit_final_dot=True).lower()
        address = {NET_BLOCKED!r} if name in blocked else {LOCAL_NAMES!r}.get(name, {NET!r})
        answer.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", address))
    s.sendto(answer.to_wire(), peer)
"""

_GET_TLS = """
import socket, ssl
context = ssl.create_default_context(cafile={ca!r})
raw = socket.create_connection(({host!r}, 443), timeout=10, source_address=({source!r}, 0))
try:
    tls = context.wrap_socket(raw, server_hostname={name!r})
except (ssl.SSLError, OSError) as e:
    print("cut", type(e).__name__)
    raise SystemExit(0)
issuer = dict(x[0] for x in tls.getpeercert()["issuer"])["commonName"]
tls.sendall(b"GET /page HTTP/1.1\\r\\nHost: {name}\\r\\nConnection: close\\r\\n\\r\\n")
data = b""
while True:
    chunk = tls.recv(65536)
    if not chunk:
        break
    data += chunk
print(issuer)
print(data.decode("utf-8", "replace"))
"""


def get_tls(lab: Lab, source: str, name: str, ca: Path, host: str = NET) -> str:
    return in_netns(lab.child, _GET_TLS.format(ca=str(ca), host=host, source=source, name=name))


_GET = """
import http.client
c = http.client.HTTPConnection({host!r}, {port}, timeout=10)
c.request("GET", {path!r}, headers={{"Host": {name!r}}})
r = c.getresponse()
print(r.status)
print(r.read().decode("utf-8", "replace"))
"""


def get(
    lab: Lab, host: str, name: str, path: str = "/", port: int = 80, netns: str | None = None
) -> tuple[int, str]:
    out = in_netns(netns or lab.child, _GET.format(host=host, port=port, name=name, path=path))
    status, _, body = out.partition("\n")
    return int(status), body


_ASK = """
import dns.exception, dns.message, dns.query, dns.rcode
q = dns.message.make_query({name!r}, "A")
try:
    r = dns.query.udp(q, {server!r}, port={port}, timeout=3)
except dns.exception.Timeout:
    print("no answer")
else:
    print(dns.rcode.to_text(r.rcode()), *[rd.to_text() for rrset in r.answer for rd in rrset])
"""


def ask(lab: Lab, server: str, name: str, port: int = 53, netns: str | None = None) -> str:
    return in_netns(netns or lab.child, _ASK.format(server=server, port=port, name=name))


def test_the_gateway_answers_dns_with_the_childrens_filter(lab: Lab) -> None:
    assert ask(lab, GW_LAN, "www.pornhub.com") == f"NOERROR {GW_LAN}"  # the block page's address
    assert ask(lab, GW_LAN, "en.wikipedia.org") == f"NOERROR {NET}"  # the internet's own answer


def test_a_hard_coded_outside_resolver_is_answered_by_the_appliance(lab: Lab) -> None:
    assert ask(lab, OUTSIDE_RESOLVER, "www.pornhub.com") == f"NOERROR {GW_LAN}"
    assert ask(lab, DOH_RESOLVER, "www.pornhub.com") == f"NOERROR {GW_LAN}"  # plain DNS to it, too


_CONNECT = """
import socket, time
s = socket.socket()
s.settimeout(3)
t = time.monotonic()
try:
    s.connect(({host!r}, {port}))
    print("connected")
except ConnectionRefusedError:
    print("refused", round(time.monotonic() - t, 1))
except OSError as e:
    print(type(e).__name__, round(time.monotonic() - t, 1))
"""


def connect(lab: Lab, host: str, port: int, source: str | None = None, netns: str | None = None) -> str:
    """A TCP connection from the child (from `source`, one of its addresses) or from `netns`."""
    # Within the namespaces an answer takes a millisecond: 1.5 s of silence is a drop.
    code = _CONNECT.format(host=host, port=port).replace("settimeout(3)", "settimeout(1.5)")
    if source:
        code = code.replace("s.settimeout(1.5)\n", f"s.settimeout(1.5)\ns.bind(({source!r}, 0))\n", 1)
    return in_netns(netns or lab.child, code)


_UDP = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
{bind}
s.connect(({host!r}, {port}))
s.send(b"quic?")
try:
    s.recv(100)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print(type(e).__name__)
"""


def udp(lab: Lab, host: str, port: int, source: str | None = None, netns: str | None = None) -> str:
    bind = f"s.bind(({source!r}, 0))" if source else ""
    code = _UDP.format(host=host, port=port, bind=bind).replace("settimeout(3)", "settimeout(1.5)")
    return in_netns(netns or lab.child, code)


_PING = """
import os, socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(3)
body = struct.pack("!BBHHH", 8, 0, 0, 77, 1) + b"are you there?" * {times}  # an even length: 16-bit words
total = sum(struct.unpack("!%dH" % (len(body) // 2), body))
total = (total >> 16) + (total & 0xFFFF)
checksum = ~(total + (total >> 16)) & 0xFFFF
s.sendto(body[:2] + struct.pack("!H", checksum) + body[4:], ({host!r}, 0))
try:
    while True:
        reply = s.recv(200)
        if reply[20] == 0:  # an echo reply
            print("pong")
            break
except OSError as e:
    print(type(e).__name__)
"""


@pytest.fixture(scope="module")
def listening(lab: Lab) -> None:
    """Something listens on the internet host on the ports the tests try, so a refusal or a silence can
    only be the gateway's. (TCP 443 there is the HTTPS site's.)"""
    lab.start(
        sys.executable, "-c", _LISTEN.format(tcp=[853, 8000, 8001], udp=[853, 443, 5000, 5001]), netns=lab.net
    )
    deadline = time.monotonic() + 10
    while in_netns(lab.net, _CONNECT.format(host=NET, port=8001)) != "connected":
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_dns_over_tls_quic_and_doh_resolvers_are_refused_at_once(lab: Lab, listening: None) -> None:
    assert connect(lab, NET, 853).startswith("refused")
    assert udp(lab, NET, 443) == "refused"
    assert udp(lab, NET, 853) == "refused"
    assert connect(lab, DOH_RESOLVER, 8000).startswith(("refused", "OSError"))


def test_nothing_but_the_proxys_traffic_and_ping_leaves_the_childrens_network(
    lab: Lab, listening: None
) -> None:
    # Any other TCP or UDP to the Internet is dropped: no SSH, no VPN, nothing the filter did not decide.
    assert connect(lab, NET, 8000).startswith("TimeoutError")
    assert connect(lab, NET, 22).startswith("TimeoutError")
    assert udp(lab, NET, 5000) == "TimeoutError"
    # Ping still works (and is masqueraded: the internet host sees the gateway).
    assert in_netns(lab.child, _PING.format(host=NET, times=1)) == "pong"
    # But a ping big enough to carry a tunnel (an ICMP tunnel's packets are full size) is not.
    assert in_netns(lab.child, _PING.format(host=NET, times=100)) == "TimeoutError"
    # The staff network is forwarded as before.
    assert connect(lab, NET, 8000, netns=lab.staff) == "connected"
    assert udp(lab, NET, 5000, netns=lab.staff) == "answered"


def test_a_named_device_reaches_exactly_its_profiles_direct_ports(lab: Lab, listening: None) -> None:
    # call-pc (CALL_PC) has the `calls` profile: direct_ports [tcp/8000, udp/5000].
    assert connect(lab, NET, 8000, source=CALL_PC) == "connected"
    assert udp(lab, NET, 5000, source=CALL_PC) == "answered"
    assert connect(lab, NET, 8001, source=CALL_PC).startswith("TimeoutError")
    assert udp(lab, NET, 5001, source=CALL_PC) == "TimeoutError"
    # The same host's other address (another device, as far as the gateway can tell) gets none of them.
    assert connect(lab, NET, 8000, source=CHILD).startswith("TimeoutError")


_LISTEN = """
import socket, selectors, time
sel = selectors.DefaultSelector()
for kind, port in [(socket.SOCK_STREAM, p) for p in {tcp}] + [(socket.SOCK_DGRAM, p) for p in {udp}]:
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    if kind == socket.SOCK_STREAM:
        s.listen()
    sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s.type == socket.SOCK_STREAM:
            c, _ = s.accept(); c.close()
        else:
            data, peer = s.recvfrom(100); s.sendto(b"yes", peer)
"""


def test_the_gateway_itself_answers_only_its_services(lab: Lab) -> None:
    lab.start(sys.executable, "-c", _LISTEN.format(tcp=[2222], udp=[]), netns=lab.gw)
    time.sleep(0.5)
    blocked = connect(lab, GW_LAN, 2222)
    assert blocked.startswith("TimeoutError")  # dropped, not even refused
    assert connect(lab, GW_LAN, 2222, netns=lab.gw) == "connected"  # from inside: fine


def test_web_traffic_goes_through_the_proxy_whatever_its_destination(lab: Lab) -> None:
    status, body = get(lab, NET, "en.wikipedia.org", "/wiki/Rainbow")
    assert status == 200 and echoed(body)[1].startswith("GET /wiki/Rainbow")  # allowed: the site's answer
    status, body = get(lab, NET, "www.pornhub.com", "/video")
    assert status == 403 and "This page is blocked" in body and "GET /video" not in body
    status, body = get(lab, NET, "www.google.com", "/search?q=cats")
    assert status == 200 and "safe=active" in echoed(body)[1].splitlines()[0]  # safe search forced


def test_the_dashboard_refuses_the_child_host_and_the_portal_answers_it(lab: Lab) -> None:
    status, body = get(lab, GW_LAN, "appliance.lan", "/people")
    assert status == 403 and "staff only" in body
    status, body = get(lab, GW_LAN, "appliance.lan", "/portal")
    assert status == 200 and "filtered and monitored" in body
    # The staff pages' own port: the firewall drops the children's network there, not even a refusal,
    # whichever of the gateway's addresses it is asked on.
    assert connect(lab, GW_LAN, 8081).startswith("TimeoutError")
    assert connect(lab, GW_STAFF, 8081).startswith("TimeoutError")


def test_a_staff_range_address_on_the_childrens_cable_gets_nothing(lab: Lab, listening: None) -> None:
    sh("ip", "addr", "add", f"{SPOOFED}/24", "dev", "c0", netns=lab.child)
    try:
        # Dropped as it comes in (it does not belong on the children's interface): not the staff pages,
        # not past the proxy, not out to the Internet, not even the portal.
        for host, port in ((GW_STAFF, 8081), (GW_LAN, 8081), (NET, 80), (NET, 8000), (GW_LAN, 80)):
            assert connect(lab, host, port, source=SPOOFED).startswith("TimeoutError"), (host, port)
        assert udp(lab, NET, 5000, source=SPOOFED) == "TimeoutError"
    finally:
        sh("ip", "addr", "del", f"{SPOOFED}/24", "dev", "c0", netns=lab.child)


def test_a_copied_staff_mac_on_the_childrens_cable_is_not_staff(lab: Lab) -> None:
    # The staff laptop (named by its staff-network address) gets the staff profile: an adult site is
    # flagged, not blocked, so its real address comes back.
    assert ask(lab, GW_STAFF, "www.pornhub.com", netns=lab.staff) == f"NOERROR {NET_BLOCKED}"
    # A child's device wearing the same MAC on the children's port is a guest: blocked.
    assert ask(lab, GW_LAN, "www.pornhub.com", netns=lab.child2) == f"NOERROR {GW_LAN}"
    status, body = get(lab, NET, "www.pornhub.com", "/video", netns=lab.child2)
    assert status == 403 and "This page is blocked" in body
    assert lab.config is not None
    from appliance.store.schema import connect as store

    db = store(lab.config.events_path)
    deadline = time.monotonic() + 5
    while not (
        profiles := {
            profile
            for (profile,) in db.execute(
                "SELECT DISTINCT profile FROM event_log WHERE host = 'www.pornhub.com' AND client = ?",
                (COPYCAT,),
            )
        }
    ):  # the log is written within a second
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert profiles == {"guest"}


_STAFF_GET = """
import http.client, ssl
context = ssl.create_default_context(cafile={ca!r})
c = http.client.HTTPSConnection({host!r}, 8081, timeout=10, context=context)
c.request("GET", "/signin")
r = c.getresponse()
print(r.status, "Sign in" in r.read().decode(), r.getheader("Set-Cookie"))
"""


_PLAIN = """
import http.client
c = http.client.HTTPConnection({host!r}, 8081, timeout=10)
try:
    c.request("GET", "/signin")
    print(c.getresponse().status)
except OSError as e:
    print(type(e).__name__)
except http.client.HTTPException as e:
    print(type(e).__name__)
"""


def test_the_staff_network_reaches_the_staff_pages_over_https_and_the_internet(lab: Lab) -> None:
    # The staff pages, over HTTPS with the appliance's own certificate, checked against its CA, on
    # either of the gateway's addresses; the cookie Secure.
    for host in (GW_STAFF, GW_LAN):
        status, found, cookie = in_netns(
            lab.staff, _STAFF_GET.format(ca=str(lab.appliance_ca), host=host)
        ).split(" ", 2)
        assert (status, found) == ("200", "True") and "Secure" in cookie and cookie.startswith("__Host-")
    # Plain HTTP there gets nothing: the port speaks HTTPS only.
    plain = _PLAIN.format(host=GW_STAFF)
    assert in_netns(lab.staff, plain) in ("RemoteDisconnected", "ConnectionResetError")
    # The Internet, directly: not through the proxy (a blocked name reaches the site itself).
    status, body = get(lab, NET_BLOCKED, "www.pornhub.com", "/video", netns=lab.staff)
    served_by, request = echoed(body)
    assert status == 200 and served_by == NET_BLOCKED and request.startswith("GET /video")
    status, _ = get(lab, GW_LAN, "appliance.lan", "/signin")  # never on the children's port
    assert status == 403


_SIGN_IN = """
import http.cookiejar, re, urllib.parse, urllib.request
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
page = opener.open("http://{gw}/portal", timeout=10).read().decode()
token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
fields = {{"csrf_token": token, "name": "Amira", "pin": "4826", "accept": "yes"}}
form = urllib.parse.urlencode(fields).encode()
page = opener.open("http://{gw}/portal/signin", data=form, timeout=10).read().decode()
print("signed in" if "You are signed in as Amira" in page else page[:2000])
"""


def test_a_child_signed_in_at_the_portal_is_filtered_and_logged_as_herself(lab: Lab) -> None:
    from appliance.store import people
    from appliance.store.schema import connect as store

    assert lab.config is not None
    db = store(lab.config.events_path)
    child = people.add_child(db, "Amira", "10-12", "4826", time.time())
    assert in_netns(lab.child, _SIGN_IN.format(gw=GW_LAN)) == "signed in"
    (session,) = people.open_sessions(db, time.time())
    # Bound to the child's device by its hardware address, as the gateway sees it in its ARP table.
    assert (session.child, session.client, session.device) == (child.id, CHILD, CHILD_MAC)
    deadline = time.monotonic() + 5
    while True:  # the DNS filter takes the sign-in within a second; the log within another
        ask(lab, GW_LAN, "www.pornhub.com")
        rows = db.execute(
            "SELECT DISTINCT subject, profile FROM event_log WHERE host = 'www.pornhub.com' AND client = ?",
            (CHILD,),
        ).fetchall()
        if (f"child:{child.id}", "10-12") in rows:
            people.end_session(db, session.id, "logout", time.time())  # the other tests' devices are not hers
            break
        assert time.monotonic() < deadline, (rows, (lab.logs / "dns.log").read_text()[-3000:])
        time.sleep(0.3)


_STAFF_SIGN_IN = """
import http.cookiejar, re, ssl, urllib.parse, urllib.request
jar = http.cookiejar.CookieJar()
https = urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile={ca!r}))
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), https)
plain = opener.open("http://{gw}/portal/staff", timeout=10).read().decode()
secure = re.search(r'href="(https://[^"]+)"', plain).group(1)  # the page sends the password elsewhere
page = opener.open(secure, timeout=10).read().decode()
token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
form = urllib.parse.urlencode({{"csrf_token": token, "username": {user!r}, "password": {password!r}}})
page = opener.open(secure.replace("/portal/staff", "/portal/staff/signin"), data=form.encode(), timeout=10)
text = page.read().decode()
print(secure, "signed in" if "You are signed in as" in text and "(staff)" in text else text[:2000])
"""

_SIGN_OUT = """
import http.cookiejar, re, urllib.parse, urllib.request
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
page = opener.open("http://{gw}/portal", timeout=10).read().decode()
token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
form = urllib.parse.urlencode({{"csrf_token": token}}).encode()
print(opener.open("http://{gw}/portal/signout", data=form, timeout=10).status)
"""


def test_staff_signed_in_at_the_portal_make_a_childrens_device_staff_until_they_sign_out(lab: Lab) -> None:
    from appliance.store import audit, people, staff
    from appliance.store.schema import connect as store

    assert lab.config is not None
    db = store(lab.config.events_path)
    staff.add_user(db, "maria", "Maria", staff.Role.STAFF, "a long staff password", time.time())

    def answer() -> str:
        return ask(lab, GW_LAN, "www.pornhub.com", netns=lab.child2)

    assert answer() == f"NOERROR {GW_LAN}"  # a guest
    signed = in_netns(
        lab.child2,
        _STAFF_SIGN_IN.format(
            ca=str(lab.appliance_ca), gw=GW_LAN, user="maria", password="a long staff password"
        ),
    )
    assert signed == f"https://{GW_LAN}/portal/staff signed in", signed
    deadline = time.monotonic() + 10  # the DNS filter takes the sign-in within a second or so
    while (found := answer()) != f"NOERROR {NET_BLOCKED}":
        assert time.monotonic() < deadline, found
        time.sleep(0.3)
    (entry,) = [e for e in audit.entries(db, username="maria") if e.action == "portal-sign-in"]
    assert entry.subject == f"device:{STAFF_MAC}"  # the device, known by its MAC
    try:
        # A child's device copies that MAC (anyone on the children's network can see it): still a child.
        sh("ip", "link", "set", "c0", "address", STAFF_MAC, netns=lab.child)
        sh("ip", "neigh", "flush", "dev", "lan0", netns=lab.gw)
        deadline = time.monotonic() + 10
        while STAFF_MAC not in sh("ip", "neigh", "show", CHILD, netns=lab.gw).stdout:
            ask(lab, GW_LAN, "www.pornhub.com")  # traffic, so the gateway learns the (copied) MAC
            assert time.monotonic() < deadline, "the gateway never saw the copied MAC"
            time.sleep(0.3)
        time.sleep(2.5)  # the appliance reads its neighbour table every two seconds
        for _ in range(3):
            assert ask(lab, GW_LAN, "www.pornhub.com") == f"NOERROR {GW_LAN}"
            assert get(lab, NET, "www.pornhub.com", "/video")[0] == 403
            time.sleep(0.5)
    finally:
        sh("ip", "link", "set", "c0", "address", CHILD_MAC, netns=lab.child)
        sh("ip", "neigh", "flush", "dev", "lan0", netns=lab.gw)
    try:
        assert in_netns(lab.child2, _SIGN_OUT.format(gw=GW_LAN)) == "200"
        deadline = time.monotonic() + 10
        while (found := answer()) != f"NOERROR {GW_LAN}":
            assert time.monotonic() < deadline, found
            time.sleep(0.3)
    finally:
        for session in people.open_sessions(db, time.time()):
            people.end_session(db, session.id, "logout", time.time())


def test_https_of_a_childs_own_device_passes_on_its_name_or_is_cut(lab: Lab) -> None:
    """An unmanaged device: decided on the TLS name alone, never decrypted."""
    allowed = get_tls(lab, CHILD, "en.wikipedia.org", lab.origin_ca)
    assert allowed.startswith("Test Origin CA") and "GET /page" in allowed  # the site's own certificate
    assert get_tls(lab, CHILD, "www.pornhub.com", lab.origin_ca).startswith("cut")


def test_a_centre_pc_trusting_the_appliance_gets_the_block_page_over_https(lab: Lab) -> None:
    blocked = get_tls(lab, CENTRE_PC, "www.pornhub.com", lab.appliance_ca)
    assert blocked.startswith("Childsafe appliance CA") and "This page is blocked" in blocked


# ---- the transparent proxy: decided on what is connected to, nothing relayed undecided ----

_RAW = """
import socket, ssl
s = socket.create_connection(({host!r}, {port}), timeout=5, source_address=({source!r}, 0))
if {tls!r}:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        s = context.wrap_socket(s)  # no server_hostname: a hello that names no site
    except (ssl.SSLError, OSError) as e:
        print(repr(b"cut"))
        raise SystemExit(0)
s.sendall({data!r})
s.settimeout(4)
got = b""
try:
    while chunk := s.recv(65536):
        got += chunk
except OSError:
    pass
print(repr(got))
"""


def raw(lab: Lab, host: str, port: int, data: bytes, *, tls: bool = False) -> bytes:
    """What the child host gets back for `data` sent to host:port (and read until closed)."""
    out = in_netns(lab.child, _RAW.format(host=host, port=port, source=CHILD, data=data, tls=tls))
    answer = eval(out)  # the repr of bytes, printed by the child host's script
    assert isinstance(answer, bytes)
    return answer


def test_a_host_header_sent_to_a_blocked_sites_address_reaches_the_named_site(lab: Lab) -> None:
    """The address a device connected to is not what the proxy decides on, nor where it connects."""
    status, body = get(lab, NET_BLOCKED, "en.wikipedia.org", "/wiki/Rainbow")
    assert status == 200 and echoed(body) == (NET, echoed(body)[1])  # served by the named site
    status, body = get(lab, NET, "www.pornhub.com", "/video")
    assert status == 403 and "served-by" not in body


def test_a_tls_name_sent_to_a_blocked_sites_address_reaches_the_named_site(lab: Lab) -> None:
    out = get_tls(lab, CHILD, "en.wikipedia.org", lab.origin_ca, host=NET_BLOCKED)
    issuer, _, body = out.partition("\n")
    assert issuer == "Test Origin CA"  # passed through, undecrypted...
    assert f"served-by {NET}\n" in body and NET_BLOCKED not in body  # ...to the named site


def test_tls_without_a_name_and_a_request_without_a_host_are_refused_for_children(lab: Lab) -> None:
    assert raw(lab, NET_BLOCKED, 443, b"GET / HTTP/1.1\r\n\r\n", tls=True) in (b"cut", b"")
    answer = raw(lab, NET_BLOCKED, 80, b"GET /video HTTP/1.0\r\n\r\n")
    assert b"served-by" not in answer and b" 403 " in answer.split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    ("port", "data"),
    [
        (80, b"SSH-2.0-OpenSSH_9.2\r\n"),
        (443, b"SSH-2.0-OpenSSH_9.2\r\n"),
        (80, b"\r\nGET /video HTTP/1.1\r\nHost: www.pornhub.com\r\nConnection: close\r\n\r\n"),
    ],
    ids=["ssh-on-80", "ssh-on-443", "request-behind-a-blank-line"],
)
def test_anything_but_web_traffic_on_the_web_ports_is_refused(lab: Lab, port: int, data: bytes) -> None:
    """Relayed raw, the echo server would answer (its own 400 for SSH, the page for the hidden request)."""
    assert raw(lab, NET_BLOCKED, port, data) == b""


def test_a_site_named_by_its_address_is_refused_for_children(lab: Lab) -> None:
    """No list can say what is at an address: a child's request naming one (Host header, TLS name, in any
    spelling) is refused, and never reaches it."""
    status, body = get(lab, NET, NET_BLOCKED, "/video")
    assert status == 403 and "served-by" not in body
    for spelling in (f"{NET_BLOCKED}.", "0x0a.77.2.3", "167576067"):
        assert get_tls(lab, CHILD, spelling, lab.origin_ca).startswith("cut"), spelling


def test_a_name_that_leads_to_the_centres_own_network_is_refused_for_children(lab: Lab) -> None:
    """The staff PC's pages (or the Internet router's) are not the web, whatever name points there."""
    lab.start(sys.executable, "-c", _ECHO, netns=lab.staff)
    _wait_for(lab.staff, STAFF_PC, 80)
    status, body = get(lab, NET, "printer.example", "/admin")
    assert status != 200 and "served-by" not in body
