"""A list publisher on loopback for tests, and archives built in memory (good and hostile).

The server answers as real list hosts do: an `ETag` (and, if set, a `Last-Modified`) with every list,
`304 Not Modified` to a request that names the copy it has, and whatever failures a test scripts
(`503` a few times, a connection cut mid-body). It records every request and the body bytes it sent.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Seen:
    """One request the server answered."""

    path: str
    headers: dict[str, str]
    status: int = 0
    body_bytes: int = 0


@dataclass
class ListServer:
    """What the server serves; tests change it between compiles."""

    base: str = ""
    bodies: dict[str, bytes] = field(default_factory=dict)
    last_modified: dict[str, str] = field(default_factory=dict)
    failures: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer first
    cuts: dict[str, int] = field(default_factory=dict)  # path -> how many times to cut the body short
    no_etag: set[str] = field(default_factory=set)  # paths served without an ETag
    compressing: set[str] = field(default_factory=set)  # paths sent gzip-encoded to a client that asks
    false_gzip: set[str] = field(default_factory=set)  # paths said to be gzip-encoded, sent plain
    moved: dict[str, str] = field(default_factory=dict)  # path -> where it moved to (a 302)
    seen: list[Seen] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def requests_for(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


def etag_of(body: bytes) -> str:
    """The ETag the server gives `body`."""
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


@contextmanager
def list_server() -> Iterator[ListServer]:
    state = ListServer()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()})
            with lock:
                state.seen.append(seen)
                scripted = state.failures.get(self.path)
                failure = scripted.pop(0) if scripted else None
                cut = state.cuts.get(self.path, 0)
                if cut:
                    state.cuts[self.path] = cut - 1
            body = state.bodies.get(self.path)
            if self.path in state.moved:
                self._answer(seen, 302, b"", {"Location": state.moved[self.path]})
                return
            if failure is not None:
                self._answer(seen, failure, b"try again later\n")
                return
            if body is None:
                self._answer(seen, 404, b"not found\n")
                return
            headers = {}
            if self.path not in state.no_etag:
                headers["ETag"] = etag_of(body)
            if self.path in state.last_modified:
                headers["Last-Modified"] = state.last_modified[self.path]
            asked = seen.headers.get("if-none-match")
            since = seen.headers.get("if-modified-since")
            # RFC 9110 13.2.2: If-None-Match, when sent, decides; If-Modified-Since only without it.
            if (asked is not None and asked == headers.get("ETag")) or (
                asked is None and since is not None and since == headers.get("Last-Modified")
            ):
                self._answer(seen, 304, b"", headers)
                return
            if cut:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                half = body[: len(body) // 2]
                self.wfile.write(half)
                seen.status, seen.body_bytes = 200, len(half)
                self.wfile.flush()
                self.close_connection = True
                return
            if self.path in state.compressing and "gzip" in seen.headers.get("accept-encoding", ""):
                headers["Content-Encoding"] = "gzip"
                body = gzip.compress(body, mtime=0)
            if self.path in state.false_gzip:  # a misconfigured mirror or proxy
                headers["Content-Encoding"] = "gzip"
            self._answer(seen, 200, body, headers)

        def _answer(self, seen: Seen, status: int, body: bytes, headers: Mapping[str, str] = {}) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)
                seen.body_bytes = len(body)
            seen.status = status

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_port}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# ---- archives ----

_MTIME = time.mktime((2026, 8, 1, 0, 0, 0, 0, 0, -1))


def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.linkname = link
    info.mtime = int(_MTIME)
    info.mode = 0o644
    return info


def tar_gz(files: Mapping[str, bytes], *, extra: list[tarfile.TarInfo] = ()) -> bytes:  # type: ignore[assignment]
    """A .tar.gz of `files` (name -> content, a name ending in / is a folder) and `extra` members
    (links, devices: header only)."""
    out = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for name, data in files.items():
            if name.endswith("/"):
                tar.addfile(_info(name, kind=tarfile.DIRTYPE))
            else:
                tar.addfile(_info(name, len(data)), io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return out.getvalue()


def symlink(name: str, target: str) -> tarfile.TarInfo:
    return _info(name, kind=tarfile.SYMTYPE, link=target)


def hardlink(name: str, target: str) -> tarfile.TarInfo:
    return _info(name, kind=tarfile.LNKTYPE, link=target)


def device(name: str) -> tarfile.TarInfo:
    info = _info(name, kind=tarfile.CHRTYPE)
    info.devmajor, info.devminor = 1, 3
    return info


def zip_of(files: Mapping[str, bytes], *, links: Mapping[str, str] = {}) -> bytes:
    """A .zip of `files`, and symbolic links (as Info-ZIP stores them: the target as content)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(
                zipfile.ZipInfo(name, date_time=(2026, 8, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED
            )
        for name, target in links.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 8, 1, 0, 0, 0))
            info.external_attr = (0o120777 << 16) | 0
            info.create_system = 3
            archive.writestr(info, target)
    return out.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)
