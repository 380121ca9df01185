"""The real dashboard (`python -m dashboard`) over real sockets on loopback, as router mode serves it: the
children's portal on plain HTTP, the staff pages and the portal's staff sign-in over HTTPS with a
certificate from the appliance's own CA; each port with its own connection pool, so that one device's
slow or silent connections to the portal never keep staff out."""

from __future__ import annotations

import http.client
import http.cookiejar
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from appliance.config import load_config
from appliance.net import local_addresses
from appliance.proxy.ca import ensure_authority
from appliance.site_certificate import CertificateError, ensure_site_certificate, read_certificate, site_names
from appliance.store import people, staff
from appliance.store.schema import connect
from tests.dashboard.conftest import PASSWORD, config_text, csrf_of
from tests.ports import free_port

LOOPBACK = "127.0.0.1"


@dataclass
class Running:
    portal: int
    staff: int
    portal_tls: int
    ca: Path
    log: Path
    store: Path


def _wait(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            return
        except OSError:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("servers")
    portal, staff, portal_tls = free_port(), free_port(), free_port()
    text = config_text(
        folder / "var",
        f"dashboard:\n  listen: {LOOPBACK}:{portal}\n  staff_listen: {LOOPBACK}:{staff}\n"
        f"  portal_tls_listen: {LOOPBACK}:{portal_tls}\n",
    )
    (folder / "appliance.yaml").write_text(text, encoding="utf-8")
    config = load_config(folder / "appliance.yaml")
    authority = ensure_authority(config.ca_dir)  # what the proxy does at its first start
    log = folder / "dashboard.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dashboard", str(folder / "appliance.yaml")], stdout=out, stderr=out
        )
    try:
        for port in (portal, staff, portal_tls):
            _wait(port, process, log)
        ca = authority.folder / "mitmproxy-ca-cert.pem"
        yield Running(portal, staff, portal_tls, ca, log, config.events_path)
    finally:
        process.terminate()
        process.wait(10)


def _https(running: Running, port: int, path: str) -> tuple[int, str, str]:
    """GET over HTTPS, the certificate checked against the appliance's CA: (status, Set-Cookie, body)."""
    context = ssl.create_default_context(cafile=str(running.ca))
    c = http.client.HTTPSConnection(LOOPBACK, port, timeout=10, context=context)
    c.request("GET", path)
    r = c.getresponse()
    return r.status, r.getheader("Set-Cookie") or "", r.read().decode()


def test_the_staff_pages_answer_over_https_with_the_appliances_own_certificate(running: Running) -> None:
    status, cookie, page = _https(running, running.staff, "/signin")
    assert status == 200 and "Sign in" in page
    # The sign-in cookie only ever travels over HTTPS, to this host: Secure, and __Host- prefixed.
    assert cookie.startswith("__Host-appliance_session=") and "; Secure" in cookie
    # Plain HTTP on the staff port gets no page at all.
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        c = http.client.HTTPConnection(LOOPBACK, running.staff, timeout=10)
        c.request("GET", "/signin")
        c.getresponse()
    # The children's port stays plain HTTP, its cookie not Secure (a child's phone does not trust our CA).
    c = http.client.HTTPConnection(LOOPBACK, running.portal, timeout=10)
    c.request("GET", "/portal")
    r = c.getresponse()
    assert r.status == 200 and "; Secure" not in (r.getheader("Set-Cookie") or "")
    # The portal over HTTPS, for staff signing in on a children's device.
    status, cookie, page = _https(running, running.portal_tls, "/portal/staff")
    assert status == 200 and 'name="password"' in page and "; Secure" in cookie


def test_a_childs_slow_connections_to_the_portal_do_not_keep_staff_out(running: Running) -> None:
    """Each port has its own pool: 250 half-sent requests on the portal's port (past its connection
    limit) and staff still get their page, and the portal serves again once they are gone."""
    slow = []
    try:
        for _ in range(250):
            s = socket.create_connection((LOOPBACK, running.portal), timeout=5)
            s.sendall(b"GET /portal HTTP/1.1\r\nHost: appliance.lan\r\nX-Slow: ")  # never finished
            slow.append(s)
        status, _, page = _https(running, running.staff, "/signin")
        assert status == 200 and "Sign in" in page
    finally:
        for s in slow:
            s.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            c = http.client.HTTPConnection(LOOPBACK, running.portal, timeout=5)
            c.request("GET", "/portal")
            assert c.getresponse().status == 200
            break
        except (OSError, http.client.HTTPException):
            assert time.monotonic() < deadline
            time.sleep(0.2)


def test_silent_connections_to_an_https_port_do_not_hold_up_the_next_one(running: Running) -> None:
    """A client that connects and never starts TLS holds no thread and does not stall the others (cheroot
    would do every handshake in its accept loop: cherrypy/cheroot#748)."""
    silent = [socket.create_connection((LOOPBACK, running.staff), timeout=5) for _ in range(20)]
    try:
        status, _, _ = _https(running, running.staff, "/signin")
        assert status == 200
        status, _, _ = _https(running, running.portal_tls, "/portal")
        assert status == 200
    finally:
        for s in silent:
            s.close()


def test_staff_sign_in_at_the_portal_over_https(running: Running) -> None:
    """What a member of staff does on a children's device: the portal's HTTPS port, their staff name and
    password, a cookie of its own; the device (here: loopback) is then staff in the store."""
    db = connect(running.store)
    staff.add_user(db, "maria", "Maria", staff.Role.STAFF, PASSWORD, time.time())
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(jar),
        urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(running.ca))),
    )
    site = f"https://{LOOPBACK}:{running.portal_tls}"
    page = opener.open(f"{site}/portal/staff", timeout=10).read().decode()
    form = {"csrf_token": csrf_of(page), "username": "maria", "password": PASSWORD}
    signed = opener.open(f"{site}/portal/staff/signin", urllib.parse.urlencode(form).encode(), timeout=10)
    assert "You are signed in as maria (staff)" in signed.read().decode()
    assert [c.name for c in jar] == ["__Host-appliance_session"] and all(c.secure for c in jar)
    (session,) = people.open_sessions(db, time.time())
    assert (session.display_name, session.profile, session.device) == ("maria", "staff", LOOPBACK)
    people.end_session(db, session.id, "logout", time.time())


# ---- the certificate ----


def test_the_certificate_names_the_appliance_and_is_renewed_before_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "appliance.yaml"
    path.write_text(
        config_text(tmp_path / "var", "dashboard:\n  listen: 0.0.0.0:80\n  staff_listen: 0.0.0.0:8081\n")
        + "dns:\n  block_page_addresses: [192.168.50.1]\n",
        encoding="utf-8",
    )
    config = load_config(path)
    folder, now = tmp_path / "tls", datetime.now(UTC)
    names = site_names(config, ["192.168.60.1"])
    assert names == ("appliance.lan", "192.168.50.1", "192.168.60.1")
    with pytest.raises(CertificateError, match="no certificate authority yet"):
        ensure_site_certificate(config.ca_dir, folder, names, now)  # the proxy has not made it yet
    ensure_authority(config.ca_dir)
    first = ensure_site_certificate(config.ca_dir, folder, names, now)
    assert first.names == set(names) and oct(first.key_path.stat().st_mode & 0o777) == "0o600"
    issued = x509.load_pem_x509_certificates(first.cert_path.read_bytes())
    ca = x509.load_pem_x509_certificate((config.ca_dir / "mitmproxy-ca-cert.pem").read_bytes())
    assert issued[0].issuer == ca.subject and issued[1] == ca  # the chain: ours, then the authority
    assert ensure_site_certificate(config.ca_dir, folder, names, now + timedelta(days=100)) == first
    # Renewed a month before it ends, or as soon as the appliance has an address it does not name.
    later = ensure_site_certificate(config.ca_dir, folder, names, now + timedelta(days=160))
    assert later.not_after > first.not_after
    moved = ensure_site_certificate(config.ca_dir, folder, [*names, "192.168.70.1"], now)
    assert moved.names == {*names, "192.168.70.1"} and read_certificate(folder) == moved


def test_the_machines_own_addresses_are_read_from_the_routing_table(tmp_path: Path) -> None:
    (tmp_path / "fib_trie").write_text(
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n"
        "     +-- 192.168.50.0/24 2 0 2\n        |-- 192.168.50.1\n           /32 host LOCAL\n"
        "Local:\n     |-- 192.168.50.1\n           /32 host LOCAL\n     |-- 127.0.0.1\n"
        "           /32 host LOCAL\n",
        encoding="ascii",
    )
    assert local_addresses(tmp_path / "fib_trie") == ["192.168.50.1", "127.0.0.1"]
    assert LOOPBACK in local_addresses()  # this machine's own
