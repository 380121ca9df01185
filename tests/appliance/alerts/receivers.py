"""Real receivers on loopback the tests start: an SMTP server (aiosmtpd) and an HTTP receiver (webhooks,
Apprise's `json://`). Each keeps what it was sent."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.ports import LOOPBACK, free_port


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    body: str
    headers: dict[str, str]


class SmtpReceiver:
    """An SMTP server on 127.0.0.1 (no TLS, no sign-in) that accepts every message."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.mails: list[Mail] = []
        self.hold = threading.Event()  # while clear, a message is held before it is answered
        self.hold.set()
        self.arrived = threading.Event()
        self.refuse_held = False  # answer a held message with a temporary failure (not delivered)
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                refuse, receiver.refuse_held = receiver.refuse_held, False  # this message's, not the next
                receiver.arrived.set()
                while not receiver.hold.is_set():
                    await asyncio.sleep(0.01)
                if refuse:
                    return "451 try again later"
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                part = msg.get_body(preferencelist=("plain",))
                body = part.get_content().replace("\r\n", "\n") if part is not None else ""
                receiver.mails.append(
                    Mail(
                        tuple(envelope.rcpt_tos),
                        str(msg["Subject"]),
                        str(body),
                        {k: str(v) for k, v in msg.items()},
                    )
                )
                return "250 OK"

        self.controller = Controller(Handler(), hostname=LOOPBACK, port=self.port)

    def url(self, to: str) -> str:
        """The Apprise URL that sends to `to` through this server, in plain SMTP."""
        return f"mailto://{LOOPBACK}:{self.port}?from=appliance@centre.example&to={to}&mode=insecure"

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.mails if address in m.to]

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold.set()
        self.controller.stop()


class HttpReceiver:
    """An HTTP server on 127.0.0.1 keeping every JSON body POSTed to it, by path."""

    def __init__(self, port: int | None = None) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.posts.append((self.path, json.loads(self.rfile.read(length) or b"{}")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, port or 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"json://{LOOPBACK}:{self.port}/{path}"

    def at(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.posts if p == f"/{path}"]

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
