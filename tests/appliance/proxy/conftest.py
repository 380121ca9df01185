"""The proxy's test bench: an origin web server on loopback over HTTP and HTTPS (its own test CA), a
fake "internet" resolver on loopback that the proxy resolves names with (every name is the origin's
address, 127.0.0.1, unless a test says otherwise), the real `appliance proxy` as a subprocess on the demo
lists, and clients that ask from chosen loopback addresses (the devices of the test configuration are told
apart by their 127.0.0.x address).

Requests name real sites (`http://www.pornhub.com:<origin port>/`, CONNECT www.pornhub.com:<port>) and
the proxy resolves them itself, so every byte stays on loopback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.config import load_config
from appliance.lists import compile_lists
from appliance.store.schema import connect
from tests.appliance.dns.conftest import FakeUpstream
from tests.ports import free_port

KIDS, TEENS, PHONE, STAFF = "127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"
YOUNG = "127.0.0.25"  # an under-10 child's own phone: allowlist-only, never decrypted
# Sites on addresses of their own (tests/appliance/proxy/conftest.py `sites`), as the "internet" resolves
# them: a blocked site, an allowed one, a help service and another allowed one.
BLOCKED_SITE, KIDDLE_SITE, HELP_SITE, BBC_SITE = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
SITE_NAMES = {
    "live.pornhub.com": BLOCKED_SITE,
    "kiddle.co": KIDDLE_SITE,
    "www.childline.org.uk": HELP_SITE,
    "www.bbc.co.uk": BBC_SITE,
    "mail.example.org": KIDDLE_SITE,  # an approved service that is not web (proxy.raw_services)
}
BIG_MB = 50
PHRASE_PAGE = "<html><body><p>" + " ".join(["porn"] * 5) + " and a lot of ordinary text.</p></body></html>"
PAGE = "<html><body><h1>Homework help</h1><p>Fractions, decimals and percentages.</p></body></html>"


@dataclass
class Seen:
    method: str
    path: str
    host: str
    headers: dict[str, str]
    body: bytes
    reached: str = ""  # the origin's address the request came in on


@dataclass
class Origin:
    """What the origin was asked (in order)."""

    seen: list[Seen] = field(default_factory=list)
    http_port: int = 0
    https_port: int = 0
    ca_pem: Path = Path()


class Internet(FakeUpstream):
    """The names the proxy resolves: `add(name, "A", address)` for a chosen address; every other name
    has the A record 127.0.0.1 (the origin)."""

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        import dns.message
        import dns.rdatatype

        q = dns.message.from_wire(wire).question[0]
        name = q.name.to_text().rstrip(".").lower()
        if (name, "A") not in self.records and name not in self.cname:
            self.records[(name, "A")] = (300, ["127.0.0.1"])
        return super().answer(wire, transport)


@pytest.fixture(scope="session")
def internet() -> Iterator[Internet]:
    found = Internet()
    yield found
    found.close()


def _handler(origin: Origin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _record(self) -> None:
            size = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(size) if size else b""
            host = self.headers.get("host", "")
            host = host.rsplit(":", 1)[0] if host.rsplit(":", 1)[-1].isdigit() else host  # without its port
            seen = Seen(self.command, self.path, host, dict(self.headers.items()), body)
            seen.reached = self.connection.getsockname()[0]
            origin.seen.append(seen)

        def _send(
            self, status: int, body: bytes, kind: str = "text/html; charset=utf-8", **extra: str
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._record()
            path = self.path.split("?", 1)[0]
            if path == "/phrases.html":
                self._send(200, PHRASE_PAGE.encode())
            elif path == "/big.bin":
                chunk = b"\0" * (1 << 20)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(BIG_MB << 20))
                self.end_headers()
                for _ in range(BIG_MB):
                    self.wfile.write(chunk)
            elif path == "/download":
                self._send(
                    200,
                    b"MZ fake",
                    "application/octet-stream",
                    Content_Disposition='attachment; filename="game.exe"',
                )
            else:
                self._send(200, PAGE.encode())

        def do_POST(self) -> None:
            self._record()
            self._send(200, b"<html><body>thanks</body></html>")

        do_PUT = do_DELETE = do_POST

    return Handler


def _origin_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate from it for the sites the tests name; (ca, cert, key) PEM files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Origin CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = ["en.wikipedia.org", "www.google.com", "www.pornhub.com", "localhost", *SITE_NAMES]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Origin")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "origin-ca.pem", folder / "origin-cert.pem", folder / "origin-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture(scope="session")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    folder = tmp_path_factory.mktemp("origin")
    ca, cert, key = _origin_ca(folder)
    found = Origin(ca_pem=ca)
    plain = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
    secure = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    for server in (plain, secure):
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    found.http_port, found.https_port = plain.server_address[1], secure.server_address[1]
    yield found
    plain.shutdown()
    secure.shutdown()


@dataclass
class Listener:
    """A plain TCP server that records what each connection sent (nothing is ever answered)."""

    port: int
    received: list[tuple[str, bytes]] = field(default_factory=list)  # (address reached, bytes)


@dataclass
class Sites:
    """Web servers (HTTP and HTTPS, the same two ports on each address) on the SITE_NAMES addresses, and
    raw TCP listeners on one more port there."""

    http_port: int
    https_port: int
    raw: Listener
    by_address: dict[str, Origin]


def _listen_everywhere(addresses: list[str], make: object) -> tuple[int, list[object]]:
    """Servers from `make(address, port)` on one port shared by every address (tried until free)."""
    for _ in range(20):
        servers = [make(addresses[0], 0)]  # type: ignore[operator]
        port = servers[0].server_address[1]
        try:
            servers += [make(address, port) for address in addresses[1:]]  # type: ignore[operator]
        except OSError:
            for server in servers:
                server.server_close()
            continue
        return port, servers
    raise OSError("no port free on every test address")


@pytest.fixture(scope="session")
def sites(tmp_path_factory: pytest.TempPathFactory, internet: Internet) -> Iterator[Sites]:
    import socketserver

    folder = tmp_path_factory.mktemp("sites")
    ca, cert, key = _origin_ca(folder)
    addresses = sorted(set(SITE_NAMES.values()))
    by_address = {address: Origin(ca_pem=ca) for address in addresses}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def web(address: str, port: int) -> ThreadingHTTPServer:
        return ThreadingHTTPServer((address, port), _handler(by_address[address]))

    def secure_web(address: str, port: int) -> ThreadingHTTPServer:
        server = web(address, port)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        return server

    raw = Listener(0)

    class Record(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(3)
            data = b""
            with contextlib.suppress(OSError):
                while chunk := self.request.recv(4096):
                    data += chunk
                    if data.startswith(b"GET /upgrade") and b"\r\n\r\n" in data and b"101" not in data:
                        # A server that switches to whatever protocol it is asked for (then records it).
                        self.request.sendall(
                            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ssh\r\nConnection: Upgrade\r\n\r\n"
                        )
                        data += b"[101]"
            raw.received.append((self.request.getsockname()[0], data))

    def tcp(address: str, port: int) -> socketserver.ThreadingTCPServer:
        return socketserver.ThreadingTCPServer((address, port), Record)

    http_port, plain = _listen_everywhere(addresses, web)
    https_port, secure = _listen_everywhere(addresses, secure_web)
    raw.port, listeners = _listen_everywhere(addresses, tcp)
    servers = [*plain, *secure, *listeners]
    for server in servers:
        server.daemon_threads = True  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()  # type: ignore[attr-defined]
    for name, address in SITE_NAMES.items():
        internet.add(name, "A", address)
    for found in by_address.values():
        found.http_port, found.https_port = http_port, https_port
    yield Sites(http_port, https_port, raw, by_address)
    for server in servers:
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]


@dataclass
class Proxy:
    port: int
    data_dir: Path
    ca_pem: Path
    process: subprocess.Popen[bytes]
    config: Path = Path()
    dashboard_port: int = 0

    @property
    def events(self) -> Path:
        return self.data_dir / "appliance.sqlite"


def write_config(
    folder: Path,
    origin: Origin,
    port: int,
    resolver: str = "127.0.0.1:9",
    *,
    sites: Sites | None = None,
    dashboard_port: int = 0,
    extra: str = "",
) -> Path:
    shipped = resources.files("appliance") / "defaults"
    text = (shipped / "appliance.yaml").read_text(encoding="utf-8")
    text = text.replace("path: lists/", f"path: {shipped / 'lists'}/").split("\npolicy:")[0]
    # The shipped profiles, open at any hour (the tests run whenever CI does), with teenagers' phrase
    # limits flagging rather than blocking.
    profiles = (shipped / "policy" / "profiles.yaml").read_text(encoding="utf-8")
    profiles = "\n".join(line for line in profiles.splitlines() if not line.startswith("    schedule:"))
    head, teens = profiles.split("  13-17:", 1)
    teens = teens.replace("action: block}", "action: flag}", 1)
    (folder / "profiles.yaml").write_text(head + "  13-17:" + teens, encoding="utf-8")
    config = folder / "appliance.yaml"
    local_ports = [origin.http_port, origin.https_port]
    if sites is not None:
        local_ports += [sites.http_port, sites.https_port, sites.raw.port]
    config.write_text(
        f"""{text}
data_dir: {folder / "var"}
policy:
  timezone: Europe/London
  profiles: {folder / "profiles.yaml"}
devices:
  - {{name: kids-pc, network: {KIDS}, profile: "10-12", managed: true}}
  - {{name: teen-laptop, network: {TEENS}, profile: "13-17", managed: true}}
  - {{name: own-phone, network: {PHONE}, profile: "10-12"}}
  - {{name: staff-laptop, network: {STAFF}, profile: staff}}
  - {{name: young-phone, network: {YOUNG}, profile: under-10}}
proxy:
  listen: 127.0.0.1:{port}
  workers: 1
  centre: Riverside Youth Centre
  upstream_trusted_ca: {origin.ca_pem}
  reachable_local_ports: [{", ".join(str(p) for p in local_ports if p)}]
  raw_services: ["mail.example.org:{sites.raw.port if sites else 1}"]
dashboard:
  listen: 127.0.0.1:{dashboard_port or 8000}
dns:
  upstreams: ["{resolver}"]
  upstream_timeout_s: 0.5
  servfail_after_s: 1.5
{extra}""",
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="session")
def proxy(
    tmp_path_factory: pytest.TempPathFactory, origin: Origin, internet: Internet, sites: Sites
) -> Iterator[Proxy]:
    folder = tmp_path_factory.mktemp("proxy")
    port, dashboard_port = free_port(), free_port()
    config_path = write_config(
        folder, origin, port, internet.address, sites=sites, dashboard_port=dashboard_port
    )
    compile_lists(load_config(config_path), now=dt.datetime.now(dt.UTC))
    found = start_proxy(config_path, port, origin, folder / "proxy.log", dashboard_port=dashboard_port)
    yield found
    found.process.terminate()
    found.process.wait(30)


def start_proxy(
    config_path: Path, port: int, origin: Origin, log: Path, *, dashboard_port: int = 0, source: str = KIDS
) -> Proxy:
    """`appliance proxy --config config_path` (listening on `port`, its lists compiled), once a page of
    `origin` comes through it for `source`; its output in `log`. The caller terminates `process`."""
    config = load_config(config_path)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "proxy", "--config", str(config_path)],
            stdout=out,
            stderr=out,
        )
    found = Proxy(
        port, config.data_dir, config.ca_dir / "mitmproxy-ca-cert.pem", process, config_path, dashboard_port
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            status, _, _ = fetch(found, source, f"http://localhost:{origin.http_port}/")
            if status == 200:
                return found
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()  # never left running behind a failed start
            process.wait(30)
            raise RuntimeError("the proxy did not start:\n" + log.read_text(errors="replace"))
        time.sleep(0.2)


def sign_in_taken(proxy: Proxy, source: str, since: float, page: str) -> bool:
    """Has the proxy taken in the portal sign-in (made at `since`) on `source`? Fetching `page` from
    there marks the session in use (its `last_seen` moves on) once the proxy knows who is signed in."""
    fetch(proxy, source, page)
    db = connect(proxy.events)
    try:
        (seen,) = db.execute("SELECT max(last_seen) FROM sessions WHERE device = ?", (source,)).fetchone()
    finally:
        db.close()
    return seen is not None and seen > since


def fetch(
    proxy: Proxy,
    source: str,
    url: str,
    *,
    host: str | None = None,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """A plain-HTTP request for `url` through the proxy from `source`; `host`, if given, goes in the Host
    header instead of the URL's (a browser never does that)."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30, source_address=(source, 0))
    try:
        sent = dict(headers or {})
        if host:
            sent["Host"] = host
        conn.request(method, url, body=body, headers=sent)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def tunnel(
    proxy: Proxy, source: str, port: int, sni: str, context: ssl.SSLContext, *, target: str | None = None
) -> ssl.SSLSocket:
    """CONNECT `target` (default: `sni`) on the origin's `port` through the proxy from `source`, then TLS
    with `sni`."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30, source_address=(source, 0))
    to = f"{target or sni}:{port}"
    sock.sendall(f"CONNECT {to} HTTP/1.1\r\nHost: {to}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the proxy closed the CONNECT")
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return context.wrap_socket(sock, server_hostname=sni)


def https(
    proxy: Proxy,
    source: str,
    port: int,
    sni: str,
    path: str,
    context: ssl.SSLContext,
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """An HTTPS request through a CONNECT tunnel; returns status, headers, body."""
    tls = tunnel(proxy, source, port, sni, context)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {sni}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        response = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        tls.close()


def trusting(*cas: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(cas[0]))
    for ca in cas[1:]:
        context.load_verify_locations(cafile=str(ca))
    return context
