"""Serving the dashboard: one server per port, each with its own threads, connection limit and timeouts,
so that slow connections to one port (a child's, to the portal) never starve another (the staff pages).

- `dashboard.listen` (the children's portal and the block pages, plain HTTP): waitress, which reads each
  request whole before a thread sees it (a slow client costs a buffer, not a thread), with its own
  connection limit.
- `dashboard.staff_listen` (the staff pages) and `dashboard.portal_tls_listen` (the portal over HTTPS, where
  staff sign in on a children's device): HTTPS with the certificate from the appliance's own CA
  (appliance/site_certificate.py), served by cheroot, since waitress has no TLS. Cheroot would do the TLS
  handshake in its one accept loop, where a client that connects and says nothing holds up every other
  (cherrypy/cheroot#748): here the handshake happens in the connection's own worker thread, under the
  connection's timeout. The certificate is checked every few hours and issued anew before it ends.

Also: a set-up link printed while no administrator exists, and the store's stale sessions closed now and
then.
"""

from __future__ import annotations

import argparse
import io
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cheroot import errors as cheroot_errors
from cheroot import wsgi as cheroot_wsgi
from cheroot.makefile import StreamReader, StreamWriter
from cheroot.ssl.builtin import BuiltinSSLAdapter
from flask import Flask

from appliance.config import Config
from appliance.in_force.head_office import load_config_in_force
from appliance.net import local_addresses, split_host_port
from appliance.site_certificate import (
    CertificateError,
    SiteCertificate,
    ensure_site_certificate,
    site_folder,
    site_names,
)
from appliance.store import people, staff
from appliance.store.schema import connect
from dashboard import create_app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pool:
    """One port's server: worker threads, open connections, and how long a connection may stay silent."""

    threads: int
    connections: int
    timeout_s: float


PORTAL_POOL = Pool(threads=8, connections=200, timeout_s=30)  # every device of the centre
STAFF_POOL = Pool(threads=4, connections=50, timeout_s=20)  # a handful of staff computers
PORTAL_TLS_POOL = Pool(threads=4, connections=50, timeout_s=20)  # staff signing in on a child's device
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 256 * 1024  # the largest form is a profile file (Flask refuses more as well)
CA_WAIT_S = 2.0  # how often to look for the appliance's CA until the proxy has made it
RENEW_CHECK_S = 6 * 3600.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard")
    parser.add_argument("config", nargs="?", type=Path)
    parser.add_argument("--listen", help="address:port (default: dashboard.listen)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    config = load_config_in_force(args.config)
    app = create_app(config)
    host, port = split_host_port(args.listen or config.dashboard.listen, 8000)
    shown = site_address(host, port)
    staff_shown, staff_scheme = shown, "http"
    settings = config.dashboard
    if settings.staff_listen:  # the staff pages on a port of their own (router mode)
        staff_shown = site_address(*split_host_port(settings.staff_listen, 8000), tls=settings.staff_tls)
        staff_scheme = "https" if settings.staff_tls else "http"
    db = connect(config.events_path)
    if not staff.has_admin(db):
        token = staff.make_setup_link(db, time.time())
        print(
            f"No administrator yet. Open {staff_scheme}://{staff_shown}/setup/{token}"
            " (valid 24 hours, once)\nor run: appliance users add NAME --role admin",
            flush=True,
        )
    print(
        f"Dashboard: {staff_scheme}://{staff_shown}/   Children's portal: http://{shown}/portal", flush=True
    )
    threading.Thread(target=_tidy, args=(config.events_path,), daemon=True, name="tidy").start()
    servers = Servers(app, config)
    servers.plain(host, port, PORTAL_POOL)
    tls: list[tuple[str, int, Pool]] = []
    if settings.staff_listen:
        staff_host, staff_port = split_host_port(settings.staff_listen, 8000)
        if settings.staff_tls:
            tls.append((staff_host, staff_port, STAFF_POOL))
        else:
            servers.plain(staff_host, staff_port, STAFF_POOL)
    if settings.portal_tls_listen:
        tls.append((*split_host_port(settings.portal_tls_listen, 443), PORTAL_TLS_POOL))
    if tls:
        threading.Thread(target=servers.tls_when_ready, args=(tls,), daemon=True, name="tls").start()
    servers.wait()
    return 0


class Servers:
    """The dashboard's servers, each on its own thread with its own pool; `wait` until one stops."""

    def __init__(self, app: Flask, config: Config) -> None:
        self.app, self.config = app, config
        self.stopped = threading.Event()
        self.adapters: list[HandshakeInWorker] = []
        self.tls_servers: list[cheroot_wsgi.Server] = []

    def _run(self, name: str, target: Any) -> None:
        def run() -> None:
            try:
                target()
            except Exception:
                log.exception("the %s server stopped", name)
            finally:
                self.stopped.set()

        threading.Thread(target=run, daemon=True, name=name).start()

    def plain(self, host: str, port: int, pool: Pool) -> None:
        """Plain HTTP on `host`:`port` (waitress, its own socket map and threads)."""
        from waitress.server import create_server

        server = create_server(
            self.app,
            listen=_bind(host, port),
            threads=pool.threads,
            connection_limit=pool.connections,
            channel_timeout=pool.timeout_s,
            cleanup_interval=min(10, pool.timeout_s),
            max_request_header_size=MAX_HEADER_BYTES,
            max_request_body_size=MAX_BODY_BYTES,
            ident="appliance",
        )
        self._run(f"http-{port}", server.run)

    def tls_when_ready(self, listens: list[tuple[str, int, Pool]]) -> None:
        """Wait for the appliance's CA (the proxy makes it at its first start), get the certificate, serve
        HTTPS on each of `listens`; then renew the certificate before it ends, every server taking it
        for its next connections."""
        certificate = self._certificate(wait=True)
        for host, port, pool in listens:
            adapter = HandshakeInWorker(str(certificate.cert_path), str(certificate.key_path))
            server = SpeakFirst(
                (host, port),
                self.app,
                numthreads=pool.threads,
                max=pool.threads,
                timeout=int(pool.timeout_s),
                accepted_queue_size=pool.connections,
                request_queue_size=64,
                server_name="appliance",
            )
            server.ssl_adapter = adapter
            server.max_request_header_size = MAX_HEADER_BYTES
            server.max_request_body_size = MAX_BODY_BYTES
            server.keep_alive_conn_limit = pool.connections
            server.prepare()
            self.adapters.append(adapter)
            self.tls_servers.append(server)
            self._run(f"https-{port}", server.serve)
        while not self.stopped.wait(RENEW_CHECK_S):
            try:
                renewed = self._certificate(wait=False)
            except CertificateError as e:
                log.error("the HTTPS certificate could not be renewed (the old one stays): %s", e)
                continue
            if renewed != certificate:
                certificate = renewed
                for adapter in self.adapters:
                    adapter.context.load_cert_chain(str(renewed.cert_path), str(renewed.key_path))
                log.info("HTTPS certificate renewed, valid until %s", renewed.not_after)

    def _certificate(self, *, wait: bool) -> SiteCertificate:
        names = site_names(self.config, local_addresses())
        told = False
        while True:
            try:
                return ensure_site_certificate(
                    self.config.ca_dir, site_folder(self.config), names, datetime.now(UTC)
                )
            except CertificateError as e:
                if not wait:
                    raise
                if not told:
                    log.warning("HTTPS waits: %s", e)
                    told = True
                time.sleep(CA_WAIT_S)

    def wait(self) -> None:
        self.stopped.wait()
        for server in self.tls_servers:
            server.stop()


class SpeakFirst(cheroot_wsgi.Server):
    """Cheroot, with a new connection waiting in the selector until its client sends something (closed
    after the timeout if it never does), as kept-alive ones already do: a silent connection holds no
    worker thread."""

    def process_conn(self, conn: Any) -> None:
        if getattr(conn, "appliance_spoke", False):
            super().process_conn(conn)
            return
        conn.appliance_spoke = True  # the next time the selector hands it over, it has spoken
        # cheroot's own connection manager (its stubs leave it out)
        self._connections.put(conn)  # type: ignore[attr-defined]


class _HandshakeFirst(socket.SocketIO):
    """A TLS socket's reading end that completes the handshake at its first read, in the worker thread
    (under the connection's timeout); a failed or silent handshake just ends the connection."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        super().__init__(sock, "rb")
        self._tls = sock
        self._ready = False

    def readinto(self, b: Any) -> int | None:
        if not self._ready:
            try:
                self._tls.do_handshake()
            except (ssl.SSLError, OSError) as e:
                raise cheroot_errors.FatalSSLAlert(str(e)) from e
            self._ready = True
        return super().readinto(b)


class _TlsReader(StreamReader):
    def __init__(self, sock: ssl.SSLSocket, mode: str = "rb", bufsize: int = io.DEFAULT_BUFFER_SIZE) -> None:
        super(StreamReader, self).__init__(_HandshakeFirst(sock), bufsize)  # cheroot's base, not its own
        self.bytes_read = 0


class HandshakeInWorker(BuiltinSSLAdapter):
    """Cheroot's TLS, with the handshake moved out of the accept loop into the connection's worker."""

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, str]]:
        tls = self.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
        return tls, {"wsgi.url_scheme": "https", "HTTPS": "on"}

    def makefile(self, sock: ssl.SSLSocket, mode: str = "r", bufsize: int = io.DEFAULT_BUFFER_SIZE) -> Any:
        return _TlsReader(sock, mode, bufsize) if "r" in mode else StreamWriter(sock, mode, bufsize)


def _bind(host: str, port: int) -> str:
    """`host`:`port` as waitress's `listen` takes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def site_address(host: str, port: int, *, tls: bool = False) -> str:
    """How staff reach a server listening on `host`:`port`: on every address (the Pi) that is whatever
    address of the appliance they use; the scheme's own port (80, or 443 over HTTPS) needs no number."""
    shown = "<the appliance's address>" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return shown if port == (443 if tls else 80) else f"{shown}:{port}"


def _tidy(path: Path) -> None:
    """Mark sessions past closing time or idle as ended, once a minute (for the record and the portal)."""
    db = connect(path)
    while True:
        try:
            people.close_stale_sessions(db, time.time())
        except Exception:  # the next minute tries again
            log.exception("closing stale sessions failed")
        time.sleep(60)
