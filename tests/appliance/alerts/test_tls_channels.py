"""Channels over TLS: the alerter trusts the system's CAs through their hashed directory (each read when a
peer names its issuer) rather than the whole bundle read again for every message, and still verifies
every peer: a web channel whose certificate no trusted CA signed fails; one a trusted CA signed works."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from appliance.alerts.delivery import DeliveryError, apprise_send, use_ca_directory
from appliance.alerts.messages import Message
from profiles.alerts import Channel
from tests.appliance.proxy.conftest import _origin_ca

KEYS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
MESSAGE = Message(
    "HIGH alert: personal information sent (Riverside)", "See the dashboard.", "delivery-1@appliance"
)


class _Received(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        _Received.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def https_receiver(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An HTTPS webhook receiver on localhost with a certificate from a test CA; (port, CA file)."""
    ca, cert, key = _origin_ca(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Received)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Received.bodies = []
    yield int(server.server_address[1]), ca
    server.shutdown()
    server.server_close()


def test_the_system_cas_are_read_from_their_directory_and_a_machines_own_setting_is_kept() -> None:
    environ: dict[str, str] = {}
    assert use_ca_directory(environ)
    capath = ssl.get_default_verify_paths().openssl_capath
    assert environ == {"SSL_CERT_DIR": capath, "SSL_CERT_FILE": os.devnull, "REQUESTS_CA_BUNDLE": capath}
    own = {"REQUESTS_CA_BUNDLE": "/etc/centre/ca.pem"}
    assert not use_ca_directory(own) and own == {"REQUESTS_CA_BUNDLE": "/etc/centre/ca.pem"}
    # The system's own bundle named in the environment (as some images do) is no choice of the machine's.
    bundle = {"SSL_CERT_FILE": ssl.get_default_verify_paths().openssl_cafile}
    assert use_ca_directory(bundle) and bundle["SSL_CERT_FILE"] == os.devnull


def test_a_web_channel_whose_certificate_no_trusted_ca_signed_still_fails(
    https_receiver: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _ = https_receiver
    environ: dict[str, str] = {}
    use_ca_directory(environ)
    for key in KEYS:
        monkeypatch.setenv(key, environ[key])
    with pytest.raises(DeliveryError):
        apprise_send(Channel("hook", f"jsons://localhost:{port}/alerts"), MESSAGE)
    assert _Received.bodies == []


def test_a_web_channel_signed_by_a_ca_in_the_directory_is_told(
    https_receiver: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, ca = https_receiver
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl (rehash)")
    cas = tmp_path / "cas"
    cas.mkdir()
    shutil.copy(ca, cas / "test-ca.pem")
    subprocess.run(["openssl", "rehash", str(cas)], check=True)  # as update-ca-certificates does
    for key, value in {
        "SSL_CERT_DIR": str(cas),
        "SSL_CERT_FILE": os.devnull,
        "REQUESTS_CA_BUNDLE": str(cas),
    }.items():
        monkeypatch.setenv(key, value)
    apprise_send(Channel("hook", f"jsons://localhost:{port}/alerts"), MESSAGE)
    assert [body.get("title") for body in _Received.bodies] == [MESSAGE.title]
