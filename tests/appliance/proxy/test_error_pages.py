"""A site that fails (cannot be reached, refuses, closes without answering, fails its TLS) gets our kind
"this site is not answering" page, for every device, never mitmproxy's raw 502 page with its error."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import flow as mflow
from mitmproxy.proxy.layers.http import HttpErrorHook
from mitmproxy.test import taddons
from mitmproxy.test.tutils import tresp

from appliance.proxy.error_pages import OURS, ErrorPages
from appliance.proxy.identify import Identify
from appliance.proxy.shared import Shared
from tests.appliance.proxy.conftest import KIDS, PHONE, STAFF, Internet, Origin, Proxy, fetch, https, trusting
from tests.appliance.proxy.world import CHILD, GUEST, flow, shared, through
from tests.appliance.proxy.world import STAFF as STAFF_DEVICE


@pytest.fixture
def world(tmp_path: Path) -> Shared:
    return shared(tmp_path)


def _failed(world: Shared, client: str, url: str, message: str) -> mflow.Flow:
    f = through([Identify(world)], "requestheaders", f=flow(client, url))
    f.error = mflow.Error(message)
    with taddons.context(ErrorPages(world), loadcore=False) as tctx:
        tctx.master.addons.trigger(HttpErrorHook(f))
    return f


# ---- the addon ----


@pytest.mark.parametrize("client", [CHILD, GUEST, STAFF_DEVICE])
@pytest.mark.parametrize(
    "message",
    [
        "Connection refused",
        "peer closed connection",
        "TLS handshake failed: certificate verify failed",
        "connection timed out",
    ],
)
def test_a_site_that_fails_gets_the_kind_page_for_every_device(
    world: Shared, client: str, message: str
) -> None:
    f = _failed(world, client, "http://wiki.example/homework", message)
    assert f.response is not None and f.response.status_code == 502
    text = f.response.get_text() or ""
    assert "This site is not answering" in text
    assert "wiki.example" in text
    assert message not in text and "mitmproxy" not in text.lower()
    assert f.metadata[OURS] is True


def test_a_site_whose_answer_was_under_way_is_left_to_be_cut(world: Shared) -> None:
    f = through([Identify(world)], "requestheaders", f=flow(CHILD, "http://wiki.example/big"))
    f.response = tresp()
    f.error = mflow.Error("peer closed connection")
    ErrorPages(world).error(f)
    assert f.response.status_code == 200 and OURS not in f.metadata


def test_a_connection_we_closed_ourselves_gets_no_page(world: Shared) -> None:
    f = through([Identify(world)], "requestheaders", f=flow(CHILD, "http://wiki.example/"))
    f.error = mflow.Error(mflow.Error.KILLED_MESSAGE)
    ErrorPages(world).error(f)
    assert f.response is None


# ---- the real proxy ----


@contextlib.contextmanager
def _site_that_hangs_up(address: str, port: int) -> Iterator[None]:
    """A server on `address:port` that takes each connection, reads what comes, and closes it unanswered."""
    server = socket.create_server((address, port))
    server.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(65536)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(2)
        server.close()


def _kind(status: int, body: bytes, host: str) -> None:
    text = body.decode()
    assert status == 502
    assert "This site is not answering" in text and host in text
    assert "mitmproxy" not in text.lower() and "Bad Gateway" not in text


@pytest.mark.parametrize("device", [KIDS, PHONE, STAFF])
def test_a_site_that_refuses_gets_the_kind_page(
    proxy: Proxy, origin: Origin, internet: Internet, device: str
) -> None:
    host = f"refuses-{device.rsplit('.', 1)[1]}.example"
    internet.add(host, "A", "127.0.0.9")  # nothing listens there
    status, _, body = fetch(proxy, device, f"http://{host}:{origin.http_port}/")
    _kind(status, body, host)


def test_a_site_that_closes_unanswered_gets_the_kind_page(
    proxy: Proxy, origin: Origin, internet: Internet
) -> None:
    internet.add("hangs-up.example", "A", "127.0.0.10")
    with _site_that_hangs_up("127.0.0.10", origin.http_port):
        status, _, body = fetch(proxy, KIDS, f"http://hangs-up.example:{origin.http_port}/page")
    _kind(status, body, "hangs-up.example")


def test_a_decrypted_site_whose_tls_fails_gets_the_kind_page(
    proxy: Proxy, origin: Origin, internet: Internet
) -> None:
    internet.add("broken-tls.example", "A", "127.0.0.11")
    with _site_that_hangs_up("127.0.0.11", origin.https_port):
        status, _, body = https(
            proxy, KIDS, origin.https_port, "broken-tls.example", "/", trusting(proxy.ca_pem)
        )
    _kind(status, body, "broken-tls.example")


def test_the_proxy_serves_the_next_request_after_a_failed_site(
    proxy: Proxy, origin: Origin, internet: Internet
) -> None:
    internet.add("refuses-again.example", "A", "127.0.0.9")
    fetch(proxy, KIDS, f"http://refuses-again.example:{origin.http_port}/")
    status, _, _ = fetch(proxy, KIDS, f"http://localhost:{origin.http_port}/")
    assert status == 200
