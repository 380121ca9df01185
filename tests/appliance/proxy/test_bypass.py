"""The ways round the filter a determined teenager tries through the proxy (regular mode, on loopback; the
transparent mode's are in tests/deploy/test_router_netns.py): naming one site and connecting to another,
tunnelling something that is not web traffic, and speaking to the appliance's own pages as someone else.

Every site here has an address of its own (conftest `sites`: a blocked site, kiddle.co, a help service,
the BBC), so a test can tell which one a request really reached.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.in_force.live import load_live
from profiles.decide import decide
from profiles.identity import identify
from profiles.request import Request
from profiles.verdict import Action
from tests.appliance.proxy.conftest import (
    BBC_SITE,
    BLOCKED_SITE,
    HELP_SITE,
    KIDDLE_SITE,
    KIDS,
    PHONE,
    SITE_NAMES,
    TEENS,
    YOUNG,
    Internet,
    Proxy,
    Sites,
    fetch,
    tunnel,
)
from tests.appliance.proxy.test_live import _events


def _reached(sites: Sites, before: dict[str, int]) -> set[str]:
    """The sites' addresses asked since `before` (a `_counts` snapshot)."""
    return {address for address, found in sites.by_address.items() if len(found.seen) > before[address]}


def _counts(sites: Sites) -> dict[str, int]:
    return {address: len(found.seen) for address, found in sites.by_address.items()}


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _exchange(proxy: Proxy, source: str, *messages: bytes, wait: float = 3.0) -> bytes:
    """Send `messages` to the proxy from `source` (a pause between them) and read until it closes."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10, source_address=(source, 0)) as sock:
        for message in messages:
            sock.sendall(message)
            time.sleep(0.2)
        sock.settimeout(wait)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


# ---- naming one site, sending to another ----


@pytest.mark.parametrize(
    ("device", "status"),
    [
        (TEENS, 200),  # open web: both names allowed, so the request goes to the site it named...
        (PHONE, 200),
        (YOUNG, 403),  # allowlist-only: the address is not on the allowlist
    ],
)
def test_a_host_header_naming_an_allowed_site_never_reaches_a_blocked_sites_address(
    proxy: Proxy, sites: Sites, device: str, status: int
) -> None:
    before = _counts(sites)
    got, _, _ = fetch(proxy, device, f"http://{BLOCKED_SITE}:{sites.http_port}/video", host="kiddle.co")
    assert got == status
    assert BLOCKED_SITE not in _reached(sites, before)
    assert _reached(sites, before) <= {KIDDLE_SITE}  # ...and only there
    rows = _events(proxy, "host = 'kiddle.co' AND client = ? AND reasons LIKE '%bypass-attempt%'", device)
    assert rows and rows[-1]["flagged"] == 1 and BLOCKED_SITE in rows[-1]["reasons"]


def test_a_host_header_naming_an_allowed_site_on_a_blocked_sites_url_is_blocked(
    proxy: Proxy, sites: Sites
) -> None:
    before = _counts(sites)
    status, _, body = fetch(proxy, TEENS, f"http://live.pornhub.com:{sites.http_port}/", host="kiddle.co")
    assert status == 403 and b"blocked" in body.lower()
    assert _reached(sites, before) == set()
    rows = _events(proxy, "host = 'kiddle.co' AND action = 'block' AND reasons LIKE '%live.pornhub.com%'")
    assert rows and rows[-1]["flagged"] == 1


def test_a_help_service_named_in_the_host_header_goes_to_the_help_service_not_the_blocked_site(
    proxy: Proxy, sites: Sites
) -> None:
    before = _counts(sites)
    status, _, _ = fetch(
        proxy, TEENS, f"http://{BLOCKED_SITE}:{sites.http_port}/", host="www.childline.org.uk"
    )
    assert status == 200 and _reached(sites, before) == {HELP_SITE}
    # Sent to a blocked site's name: blocked and logged, the help service never named in the log.
    status, _, _ = fetch(
        proxy,
        TEENS,
        f"http://live.pornhub.com:{sites.http_port}/chat/i-feel-sad",
        host="www.childline.org.uk",
    )
    assert status == 403 and _reached(sites, before) == {HELP_SITE}
    rows = _events(proxy, "host = 'live.pornhub.com' AND action = 'block' AND client = ?", TEENS)
    assert rows and all("childline" not in (r["reasons"] + r["url"]) for r in rows)
    assert all("i-feel-sad" not in r["url"] for r in rows)  # nor what was asked of it


def test_a_tls_name_of_an_allowed_site_in_a_tunnel_to_a_blocked_sites_address_goes_to_the_named_site(
    proxy: Proxy, sites: Sites
) -> None:
    before = _counts(sites)
    start = time.time()
    tls = tunnel(proxy, PHONE, sites.https_port, "kiddle.co", _unverified(), target=BLOCKED_SITE)
    with tls:
        tls.sendall(b"GET /where HTTP/1.1\r\nHost: kiddle.co\r\nConnection: close\r\n\r\n")
        with contextlib.suppress(OSError):
            while tls.recv(65536):
                pass
    assert _reached(sites, before) == {KIDDLE_SITE}
    # Logged: a visit of its own, or an attempt of the same way round the filter moments before (the
    # same device, host and reasons over plain HTTP: docs/store.md#visits).
    where = "host = 'kiddle.co' AND reasons LIKE '%bypass-attempt%' AND last_ts >= ?"
    rows = _events(proxy, where, start)
    assert rows and BLOCKED_SITE in rows[-1]["reasons"]


def test_a_tunnel_to_an_address_whose_tls_names_no_site_is_refused(proxy: Proxy, sites: Sites) -> None:
    """No list can say what is at an address: TLS that names no site, to an address, is refused for a
    child on the open web too (it reached the blocked site before)."""
    before = _counts(sites)
    with (
        pytest.raises((AssertionError, OSError, ssl.SSLError)),
        tunnel(proxy, PHONE, sites.https_port, BLOCKED_SITE, _unverified(), target=BLOCKED_SITE) as tls,
    ):
        tls.sendall(b"GET /secret HTTP/1.1\r\nHost: live.pornhub.com\r\nConnection: close\r\n\r\n")
        assert tls.recv(65536)
    assert _reached(sites, before) == set()
    rows = _events(proxy, "client = ? AND reasons LIKE '%named only by its address%'", PHONE)
    assert rows and rows[-1]["action"] == "block"


def test_an_allowlist_only_device_cannot_tunnel_to_an_address(proxy: Proxy, sites: Sites) -> None:
    with pytest.raises(AssertionError, match="403"):
        tunnel(proxy, YOUNG, sites.https_port, "kiddle.co", _unverified(), target=BLOCKED_SITE)


_NAMES = [*SITE_NAMES, "en.wikipedia.org"]
_ADDRESSES = [BLOCKED_SITE, KIDDLE_SITE, HELP_SITE, BBC_SITE]


@pytest.fixture(scope="module")
def policy_of(proxy: Proxy) -> Callable[[str, str], set[str]]:
    """The filtered resolution of a name for a device, from the proxy's own configuration: nothing for a
    name the device's profile blocks, the address itself for an address, else the "internet"'s answer."""
    live = load_live(proxy.config)

    def resolution(name: str, device: str) -> set[str]:
        identity = identify(device, None, live.devices, live.sessions, datetime.now(live.zone))
        if decide(Request(name), live.policy, identity, datetime.now(live.zone)).action is Action.BLOCK:
            return set()
        return {name} if name in _ADDRESSES else {SITE_NAMES.get(name, "127.0.0.1")}

    return resolution


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    named=st.sampled_from(_NAMES + _ADDRESSES),
    sent=st.sampled_from(_NAMES + _ADDRESSES),
    device=st.sampled_from([TEENS, PHONE, YOUNG]),
    tls=st.booleans(),
)
def test_a_child_never_reaches_an_address_the_named_sites_filtered_resolution_would_not_give(
    proxy: Proxy,
    sites: Sites,
    policy_of: Callable[[str, str], set[str]],
    named: str,
    sent: str,
    device: str,
    tls: bool,
) -> None:
    before = _counts(sites)
    with contextlib.suppress(AssertionError, OSError, ssl.SSLError):
        if tls:
            with tunnel(proxy, device, sites.https_port, named, _unverified(), target=sent) as conn:
                conn.sendall(f"GET / HTTP/1.1\r\nHost: {named}\r\nConnection: close\r\n\r\n".encode())
                while conn.recv(65536):
                    pass
        else:
            fetch(proxy, device, f"http://{sent}:{sites.http_port}/", host=named)
    time.sleep(0.05)  # the site's thread records the request
    # A TLS client sends no name for an address (RFC 6066): then the tunnel's target is what it names.
    decided = sent if tls and named in _ADDRESSES else named
    assert _reached(sites, before) <= policy_of(decided, device)


# ---- nothing relayed undecided ----


def _attempts(rows: list[sqlite3.Row]) -> int:
    """The attempts the event log's rows hold (a visit's are one row: docs/store.md#visits)."""
    return sum(row["attempts"] for row in rows)


@pytest.mark.parametrize(
    "payload",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n",  # SSH
        b"\x00\x0e\x38\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",  # OpenVPN over TCP
        b"\x16\x03\x01\x00\x05hello",  # looks like TLS and is not
    ],
    ids=["ssh", "openvpn", "fake-tls"],
)
def test_a_tunnel_carrying_something_other_than_web_traffic_is_refused_and_logged(
    proxy: Proxy, sites: Sites, payload: bytes
) -> None:
    before = len(sites.raw.received)
    where = "client = ? AND action = 'block' AND reasons LIKE '%bypass-attempt%'"
    time.sleep(0.5)  # the earlier tests' events written (the writer takes them four times a second)
    logged = _attempts(_events(proxy, where, TEENS, want=0))  # (attempts: a visit's are one row)
    target = f"{KIDDLE_SITE}:{sites.raw.port}"
    connect = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()
    answer = _exchange(proxy, TEENS, connect, payload)
    assert answer.startswith(b"HTTP/1.1 200")  # the tunnel opens (no site contacted yet)...
    time.sleep(0.5)
    assert sites.raw.received[before:] == []  # ...and what it carries never leaves the appliance
    if not payload.startswith(b"\x16"):  # a TLS record still being awaited is closed at the deadline
        deadline = time.monotonic() + 10
        while (
            _attempts(rows := _events(proxy, where, TEENS, want=1)) <= logged and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert _attempts(rows) == logged + 1 and rows[-1]["channel"] == "tcp"


def test_an_http_request_hidden_behind_a_blank_line_is_refused(proxy: Proxy, sites: Sites) -> None:
    """Web servers skip a blank line before a request (RFC 9112 2.2); mitmproxy's guess does not, and
    took the request for something else to relay raw."""
    before = len(sites.raw.received)
    target = f"{BLOCKED_SITE}:{sites.raw.port}"
    hidden = b"\r\nGET /video HTTP/1.1\r\nHost: live.pornhub.com\r\n\r\n"
    _exchange(proxy, TEENS, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode(), hidden, wait=1)
    time.sleep(0.5)
    assert sites.raw.received[before:] == []


def test_an_approved_service_that_is_not_web_is_relayed_decided_and_logged(
    proxy: Proxy, sites: Sites
) -> None:
    before = len(sites.raw.received)
    target = f"mail.example.org:{sites.raw.port}"
    _exchange(
        proxy, TEENS, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode(), b"a001 LOGIN sam secret\r\n", wait=1
    )
    deadline = time.monotonic() + 5
    while len(sites.raw.received) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sites.raw.received[before:] == [(KIDDLE_SITE, b"a001 LOGIN sam secret\r\n")]
    rows = _events(proxy, "detail = 'raw' AND host = 'mail.example.org' AND client = ?", TEENS, want=0)
    assert all(r["action"] != "block" for r in rows)


# ---- the appliance's own pages ----


@pytest.fixture(scope="module")
def dashboard(proxy: Proxy) -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "dashboard", str(proxy.config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", proxy.dashboard_port), 1):
            break
        assert process.poll() is None and time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.2)
    yield proxy.dashboard_port
    process.terminate()
    process.wait(10)


def _staff_page(answer: bytes) -> bool:
    """Did the dashboard treat the asker as staff (a staff page, or the way to sign in to one)?"""
    head = answer.split(b"\r\n", 1)[0]
    return head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 302", b"HTTP/1.0 200", b"HTTP/1.0 302"))


def test_a_child_cannot_name_itself_staff_to_the_dashboard_through_the_proxy(
    proxy: Proxy, dashboard: int
) -> None:
    forged = "X-Appliance-Client: 127.0.0.1\r\n"
    # Through the proxy, by the portal's name: the proxy names the child (signed), whatever it sent.
    answer = _exchange(
        proxy,
        KIDS,
        f"GET http://appliance.lan:{dashboard}/people HTTP/1.1\r\nHost: appliance.lan:{dashboard}\r\n"
        f"{forged}Connection: close\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 403") and b"staff only" in answer
    # Through a tunnel to the appliance, the request hidden from the proxy's parser: never relayed.
    answer = _exchange(
        proxy,
        KIDS,
        f"CONNECT 127.0.0.1:{dashboard} HTTP/1.1\r\n\r\n".encode(),
        f"\r\nGET /people HTTP/1.1\r\nHost: 127.0.0.1\r\n{forged}Connection: close\r\n\r\n".encode(),
    )
    assert not _staff_page(answer.split(b"\r\n\r\n", 1)[-1])
    # Straight to the dashboard from a device (here on loopback too): an unsigned header is not believed.
    with socket.create_connection(("127.0.0.1", dashboard), timeout=10, source_address=(KIDS, 0)) as sock:
        sock.sendall(f"GET /people HTTP/1.1\r\nHost: x\r\n{forged}Connection: close\r\n\r\n".encode())
        sock.settimeout(5)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 403")


def test_a_help_service_is_reached_whatever_its_answer_leads_to_and_never_logged(
    proxy: Proxy, sites: Sites, internet: Internet
) -> None:
    internet.cname["chat.childline.org.uk"] = "cdn.pornhub.com"  # behind a name a list blocks
    internet.add("cdn.pornhub.com", "A", HELP_SITE)
    before = _counts(sites)
    status, _, _ = fetch(proxy, YOUNG, f"http://chat.childline.org.uk:{sites.http_port}/talk")
    assert status == 200 and _reached(sites, before) == {HELP_SITE}
    # Something that is not web traffic to a help service is refused all the same, and not named either.
    target = f"www.childline.org.uk:{sites.raw.port}"
    _exchange(proxy, TEENS, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode(), b"SSH-2.0-OpenSSH_9.2\r\n", wait=1)
    time.sleep(0.6)  # the writer hands events over four times a second
    rows = _events(
        proxy, "host LIKE '%childline%' OR url LIKE '%childline%' OR reasons LIKE '%childline%'", want=0
    )
    assert rows == []


def test_a_switch_from_the_web_to_another_protocol_is_refused(proxy: Proxy, sites: Sites) -> None:
    """An answer 101 to `Upgrade: ssh` would make mitmproxy relay whatever follows, raw and undecided."""
    before = len(sites.raw.received)
    site = f"kiddle.co:{sites.raw.port}"
    upgrade = f"GET /upgrade HTTP/1.1\r\nHost: {site}\r\nConnection: Upgrade\r\nUpgrade: ssh\r\n\r\n"
    answer = _exchange(
        proxy,
        TEENS,
        f"GET http://{site}/upgrade HTTP/1.1\r\n".encode() + upgrade.split("\r\n", 1)[1].encode(),
        b"SSH-2.0-OpenSSH_9.6\r\n",
    )
    assert not answer.startswith(b"HTTP/1.1 101")
    time.sleep(3.5)  # the listener records a connection once it closes
    assert all(b"SSH-2.0" not in data for _, data in sites.raw.received[before:])
    rows = _events(proxy, "client = ? AND reasons LIKE '%another protocol%'", TEENS)
    assert rows and rows[-1]["action"] == "block"
