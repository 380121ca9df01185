"""What keeps one device from starving the centre through the proxy: a cap on its open connections, a
deadline for a new connection's first request head (or TLS hello), caps on a request or response head's
size and on a websocket message's, the open-file limit raised to what the system allows, and memory given
back to the system after bursts.

mitmproxy has none of these (a request head is read without bound: its own "FIXME: protect against header
size DoS"; an idle client is closed only after ten minutes), so they sit around it: the connection caps
and the deadline at accept time, in front of mitmproxy's handler; the head cap in its HTTP/1 server's
head reader (mitmproxy 11.0 is pinned in pyproject.toml; tests/appliance/proxy/test_limits.py fails if the
reader changes shape).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.net import plain_ip

log = logging.getLogger("appliance.proxy")

MAX_HEAD_BYTES = 64 * 1024  # nginx allows 4 x 8 KiB of header lines; browsers send a few KiB
MAX_WEBSOCKET_MESSAGE = 16 * 1024 * 1024  # a chat message is a few KiB; a game's state a few hundred
WARN_EVERY_S = 60.0

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class AdmissionCounters:
    refused: int = 0  # connections over a device's cap
    timed_out: int = 0  # connections that sent no request head in time
    per_device: dict[str, int] = field(default_factory=dict)


class Admission:
    """Connections as they are accepted: at most `per_device` open at once from one device (its
    address), and each must send its first request head or TLS hello within `head_timeout_s`
    (`spoke` is told when it does) or be closed."""

    def __init__(self, per_device: int, head_timeout_s: float) -> None:
        self.per_device = per_device
        self.head_timeout_s = head_timeout_s
        self.counters = AdmissionCounters()
        self._waiting: dict[tuple[str, Any], asyncio.TimerHandle] = {}
        self._warned: dict[str, float] = {}

    def wrap(self, handle: Handler) -> Handler:
        """`handle` (mitmproxy's per-connection handler) behind the caps."""

        async def admitted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername") or ("", 0)
            device = str(plain_ip(str(peer[0])) or peer[0])
            open_now = self.counters.per_device
            if open_now.get(device, 0) >= self.per_device:
                self.counters.refused += 1
                self._warn(device)
                writer.transport.abort()
                return
            open_now[device] = open_now.get(device, 0) + 1
            key = (str(peer[0]), peer[1])
            loop = asyncio.get_running_loop()
            self._waiting[key] = loop.call_later(self.head_timeout_s, self._too_slow, key, writer)
            try:
                await handle(reader, writer)
            finally:
                timer = self._waiting.pop(key, None)
                if timer is not None:
                    timer.cancel()
                left = open_now.get(device, 1) - 1
                if left > 0:
                    open_now[device] = left
                else:
                    open_now.pop(device, None)

        return admitted

    def spoke(self, peername: tuple[Any, ...] | None) -> None:
        """The connection from `peername` sent a whole request head or TLS hello: no deadline now."""
        if not peername or len(peername) < 2 or not self._waiting:
            return
        timer = self._waiting.pop((str(peername[0]), peername[1]), None)
        if timer is not None:
            timer.cancel()

    def _too_slow(self, key: tuple[str, Any], writer: asyncio.StreamWriter) -> None:
        self._waiting.pop(key, None)
        self.counters.timed_out += 1
        writer.transport.abort()

    def _warn(self, device: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(device, -WARN_EVERY_S) >= WARN_EVERY_S:
            self._warned[device] = now
            log.warning(
                "%s has %d connections open through this proxy worker: further ones are refused",
                device,
                self.per_device,
            )


def limit_request_heads(max_bytes: int = MAX_HEAD_BYTES) -> None:
    """Answer 431 and close a connection whose request head grows past `max_bytes` unfinished, and close
    an upstream connection whose response head does (the child gets mitmproxy's 502).

    Wraps mitmproxy's HTTP/1 head readers (the connection buffer `buf`, the `read_headers` state of its
    server and client sides); idempotent."""
    from mitmproxy.proxy import commands, events
    from mitmproxy.proxy.layers.http import _http1
    from mitmproxy.proxy.layers.http._base import ReceiveHttp
    from mitmproxy.proxy.layers.http._events import ResponseProtocolError

    for side in (_http1.Http1Server, _http1.Http1Client):
        if getattr(side.read_headers, "_head_limit", None) == max_bytes:
            continue
        original = getattr(side.read_headers, "_original", side.read_headers)
        answer = side is _http1.Http1Server

        def read_headers(
            self: Any, event: events.ConnectionEvent, original: Any = original, answer: bool = answer
        ) -> Any:
            if isinstance(event, events.DataReceived) and len(self.buf) > max_bytes:
                head = bytes(self.buf)[: max_bytes + 4]
                if b"\r\n\r\n" not in head and b"\n\n" not in head:
                    if answer:
                        yield commands.SendData(
                            self.conn, _http1.make_error_response(431, "Request header fields too large")
                        )
                    yield commands.CloseConnection(self.conn)
                    if not answer and self.stream_id is not None:  # the child waits: tell the stream
                        yield ReceiveHttp(ResponseProtocolError(self.stream_id, "response head too large"))
                    self.buf.maybe_extract_at_most(len(self.buf))  # let go of it now
                    self.state = self.done
                    return
            yield from original(self, event)

        read_headers._head_limit = max_bytes  # type: ignore[attr-defined]
        read_headers._original = original  # type: ignore[attr-defined]
        side.read_headers = read_headers  # type: ignore[method-assign]


def limit_websocket_messages(max_bytes: int = MAX_WEBSOCKET_MESSAGE) -> None:
    """Close a websocket whose message being received grows past `max_bytes` unfinished (mitmproxy holds
    every message whole until its last frame, to show it to the addons).

    Wraps mitmproxy's websocket layer's relay state (`relay_messages`, the `frame_buf` of each side);
    idempotent."""
    from mitmproxy.proxy import commands
    from mitmproxy.proxy.layers import websocket

    layer = websocket.WebsocketLayer
    if getattr(layer.relay_messages, "_message_limit", None) == max_bytes:
        return
    original = getattr(layer.relay_messages, "_original", layer.relay_messages)

    def relay_messages(self: Any, event: Any) -> Any:
        yield from original(self, event)
        for side in (self.client_ws, self.server_ws):
            if sum(len(part) for part in side.frame_buf) > max_bytes:
                side.frame_buf = [b""]
                log.warning("closed a websocket whose message passed %d bytes", max_bytes)
                yield commands.CloseConnection(self.context.client)
                yield commands.CloseConnection(self.context.server)
                self._handle_event = self.done
                return

    relay_messages._message_limit = max_bytes  # type: ignore[attr-defined]
    relay_messages._original = original  # type: ignore[attr-defined]
    layer.relay_messages = relay_messages  # type: ignore[method-assign]


def raise_open_files() -> int:
    """Raise this process's open-file limit to the hard limit (each connection through the proxy is
    two); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
    return soft


def _trimmer() -> Callable[[], None] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> None:
        trim(0)

    return release


async def give_memory_back(every_s: float = 5.0) -> None:
    """Hand freed heap memory back to the system now and then: request and page bodies held for
    checking are freed after each flow, but glibc keeps the pages unless asked (`malloc_trim`)."""
    trim = _trimmer()
    if trim is None:
        return
    while True:
        await asyncio.sleep(every_s)
        trim()
