"""One device cannot run a proxy worker out of memory (which would drop every child's connections on it):
websocket messages are not kept once checked, a websocket message that never ends is cut off, and an
endless response head from a site is refused. Servers of the test's own on further loopback addresses,
on a port the proxy may reach (the sites' web port)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from tests.appliance.proxy.conftest import TEENS, Internet, Proxy, Sites
from tests.appliance.proxy.test_live import _workers

CHAT, BIG_HEAD = "127.0.0.7", "127.0.0.9"


def _rss_mb(proxy: Proxy) -> int:
    (worker,) = _workers(proxy)
    status = Path(f"/proc/{worker}/status").read_text()
    return int(status.split("VmRSS:", 1)[1].split()[0]) // 1024


def _listen(address: str, port: int) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(8)
    return server


def _chat_server(address: str, port: int) -> dict[str, Any]:
    """A websocket server that takes every message and answers nothing; counts what reached it."""
    got: dict[str, Any] = {"bytes": 0}
    server = _listen(address, port)

    def serve(conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            while chunk := conn.recv(1 << 20):
                got["bytes"] += len(chunk)

    def accept_all() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_all, daemon=True).start()
    got["server"] = server
    return got


def _frame(payload: bytes, *, opcode: int = 2, fin: bool = True) -> bytes:
    """A masked websocket frame from the client."""
    n = len(payload)
    first = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        size = bytes([0x80 | n])
    elif n < 65536:
        size = bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        size = bytes([0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    stream = int.from_bytes(mask * ((n + 3) // 4), "big") >> (8 * ((4 - n % 4) % 4))
    return first + size + mask + (int.from_bytes(payload, "big") ^ stream).to_bytes(n, "big")


def _open_chat(proxy: Proxy, sites: Sites) -> socket.socket:
    site = f"chat.example.net:{sites.http_port}"
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30, source_address=(TEENS, 0))
    sock.sendall(
        f"GET http://{site}/chat HTTP/1.1\r\nHost: {site}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
    )
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    return sock


def test_websocket_messages_are_not_kept_once_checked(proxy: Proxy, sites: Sites, internet: Internet) -> None:
    internet.add("chat.example.net", "A", CHAT)
    got = _chat_server(CHAT, sites.http_port)
    try:
        sock = _open_chat(proxy, sites)
        before = _rss_mb(proxy)
        message = _frame(os.urandom(1 << 20))
        with sock:
            for _ in range(200):
                sock.sendall(message)
            deadline = time.monotonic() + 20
            while got["bytes"] < 190 << 20 and time.monotonic() < deadline:
                time.sleep(0.2)
            grown = _rss_mb(proxy) - before
        assert got["bytes"] >= 190 << 20  # every message went on to the site...
        assert grown < 100, f"the worker kept {grown} MB of messages"  # ...and was not kept (it kept 200)
        # A message that never ends is cut off rather than held whole.
        sock = _open_chat(proxy, sites)
        with sock:
            sock.sendall(_frame(os.urandom(1 << 20), fin=False))
            try:
                for _ in range(40):
                    sock.sendall(_frame(os.urandom(1 << 20), opcode=0, fin=False))
                sock.settimeout(5)
                closed = sock.recv(4096) == b""
            except OSError:  # reset while still sending: closed too
                closed = True
            assert closed
    finally:
        got["server"].close()


def test_an_endless_response_head_from_a_site_is_refused(
    proxy: Proxy, sites: Sites, internet: Internet
) -> None:
    internet.add("bighead.example.net", "A", BIG_HEAD)
    server = _listen(BIG_HEAD, sites.http_port)

    def serve() -> None:
        conn, _ = server.accept()
        with contextlib.suppress(OSError), conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Pad: ")
            pad = b"a" * (1 << 20)
            for _ in range(100):
                conn.sendall(pad)

    threading.Thread(target=serve, daemon=True).start()
    before = _rss_mb(proxy)
    try:
        site = f"bighead.example.net:{sites.http_port}"
        with socket.create_connection(
            ("127.0.0.1", proxy.port), timeout=30, source_address=(TEENS, 0)
        ) as sock:
            sock.sendall(f"GET http://{site}/ HTTP/1.1\r\nHost: {site}\r\n\r\n".encode())
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 502")
        assert _rss_mb(proxy) - before < 50
    finally:
        server.close()
