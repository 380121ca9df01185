"""A device's own phone that trusts the centre's certificate gets the block page on a blocked HTTPS site;
one that does not gets the connection cut at its ClientHello (no certificate shown) once its one failed
handshake with our certificate is remembered. The centre's managed devices behave as their profile says."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import pytest
from mitmproxy.test import taddons, tflow, tutils

from appliance.proxy.connections import Connections
from appliance.proxy.shared import Shared
from appliance.proxy.trust import DeviceTrust, distrusts
from tests.appliance.proxy.conftest import Origin, Proxy, fetch, https, trusting, tunnel
from tests.appliance.proxy.world import GUEST, STAFF, TEEN, shared

# ---- what is remembered ----


def test_a_device_is_unknown_until_a_handshake_shown_our_certificate_ends() -> None:
    trust = DeviceTrust(ttl=60)
    assert trust.trusts("10.0.0.5", 0) is None
    trust.ended("conn-1", trusted=True, now=0)  # a connection never shown our certificate: nothing learnt
    assert trust.trusts("10.0.0.5", 0) is None


@pytest.mark.parametrize(
    ("trusted", "shown_again"),
    [
        (True, True),  # trusts: every blocked site shows the block page
        (False, False),  # does not: cut at the ClientHello, no certificate shown
    ],
)
def test_a_handshake_that_ends_is_remembered_for_the_device(trusted: bool, shown_again: bool) -> None:
    trust = DeviceTrust(ttl=60)
    assert trust.may_show_certificate("10.0.0.5", "conn-1", now=0)  # unknown: shown once, to learn
    trust.ended("conn-1", trusted=trusted, now=0)
    assert trust.trusts("10.0.0.5", 30) is trusted
    assert trust.may_show_certificate("10.0.0.5", "conn-2", now=30) is shown_again
    assert trust.trusts("10.0.0.6", 30) is None  # another device: not known


def test_what_a_device_showed_expires_and_is_forgotten_when_it_fetches_the_certificate() -> None:
    trust = DeviceTrust(ttl=60)
    trust.may_show_certificate("10.0.0.5", "conn-1", now=0)
    trust.ended("conn-1", trusted=False, now=0)
    assert trust.trusts("10.0.0.5", 61) is None  # (an address may pass to another device)
    trust.may_show_certificate("10.0.0.5", "conn-2", now=100)
    trust.ended("conn-2", trusted=False, now=100)
    trust.forget("10.0.0.5")
    assert trust.trusts("10.0.0.5", 101) is None


@pytest.mark.parametrize(
    ("error", "distrusting"),
    [
        ("The client does not trust the proxy's certificate for x.example (tlsv1 alert unknown ca)", True),
        (
            "The client disconnected during the handshake. If this happens consistently for x.example, "
            "this may indicate that the client does not trust the proxy's certificate.",
            True,
        ),
        ("The client may not trust the proxy's certificate for x.example (OpenSSL ...)", True),
        ("Client and mitmproxy cannot agree on a TLS version to use.", False),
        ("Cannot parse ClientHello: 1603", False),
        ("connection closed early", False),
    ],
)
def test_only_a_refused_certificate_counts_as_not_trusting(error: str, distrusting: bool) -> None:
    assert distrusts(error) is distrusting


# ---- the CONNECT of a device's own phone ----


@pytest.fixture
def world(tmp_path: Path) -> Shared:
    return shared(tmp_path)


def _connect(world: Shared, client: str, host: str) -> int:
    f = tflow.tflow(req=tutils.treq(method=b"CONNECT", host=host, port=443, path=b"", authority=b""))
    f.client_conn.peername = (client, 50000)
    addon = Connections(world)
    with taddons.context(addon, loadcore=False):
        addon.http_connect(f)
    return f.response.status_code if f.response is not None else 0


def test_a_blocked_connect_of_an_own_device_waits_for_its_tls_unless_it_does_not_trust(world: Shared) -> None:
    assert _connect(world, GUEST, "social.example") == 0  # may trust: its TLS name decides
    world.trust.may_show_certificate(GUEST, "conn-1", now=time.monotonic())
    world.trust.ended("conn-1", trusted=False, now=time.monotonic())
    assert _connect(world, GUEST, "social.example") == 403  # does not: refused at once


@pytest.mark.parametrize(
    ("client", "host"),
    [
        (TEEN, "adult.example"),  # the centre's managed device: as its profile says
        (STAFF, "malware.example"),  # staff's own device: their traffic is never decrypted
    ],
)
def test_the_centres_and_staffs_devices_are_refused_a_blocked_connect_as_before(
    world: Shared, client: str, host: str
) -> None:
    assert _connect(world, client, host) == 403


# ---- real TLS clients through the real proxy ----

TRUSTING, DOUBTING = "127.0.0.61", "127.0.0.62"  # guests' own phones (no device entry)


def test_a_phone_that_trusts_the_centre_gets_the_block_page_over_https(proxy: Proxy, origin: Origin) -> None:
    before = len(origin.seen)
    for _ in range(2):  # the first time learns that it trusts, the next knows
        status, _, body = https(
            proxy, TRUSTING, origin.https_port, "www.pornhub.com", "/video", trusting(proxy.ca_pem)
        )
        assert status == 403 and b"This page is blocked" in body
    assert len(origin.seen) == before  # the site is never contacted


def test_a_phone_that_does_not_trust_the_centre_is_cut_fast_after_one_refused_handshake(
    proxy: Proxy, origin: Origin
) -> None:
    before = len(origin.seen)
    with pytest.raises(ssl.SSLCertVerificationError):  # shown our certificate once, and refuses it
        tunnel(proxy, DOUBTING, origin.https_port, "www.pornhub.com", trusting(origin.ca_pem))
    # Remembered: cut before any certificate is shown, at the CONNECT (at the ClientHello in transparent
    # mode, where there is no CONNECT).
    with pytest.raises(AssertionError, match="403"):
        tunnel(proxy, DOUBTING, origin.https_port, "www.pornhub.com", trusting(origin.ca_pem))
    # An allowed site still passes untouched, with its own certificate.
    tls = tunnel(proxy, DOUBTING, origin.https_port, "en.wikipedia.org", trusting(origin.ca_pem))
    tls.close()
    assert len(origin.seen) == before


def test_the_portal_offers_own_devices_the_certificate_with_steps(proxy: Proxy) -> None:
    status, headers, body = fetch(proxy, "127.0.0.63", "http://appliance.lan/ca/own")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    page = body.decode()
    assert "See why a site is blocked, on your own phone" in page
    assert 'href="/ca.der"' in page and 'href="/ca.pem"' in page
    assert fetch(proxy, "127.0.0.63", "http://appliance.lan/ca.pem")[2] == proxy.ca_pem.read_bytes()
