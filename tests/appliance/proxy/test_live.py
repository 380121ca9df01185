"""The real proxy on loopback: what a child's browser gets, what the site sees, what staff find logged."""

from __future__ import annotations

import contextlib
import re
import socket
import sqlite3
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.proxy.report import REPORT_PATH
from tests.appliance.proxy.conftest import (
    BIG_MB,
    KIDS,
    PAGE,
    PHONE,
    STAFF,
    TEENS,
    Origin,
    Proxy,
    fetch,
    https,
    trusting,
    tunnel,
)


def _events(proxy: Proxy, where: str, *args: Any, want: int = 1) -> list[sqlite3.Row]:
    """Rows of the event log matching `where`, waiting for the writer (it writes four times a second)."""
    deadline = time.monotonic() + 10
    while True:
        rows = []
        with sqlite3.connect(proxy.events) as db, contextlib.suppress(sqlite3.OperationalError):
            db.row_factory = sqlite3.Row  # (the writer may not have made the file yet)
            rows = db.execute(f"SELECT * FROM event_log WHERE {where} ORDER BY ts", args).fetchall()
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


# ---- plain HTTP ----


def test_an_allowed_page_loads_unchanged(proxy: Proxy, origin: Origin) -> None:
    status, _, body = fetch(proxy, KIDS, f"http://localhost:{origin.http_port}/page.html")
    assert (status, body.decode()) == (200, PAGE)


def test_a_blocked_site_gets_the_block_page_and_is_never_contacted(proxy: Proxy, origin: Origin) -> None:
    before = len(origin.seen)
    status, headers, body = fetch(proxy, KIDS, f"http://www.pornhub.com:{origin.http_port}/video?id=42")
    page = body.decode()
    assert status == 403 and headers["content-type"].startswith("text/html")
    assert "www.pornhub.com" in page and "blocked" in page.lower()
    assert "demo-adult" in page  # the rule: which list
    assert REPORT_PATH in page and 'name="token"' in page  # the report button
    assert "Childline" in page and "tel:" in page  # the helpline from the configuration
    assert "10-12" not in page and KIDS not in page  # nothing about the profile or other users
    assert not any(s.host == "www.pornhub.com" for s in origin.seen[before:])
    # This request's row (the session's proxy logs other tests' blocks of the same site too): a block
    # keeps the whole address, query and all, for staff.
    rows = _events(proxy, "host = 'www.pornhub.com' AND action = 'block' AND url LIKE ?", "%/video?id=42")
    assert len(rows) == 1, "the block is logged once, with its whole address"
    assert rows[0]["subject"] == "device:kids-pc" and rows[0]["status"] == 403


def test_safe_search_is_forced_on_the_request(proxy: Proxy, origin: Origin) -> None:
    fetch(proxy, KIDS, f"http://www.google.com:{origin.http_port}/search?q=cats&safe=off")
    fetch(proxy, KIDS, f"http://www.youtube.com:{origin.http_port}/watch?v=1")
    fetch(proxy, KIDS, f"http://www.bing.com:{origin.http_port}/search?q=cats")
    asked = {s.host: s for s in origin.seen}
    assert "safe=active" in asked["www.google.com"].path and "safe=off" not in asked["www.google.com"].path
    assert asked["www.youtube.com"].headers.get("YouTube-Restrict") == "Strict"
    assert "adlt=strict" in asked["www.bing.com"].path


def test_a_phone_number_posted_by_a_child_is_stopped_and_logged(proxy: Proxy, origin: Origin) -> None:
    before = len(origin.seen)
    form = b"name=Sam&message=ring+me+on+07700+900123+after+school"
    status, _, body = fetch(
        proxy,
        KIDS,
        f"http://pen-pals.example:{origin.http_port}/contact",
        method="POST",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 403 and "private" in body.decode().lower()
    assert not any(s.body == form for s in origin.seen[before:])  # it never left the centre
    rows = _events(proxy, "host = 'pen-pals.example'")
    assert rows[0]["action"] == "block" and "personal-info" in rows[0]["reasons"]
    assert "900123" not in rows[0]["reasons"]  # the log keeps the kind, masked


def test_a_download_of_a_blocked_type_is_stopped_by_its_name(proxy: Proxy, origin: Origin) -> None:
    status, _, body = fetch(proxy, KIDS, f"http://files.example:{origin.http_port}/download")
    assert status == 403 and b"MZ fake" not in body
    status, _, body = fetch(proxy, STAFF, f"http://files.example:{origin.http_port}/download")
    assert (status, body) == (200, b"MZ fake")


def test_a_large_download_streams_through_without_being_held(proxy: Proxy, origin: Origin) -> None:
    def peak_rss_kb() -> int:
        (worker,) = _workers(proxy)
        text = Path(f"/proc/{worker}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", text).group(1))  # type: ignore[union-attr]

    before = peak_rss_kb()
    status, _, body = fetch(proxy, TEENS, f"http://localhost:{origin.http_port}/big.bin")
    assert status == 200 and len(body) == BIG_MB << 20
    assert peak_rss_kb() - before < 20 * 1024  # far less than the 50 MB that went through
    rows = _events(proxy, "url LIKE '%big.bin' AND bytes > 0", want=0)
    assert all(r["bytes"] == BIG_MB << 20 for r in rows)


def _workers(proxy: Proxy) -> list[int]:
    """The proxy's workers: its children (forked from it; their event writers are theirs)."""
    pid = proxy.process.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_the_report_button_reaches_staff_as_a_flag(proxy: Proxy, origin: Origin) -> None:
    _, _, body = fetch(proxy, KIDS, f"http://www.pornhub.com:{origin.http_port}/")
    token = re.search(rb'name="token" value="([^"]+)"', body).group(1).decode()  # type: ignore[union-attr]
    form = f"token={token}&note=I+needed+it+for+a+biology+project".encode()
    status, _, thanks = fetch(
        proxy,
        KIDS,
        f"http://www.pornhub.com{REPORT_PATH}",
        method="POST",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200 and "thank" in thanks.decode().lower()
    # Its own report: other tests on this session's proxy report other blocks.
    rows = _events(proxy, "detail = 'report' AND host = 'www.pornhub.com'")
    assert rows[0]["flagged"] == 1 and "biology project" in rows[0]["reasons"]
    assert rows[0]["host"] == "www.pornhub.com" and rows[0]["subject"] == "device:kids-pc"
    forged = form.replace(token[:8].encode(), b"AAAAAAAA")
    status, _, _ = fetch(
        proxy,
        KIDS,
        f"http://www.pornhub.com{REPORT_PATH}",
        method="POST",
        body=forged,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 400


def test_the_certificate_page_is_served_on_the_portal_host(proxy: Proxy) -> None:
    status, _, page = fetch(proxy, PHONE, "http://appliance.lan/ca")
    assert status == 200
    pem = proxy.ca_pem.read_bytes()
    status, _, served = fetch(proxy, PHONE, "http://appliance.lan/ca.pem")
    assert (status, served) == (200, pem)
    assert b"Windows" in page and b"Android" in page and b"macOS" in page and b"ChromeOS" in page


# ---- TLS: intercepted on centre devices, decided on the SNI name elsewhere ----


def test_a_managed_device_gets_the_block_page_over_https(proxy: Proxy, origin: Origin) -> None:
    status, _, body = https(proxy, KIDS, origin.https_port, "www.pornhub.com", "/", trusting(proxy.ca_pem))
    assert status == 403 and b"www.pornhub.com" in body


def test_a_managed_device_pages_are_scored_for_phrases(proxy: Proxy, origin: Origin) -> None:
    # Children 10-12: the page's score passes the limit, it is blocked.
    status, _, body = https(
        proxy, KIDS, origin.https_port, "en.wikipedia.org", "/phrases.html", trusting(proxy.ca_pem)
    )
    assert status == 403 and b"porn porn" not in body
    # Teenagers (phrase limits flag in this configuration): the page loads, staff see a flag.
    status, _, body = https(
        proxy, TEENS, origin.https_port, "en.wikipedia.org", "/phrases.html", trusting(proxy.ca_pem)
    )
    assert status == 200 and b"porn porn" in body
    rows = _events(proxy, "subject = 'device:teen-laptop' AND url LIKE '%phrases.html'")
    assert rows[0]["flagged"] == 1 and rows[0]["action"] == "flag" and '"phrases"' in rows[0]["reasons"]


def test_a_teenager_posting_a_phone_number_is_flagged_not_stopped(proxy: Proxy, origin: Origin) -> None:
    form = b"message=my+number+is+07700+900456"
    status, _, _ = https(
        proxy,
        TEENS,
        origin.https_port,
        "www.google.com",
        "/forms/post",
        trusting(proxy.ca_pem),
        method="POST",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200 and any(s.body == form for s in origin.seen)
    rows = _events(proxy, "subject = 'device:teen-laptop' AND url LIKE '%/forms/post%'")
    assert rows[0]["flagged"] == 1 and "personal-info" in rows[0]["reasons"]


def test_an_unmanaged_device_passes_through_with_the_sites_own_certificate(
    proxy: Proxy, origin: Origin
) -> None:
    tls = tunnel(proxy, PHONE, origin.https_port, "en.wikipedia.org", trusting(origin.ca_pem))
    try:
        cert = tls.getpeercert()
        issuer = dict(item[0] for item in cert["issuer"])  # type: ignore[index, misc]
        assert issuer["commonName"] == "Test Origin CA"  # not the appliance's: never decrypted
    finally:
        tls.close()
    rows = _events(
        proxy, "channel = 'tls' AND subject = 'device:own-phone' AND host = 'en.wikipedia.org'", want=0
    )
    assert all(r["action"] != "block" for r in rows)


def test_an_unmanaged_device_that_does_not_trust_the_centre_is_refused_a_blocked_name_at_the_connect(
    proxy: Proxy, origin: Origin
) -> None:
    # Its first blocked name is shown the centre's certificate, which it refuses (tests/.../test_trust.py)
    with contextlib.suppress(ssl.SSLError, ConnectionError, AssertionError):
        tunnel(proxy, PHONE, origin.https_port, "www.pornhub.com", trusting(origin.ca_pem)).close()
    with pytest.raises(AssertionError, match="403"):
        tunnel(proxy, PHONE, origin.https_port, "www.pornhub.com", trusting(origin.ca_pem))
    rows = _events(proxy, "channel = 'tls' AND host = 'www.pornhub.com' AND subject = 'device:own-phone'")
    assert rows and rows[0]["action"] == "block"  # (one visit: both attempts)


def test_a_blocked_tls_name_inside_an_allowed_connect_is_cut_and_flagged(
    proxy: Proxy, origin: Origin
) -> None:
    before = len(origin.seen)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        tls = tunnel(
            proxy, PHONE, origin.https_port, "www.pornhub.com", trusting(origin.ca_pem), target="kiddle.co"
        )
        tls.close()
    assert len(origin.seen) == before
    rows = _events(
        proxy,
        "channel = 'tls' AND host = 'www.pornhub.com' AND detail = 'tls' AND reasons LIKE '%kiddle.co%'",
    )
    assert rows[0]["action"] == "block" and rows[0]["flagged"] == 1
    assert "bypass-attempt" in rows[0]["reasons"] and "kiddle.co" in rows[0]["reasons"]


def test_the_proxy_keeps_serving_after_garbage(proxy: Proxy, origin: Origin) -> None:
    for junk in (b"\x16\x03\x01\x00\x05hello", b"GET / HTTP/9.9\r\n\r\n", b"\x00" * 100):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(junk)
            sock.settimeout(2)
            with contextlib.suppress(OSError):
                sock.recv(100)
    status, _, _ = fetch(proxy, KIDS, f"http://localhost:{origin.http_port}/")
    assert status == 200


def test_the_appliance_itself_is_not_reachable_through_its_proxy(proxy: Proxy) -> None:
    """A device using the proxy must not reach services on the appliance (its SSH, its DNS filter, a
    dashboard listening on loopback): the proxy refuses its own addresses, by number or by name, in plain
    requests and in tunnels alike, and never opens the connection."""
    accepted: list[object] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        for url in (f"http://127.0.0.1:{port}/", f"http://localhost:{port}/"):
            status, _, _ = fetch(proxy, KIDS, url, host=f"localhost:{port}")
            assert status == 502
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10, source_address=(KIDS, 0))
        with sock:
            sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            sock.sendall(b"\x16\x03\x01\x00\x05hello")  # not a real ClientHello: the tunnel is plain TCP
            sock.settimeout(5)
            with contextlib.suppress(OSError):
                sock.recv(4096)
        with contextlib.suppress(TimeoutError, OSError):
            accepted.append(server.accept())
    finally:
        server.close()
    assert accepted == []
