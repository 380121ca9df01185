"""Head office and a centre, both real: a repository made and signed by the `appliance bundle` code,
served as static files by an HTTP server on loopback (which a test may make misbehave: answer a path
with an HTML page, cut a file short, serve an old copy, or trickle files a byte at a time like a slow
mirror), and a centre configuration syncing from it."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import pytest

from appliance.bundles.build import build
from appliance.bundles.repository import Repository
from appliance.config import Config
from appliance.in_force.head_office import load_config_in_force

SHIPPED = Path(str(resources.files("appliance") / "defaults" / "lists"))

BUNDLE_YAML = """sources:
  - {name: adult, format: hosts, category: adult, path: lists/adult.hosts}
  - {name: gambling, format: adblock-dns, category: gambling, path: lists/gambling.adblock}
health:
  blocked: [www.pornhub.com]
  allowed: [www.bbc.co.uk]
"""


@dataclass
class Misbehaving:
    """What the web server does instead of serving a file: path -> (status, body); and, if `trickle_s`
    is set, every file whose path contains `trickle_only` is sent one byte per `trickle_s` seconds (each
    byte well within any read timeout: a slow mirror, not a dead one)."""

    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    trickle_s: float = 0
    trickle_only: str = ""


class _Handler(SimpleHTTPRequestHandler):
    misbehaving: Misbehaving

    def do_GET(self) -> None:
        found = self.misbehaving.answers.get(self.path)
        if found is None:
            file = Path(self.translate_path(self.path))
            if self.misbehaving.trickle_s and self.misbehaving.trickle_only in self.path and file.is_file():
                self._trickle(file.read_bytes())
                return
            super().do_GET()
            return
        status, body = found
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(self.misbehaving.trickle_s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the centre gave up

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class HeadOffice:
    """Head office's folders and its web server."""

    folder: Path
    repo: Repository
    url: str
    misbehaving: Misbehaving

    @property
    def source(self) -> Path:
        return self.folder / "src"

    def publish(
        self,
        version: int,
        *,
        rings: tuple[str, ...] = (),
        extra_hosts: str = "",
        now: datetime | None = None,
        spoil: Callable[[Path], None] | None = None,
    ) -> Path:
        """Build bundle `version` at `now` (the adult list gains `extra_hosts`), spoil it if asked, and
        sign it (at the real time)."""
        now = now or datetime.now(UTC)
        source = self.folder / f"src-{version}"
        shutil.copytree(self.source, source)
        if extra_hosts:
            with open(source / "lists" / "adult.hosts", "a", encoding="utf-8") as f:
                f.write(extra_hosts)
        built = build(source, self.folder / f"built-{version}", version, now).folder
        if spoil:
            spoil(built)
        self.repo.publish(built, rings, datetime.now(UTC))
        return built

    def target(self, relative: str) -> Path:
        """The published file behind target path `relative` (e.g. bundles/2/lists/adult.hosts)."""
        folder, _, name = relative.rpartition("/")
        (found,) = (self.repo.repo / "targets" / folder).glob(f"*.{name}")
        return found


@pytest.fixture
def head_office(tmp_path: Path) -> Iterator[HeadOffice]:
    folder = tmp_path / "head-office"
    (folder / "src" / "lists").mkdir(parents=True)
    for name in ("adult.hosts", "gambling.adblock"):
        shutil.copy(SHIPPED / name, folder / "src" / "lists" / name)
    (folder / "src" / "bundle.yaml").write_text(BUNDLE_YAML, encoding="utf-8")
    repo = Repository.create(folder / "repo", folder / "keys", datetime.now(UTC))
    misbehaving = Misbehaving()
    handler = type("Handler", (_Handler,), {"misbehaving": misbehaving})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder / "repo")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield HeadOffice(folder, repo, f"http://127.0.0.1:{server.server_address[1]}", misbehaving)
    server.shutdown()
    server.server_close()


@pytest.fixture
def centre(tmp_path: Path, head_office: HeadOffice) -> Callable[..., Config]:
    """Write the centre's appliance.yaml (its own block list included) and load it."""

    def make(extra: str = "", *, ring: str = "stable", check_dns: bool = False) -> Config:
        folder = tmp_path / "centre"
        folder.mkdir(exist_ok=True)
        (folder / "our-blocks.domains").write_text("blocked-by-the-centre.example\n", encoding="utf-8")
        path = folder / "appliance.yaml"
        path.write_text(
            f"""data_dir: {folder / "var"}
lists:
  sources:
    - {{name: our-blocks, format: domains, category: adult, path: our-blocks.domains}}
sync:
  url: {head_office.url}
  trusted_root: {head_office.repo.repo / "metadata" / "1.root.json"}
  ring: {ring}
  check_dns: {"true" if check_dns else "false"}
  health_timeout_s: 5
{extra}""",
            encoding="utf-8",
        )
        return load_config_in_force(path)

    return make
