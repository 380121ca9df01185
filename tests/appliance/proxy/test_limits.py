"""One device cannot starve the centre through the proxy: its connections are capped, a connection that
sends no request head in time is closed, an endless request head is refused, and the proxy serves
everyone else meanwhile. A proxy of its own with small limits (proxy.connections_per_device: 4,
proxy.head_timeout_s: 1)."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.lists import compile_lists
from appliance.proxy.limits import MAX_HEAD_BYTES, limit_request_heads
from tests.appliance.proxy.conftest import (
    KIDS,
    PHONE,
    TEENS,
    Internet,
    Origin,
    Proxy,
    fetch,
    write_config,
)
from tests.appliance.proxy.test_live import _workers
from tests.ports import free_port

PER_DEVICE = 4


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, origin: Origin, internet: Internet) -> Iterator[Proxy]:
    folder = tmp_path_factory.mktemp("limits")
    port = free_port()
    config_path = write_config(folder, origin, port, internet.address)
    text = config_path.read_text().replace(
        "  workers: 1\n", f"  workers: 1\n  connections_per_device: {PER_DEVICE}\n  head_timeout_s: 1\n"
    )
    config_path.write_text(text)
    config = load_config(config_path)
    compile_lists(config, now=dt.datetime.now(dt.UTC))
    log = (folder / "proxy.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "proxy", "--config", str(config_path)], stdout=log, stderr=log
    )
    found = Proxy(port, config.data_dir, config.ca_dir / "mitmproxy-ca-cert.pem", process, config_path)
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(OSError):
            if fetch(found, KIDS, f"http://localhost:{origin.http_port}/")[0] == 200:
                break
        assert process.poll() is None and time.monotonic() < deadline, (folder / "proxy.log").read_text()
        time.sleep(0.2)
    yield found
    process.terminate()
    process.wait(30)
    log.close()


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Does the proxy close `sock` (without answering anything but an error) within `seconds`?"""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def _open(proxy: Proxy, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=10, source_address=(source, 0))


def test_a_connection_that_sends_no_request_head_in_time_is_closed(strict: Proxy) -> None:
    with _open(strict, TEENS) as silent, _open(strict, TEENS) as trickling:
        trickling.sendall(b"GET http://kiddle.co/ HTT")  # a head begun and never finished
        assert _closed_within(silent, 5)
        assert _closed_within(trickling, 5)


def test_a_request_head_without_end_is_refused_and_the_proxy_serves_on(strict: Proxy, origin: Origin) -> None:
    with _open(strict, TEENS) as sock:
        sock.sendall(b"GET http://kiddle.co/ HTTP/1.1\r\nHost: kiddle.co\r\nX-Pad: ")
        sent = 0
        answer = b""
        with contextlib.suppress(OSError):
            while sent < 4 * MAX_HEAD_BYTES:
                sock.sendall(b"a" * 16384)
                sent += 16384
            sock.settimeout(5)
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 431") or answer == b""
        assert sent < 4 * MAX_HEAD_BYTES or answer.startswith(b"HTTP/1.1 431")
    assert fetch(strict, TEENS, f"http://localhost:{origin.http_port}/")[0] == 200


def test_one_device_cannot_hold_more_than_its_share_of_connections(strict: Proxy, origin: Origin) -> None:
    held = []
    try:
        for _ in range(PER_DEVICE):
            sock = _open(strict, PHONE)
            # A tunnel, so the connection has spoken and stays open as long as the device likes.
            sock.sendall(f"CONNECT localhost:{origin.https_port} HTTP/1.1\r\n\r\n".encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            held.append(sock)
        with _open(strict, PHONE) as one_too_many:
            one_too_many.sendall(f"GET http://localhost:{origin.http_port}/ HTTP/1.1\r\n\r\n".encode())
            assert _closed_within(one_too_many, 3)
        # Everyone else is served meanwhile.
        assert fetch(strict, KIDS, f"http://localhost:{origin.http_port}/")[0] == 200
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert fetch(strict, PHONE, f"http://localhost:{origin.http_port}/")[0] == 200  # freed again


def test_the_head_limit_still_fits_mitmprosys_http1_server() -> None:
    """The limit wraps mitmproxy's own HTTP/1 head reader: if a mitmproxy upgrade reshapes it, this fails
    rather than the limit silently doing nothing."""
    from mitmproxy.proxy.layers.http import _http1

    limit_request_heads()
    assert getattr(_http1.Http1Server.read_headers, "_head_limit", None) == MAX_HEAD_BYTES
    assert "buf" in _http1.Http1Connection.__annotations__


def _rss_kb(proxy: Proxy) -> int:
    (worker,) = _workers(proxy)
    status = Path(f"/proc/{worker}/status").read_text()
    return int(status.split("VmRSS:", 1)[1].split()[0])


def test_memory_taken_by_a_burst_of_uploads_is_given_back(proxy: Proxy, origin: Origin) -> None:
    """Thirty uploads at once, half a megabyte each, left unfinished: the worker's memory grows while they
    pass through, and goes back to the system once they are gone (glibc keeps freed heap pages unless
    asked: the worker asks every few seconds)."""
    before = _rss_kb(proxy)
    held = []
    try:
        for i in range(30):
            sock = _open(proxy, TEENS if i % 2 else PHONE)
            site = f"localhost:{origin.http_port}"
            head = (
                f"DELETE http://{site}/item HTTP/1.1\r\nHost: {site}\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: 500000\r\n\r\n"
            )
            sock.sendall(head.encode() + b"\0" * 450_000)
            held.append(sock)
        time.sleep(1.0)
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 20
    while (grown := _rss_kb(proxy) - before) > 4 * 1024 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert grown <= 4 * 1024, f"the worker still holds {grown} KiB more than before the uploads"
