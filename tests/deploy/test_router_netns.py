"""Router mode, proven in network namespaces made here: a child host, the gateway (the real DNS filter
behind the real ruleset of appliance/router.py, loaded with nft), and an "internet" host. Traffic stays
inside the namespaces; every namespace is removed afterwards, even when a test fails.

What a child cannot get around: a hard-coded outside resolver is answered by the appliance all the same;
DNS over TLS (853) and QUIC (UDP 443) are refused at once; the known DNS-over-HTTPS resolvers are
refused; the gateway itself answers only DNS, DHCP, the proxy and the portal from the LAN. Ordinary
traffic is routed and masqueraded.
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
CENTRE_PC = "10.77.1.3"  # a centre-owned PC on the same host: managed, trusts the appliance's CA
STAFF_PC, GW_STAFF = "10.77.9.5", "10.77.9.1"  # the staff network, on the same cable (its own range)
OUTSIDE_RESOLVER = "203.0.113.53"  # nobody answers there: only the redirect can
DOH_RESOLVER = "9.9.9.9"  # on the refused list; the internet host has it too


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
    """Three namespaces joined by two veth pairs: child -- gw (lan0 | wan0) -- net."""

    def __init__(self, tag: str) -> None:
        self.child, self.gw, self.net = f"kid{tag}", f"gw{tag}", f"net{tag}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.config: Config | None = None
        self.logs = Path()
        self.origin_ca = self.appliance_ca = Path()

    def build(self) -> None:
        for ns in (self.child, self.gw, self.net):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", netns=ns)
        veth(self.child, "c0", self.gw, "lan0")
        veth(self.gw, "wan0", self.net, "n0")
        for ns, dev, address in (
            (self.child, "c0", f"{CHILD}/24"),
            (self.child, "c0", f"{CENTRE_PC}/24"),
            (self.child, "c0", f"{STAFF_PC}/24"),
            (self.gw, "lan0", f"{GW_LAN}/24"),
            # The staff range second: nftables' redirect answers from an interface's first address.
            (self.gw, "lan0", f"{GW_STAFF}/24"),
            (self.gw, "wan0", f"{GW_WAN}/24"),
            (self.net, "n0", f"{NET}/24"),
        ):
            sh("ip", "addr", "add", address, "dev", dev, netns=ns)
            sh("ip", "link", "set", dev, "up", netns=ns)
        sh("ip", "addr", "add", f"{DOH_RESOLVER}/32", "dev", "n0", netns=self.net)
        sh("ip", "route", "add", "default", "via", GW_LAN, netns=self.child)
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
        for ns in (self.child, self.gw, self.net):
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
        "\n".join(line for line in profiles.splitlines() if not line.startswith("    schedule:")),
        encoding="utf-8",
    )
    origin_ca, origin_cert, origin_key = _origin_ca(folder)
    config_path = folder / "appliance.yaml"
    config_path.write_text(
        f"""{text}
data_dir: {folder / "var"}
devices:
  - {{name: room1-pc1, network: {CENTRE_PC}, profile: "10-12", managed: true}}
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
dashboard:
  listen: 0.0.0.0:80
  staff_listen: 0.0.0.0:8081
  admin_networks: [10.77.9.0/24]
portal:
  closing_time: "24:00"  # the tests run at any hour
router:
  lan_interface: lan0
  wan_interface: wan0
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
            (GW_LAN, 8081, built.gw),
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


# The internet host's web server: answers every request with what it received (path and headers).
_ECHO = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("GET " + self.path + "\\n" + str(self.headers)).encode()
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


def get_tls(lab: Lab, source: str, name: str, ca: Path) -> str:
    return in_netns(lab.child, _GET_TLS.format(ca=str(ca), host=NET, source=source, name=name))


_GET = """
import http.client
c = http.client.HTTPConnection({host!r}, {port}, timeout=10)
c.request("GET", {path!r}, headers={{"Host": {name!r}}})
r = c.getresponse()
print(r.status)
print(r.read().decode("utf-8", "replace"))
"""


def get(lab: Lab, host: str, name: str, path: str = "/", port: int = 80) -> tuple[int, str]:
    out = in_netns(lab.child, _GET.format(host=host, port=port, name=name, path=path))
    status, _, body = out.partition("\n")
    return int(status), body


_ASK = """
import dns.message, dns.query, dns.rcode
q = dns.message.make_query({name!r}, "A")
r = dns.query.udp(q, {server!r}, port={port}, timeout=3)
print(dns.rcode.to_text(r.rcode()), *[rd.to_text() for rrset in r.answer for rd in rrset])
"""


def ask(lab: Lab, server: str, name: str, port: int = 53) -> str:
    return in_netns(lab.child, _ASK.format(server=server, port=port, name=name))


def test_the_gateway_answers_dns_with_the_childrens_filter(lab: Lab) -> None:
    assert ask(lab, GW_LAN, "www.pornhub.com") == f"NOERROR {GW_LAN}"  # the block page's address


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

_UDP = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
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


def test_dns_over_tls_quic_and_doh_resolvers_are_refused_at_once(lab: Lab) -> None:
    # Something listens on the internet host, so a refusal can only be the gateway's.
    # (TCP 443 there is the HTTPS site's.)
    lab.start(sys.executable, "-c", _LISTEN.format(tcp=[853, 8000], udp=[853, 443]), netns=lab.net)
    time.sleep(0.5)
    assert in_netns(lab.child, _CONNECT.format(host=NET, port=853)).startswith("refused")
    assert in_netns(lab.child, _UDP.format(host=NET, port=443)) == "refused"
    assert in_netns(lab.child, _UDP.format(host=NET, port=853)) == "refused"
    assert in_netns(lab.child, _CONNECT.format(host=DOH_RESOLVER, port=8000)).startswith(
        ("refused", "OSError")
    )
    # Ordinary traffic is routed (and masqueraded: the internet host sees the gateway).
    assert in_netns(lab.child, _CONNECT.format(host=NET, port=8000)) == "connected"


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
    blocked = in_netns(lab.child, _CONNECT.format(host=GW_LAN, port=2222))
    assert blocked.startswith("TimeoutError")  # dropped, not even refused
    assert in_netns(lab.gw, _CONNECT.format(host=GW_LAN, port=2222)) == "connected"  # from inside: fine


def test_web_traffic_goes_through_the_proxy_whatever_its_destination(lab: Lab) -> None:
    status, body = get(lab, NET, "en.wikipedia.org", "/wiki/Rainbow")
    assert status == 200 and body.startswith("GET /wiki/Rainbow")  # allowed: the site's own answer
    status, body = get(lab, NET, "www.pornhub.com", "/video")
    assert status == 403 and "This page is blocked" in body and "GET /video" not in body
    status, body = get(lab, NET, "www.google.com", "/search?q=cats")
    assert status == 200 and "safe=active" in body.splitlines()[0]  # safe search forced on the way


def test_the_dashboard_refuses_the_child_host_and_the_portal_answers_it(lab: Lab) -> None:
    status, body = get(lab, GW_LAN, "appliance.lan", "/people")
    assert status == 403 and "staff only" in body
    status, body = get(lab, GW_LAN, "appliance.lan", "/portal")
    assert status == 200 and "filtered and monitored" in body
    # The staff pages' own port: the firewall drops the children's network there, not even a refusal.
    assert in_netns(lab.child, _CONNECT.format(host=GW_LAN, port=8081)).startswith("TimeoutError")


_STAFF_GET = """
import http.client, socket
c = http.client.HTTPConnection({host!r}, 8081, timeout=10, source_address=({source!r}, 0))
c.request("GET", "/signin")
r = c.getresponse()
print(r.status, "Sign in" in r.read().decode())
"""


def test_the_staff_network_reaches_the_staff_pages_on_their_port(lab: Lab) -> None:
    assert in_netns(lab.child, _STAFF_GET.format(host=GW_STAFF, source=STAFF_PC)) == "200 True"
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
    from appliance.store.schema import connect

    assert lab.config is not None
    db = connect(lab.config.events_path)
    child = people.add_child(db, "Amira", "10-12", "4826", time.time())
    assert in_netns(lab.child, _SIGN_IN.format(gw=GW_LAN)) == "signed in"
    (session,) = people.open_sessions(db, time.time())
    # Bound to the child's device by its hardware address, as the gateway sees it in its ARP table.
    assert (session.child, session.client) == (child.id, CHILD) and session.device.count(":") == 5
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


def test_https_of_a_childs_own_device_passes_on_its_name_or_is_cut(lab: Lab) -> None:
    """An unmanaged device: decided on the TLS name alone, never decrypted."""
    allowed = get_tls(lab, CHILD, "en.wikipedia.org", lab.origin_ca)
    assert allowed.startswith("Test Origin CA") and "GET /page" in allowed  # the site's own certificate
    assert get_tls(lab, CHILD, "www.pornhub.com", lab.origin_ca).startswith("cut")


def test_a_centre_pc_trusting_the_appliance_gets_the_block_page_over_https(lab: Lab) -> None:
    blocked = get_tls(lab, CENTRE_PC, "www.pornhub.com", lab.appliance_ca)
    assert blocked.startswith("Childsafe appliance CA") and "This page is blocked" in blocked
