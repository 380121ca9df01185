"""The full-size centre set within a 1 GB Raspberry Pi's memory: compile it, serve it, compile it again
twice beside the services, and read what every process holds.

- **Lists, the full-size centre set**: every list in ../shared/data a centre would run: all 70 UT1
  categories, each read from a `<category>.tar.gz` as UT1 publishes them (blacklists and the
  `child`/`liste_blanche` whitelists, by their `usage`), StevenBlack with its four extensions, HaGeZi (nsfw,
  gambling, doh-vpn-proxy-bypass, fake, url shorteners, anti-piracy, social, nosafesearch), the Block List
  Project (drugs, scam, ransomware, crypto, piracy, torrent, vaping), EasyList and EasyPrivacy, and the
  e2guardian ukenglish weighted phrase lists. UT1 `adult/domains` (4.6 million names upstream) is not in
  ../shared/data: a deterministic stand-in of the same size takes its place (`--adult N` names, seeded),
  each name shaped like a real adult domain (its label count, label lengths and top-level domain drawn from
  one of HaGeZi nsfw's 96,000 names, its letters drawn with their frequencies there), beside the real
  `adult/urls` and `expressions`.
- **Services**, with the Pi's settings: `appliance dns`, `appliance proxy --workers 4` (each worker and
  the DNS filter with its event writer process), `appliance dashboard` (portal on HTTP, staff pages and
  the portal's staff sign-in over HTTPS), on loopback, with a fake DNS upstream and an HTTP origin in
  this process.
- **Traffic**, light, from a device on the `10-12` profile (opening hours left out): about 20 DNS
  questions a second (a third listed names, the rest popular names), 4 web requests a second through
  the proxy (the origin's page, pages on listed hosts, paths EasyList knows), and a member of staff
  signing in and viewing the review feed, reports, lists and "why is this blocked?" pages.
- **Sequence**: a first compile (`appliance lists compile`) alone; the services started on it; traffic
  for `--traffic-s`; two compiles one after the other beside the services, traffic going on; the
  services' reload to the new index awaited; traffic again; then the readings.
- **Readings**, from /proc: `compile_peak_mb` the largest peak RSS of the three compiles (wait4's
  ru_maxrss), `compile_s` the first compile's wall time, `index_mb` the compiled file,
  `services_pss_mb` the sum of PSS (/proc/PID/smaps_rollup) over every appliance process after the
  compiles and traffic, `peak_pss_during_compile_mb` the largest sum of PSS over the services and the
  compile while a compile ran (sampled every 0.25 s), `dns_answered_during_compile` the share of DNS
  questions sent while a compile ran that were answered (within 2 s), `lost` the DNS questions and web
  requests of the whole run that got no answer. Provenance is checked on the way: the block page of a
  stand-in name and `appliance lists match` name `ut1-adult` and its line.

Bar: `entries >= 6,000,000`, `compile_peak_mb <= 300`, `index_mb <= 200`, `services_pss_mb <= 450`,
`peak_pss_during_compile_mb <= 700`, `dns_answered_during_compile == 1.0` (and `lost == 0`).

    .venv/bin/python bench/footprint.py [--adult N] [--traffic-s S] [--work DIR] [--keep]
                                        [--cgroup DIR]

`--cgroup DIR` puts every appliance process (services and compiles, not this process or its traffic)
into an existing cgroup (its `cgroup.procs`): tests/deploy/test_memory_cgroup.py runs it so under a
700 MB memory limit without swap. Progress goes to stderr; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from processes import Started, descendants, servers  # noqa: E402  (bench/ is on the path)

DATA = ROOT.parent / "shared" / "data"
LISTS = DATA / "lists"
PHRASES = DATA / "phrases" / "e2guardian" / "ukenglish"
REQUESTS = DATA / "requests"
APPLIANCE = Path(sys.executable).parent / "appliance"
HOST = "127.0.0.1"
SEED = 20261207
ADULT_NAMES = 4_600_000
PROFILE = "10-12"
PASSWORD = "footprint-bench-password"
DNS_RATE = 20.0  # questions a second
HTTP_RATE = 4.0  # requests a second
DNS_TIMEOUT_S = 2.0
SAMPLE_S = 0.25
BAR = {
    "entries": 6_000_000,
    "compile_peak_mb": 300,
    "index_mb": 200,
    "services_pss_mb": 450,
    "peak_pss_during_compile_mb": 700,
    "dns_answered_during_compile": 1.0,
}

HAGEZI = ["nsfw", "gambling.mini", "doh-vpn-proxy-bypass", "fake", "urlshortener", "anti.piracy", "social"]
HAGEZI += ["nosafesearch"]
HAGEZI_CATEGORY = {
    "nsfw": "adult",
    "gambling.mini": "gambling",
    "doh-vpn-proxy-bypass": "filter-bypass",
    "fake": "scams",
    "urlshortener": "url-shorteners",
    "anti.piracy": "piracy",
    "social": "social-networks",
    "nosafesearch": "filter-bypass",
}
BLP = {
    "drugs": "drugs",
    "scam": "scams",
    "ransomware": "malware",
    "crypto": "malware",
    "piracy": "piracy",
    "torrent": "piracy",
    "vaping": "drugs",
}

PAGE = (
    b"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Homework help</title></head><body>"
    b"<h1>Fractions made easy</h1><p>A fraction tells you how many parts of a whole you have. Add the "
    b"numerators when the denominators are the same, and simplify when you can.</p></body></html>"
)


def say(text: str) -> None:
    print(f"footprint: {text}", file=sys.stderr, flush=True)


# ---- the stand-in for UT1 adult/domains ----


def stand_in(folder: Path, count: int) -> Path:
    """UT1's `adult` category with `count` generated domains (made once per seed and count, then kept in
    `folder`): real `urls`, `expressions` and `usage` beside them."""
    marker = folder / ".stand-in"
    wanted = f"seed {SEED}, {count} names\n"
    if marker.exists() and marker.read_text() == wanted:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("urls", "expressions", "usage"):
        shutil.copyfile(LISTS / "ut1" / "adult" / name, folder / name)
    shapes: list[tuple[tuple[int, ...], str]] = []
    letters: Counter[str] = Counter()
    for line in (LISTS / "hagezi" / "nsfw.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("||") and line.endswith("^"):
            labels = line[2:-1].split(".")
            shapes.append((tuple(len(label) for label in labels[:-1]), labels[-1]))
            letters.update(c for label in labels[:-1] for c in label)
    alphabet, weights = zip(*sorted(letters.items()), strict=True)
    cumulative = [sum(weights[: i + 1]) for i in range(len(weights))]
    rng = random.Random(SEED)
    choices, choice = rng.choices, rng.choice
    started = time.perf_counter()
    with open(folder / "domains", "w", encoding="ascii") as out:
        out.write("# bench/footprint.py: a generated stand-in for UT1 adult/domains\n")
        batch = []
        for _ in range(count):
            lengths, tld = choice(shapes)
            labels = []
            for n in lengths:
                label = "".join(choices(alphabet, cum_weights=cumulative, k=n)).strip("-") or "x"
                labels.append(label)
            labels.append(tld)
            batch.append(".".join(labels))
            if len(batch) == 10_000:
                out.write("\n".join(batch) + "\n")
                batch = []
        out.write("\n".join(batch) + "\n" if batch else "")
    marker.write_text(wanted)
    say(f"stand-in: {count:,} names in {time.perf_counter() - started:.0f} s")
    return folder


# ---- the centre set and the configuration ----


def ut1_archive(folder: Path, category: str, into: Path) -> Path:
    """`folder` packed as UT1 publishes a category (`<category>.tar.gz` holding `<category>/...`), made
    once per folder's files and kept in `into`: the compile reads UT1 as a centre downloads it."""
    into.mkdir(parents=True, exist_ok=True)
    target = into / f"{category}.tar.gz"
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    stamp = into / f".{category}.made"
    wanted = "".join(f"{p.name} {p.stat().st_size} {p.stat().st_mtime_ns}\n" for p in files)
    if target.exists() and stamp.exists() and stamp.read_text() == wanted:
        return target
    with tarfile.open(target, "w:gz", compresslevel=1) as tar:  # (quick to make; read the same)
        for p in files:
            tar.add(p, arcname=f"{category}/{p.name}")
    stamp.write_text(wanted)
    return target


def centre_sources(adult: Path, archives: Path) -> list[tuple[str, str, str, Path]]:
    """(name, format, category, path) of every source of the full-size centre set; UT1's categories as
    the archives it publishes (the adult stand-in packed the same way)."""
    sources = []
    for folder in sorted((LISTS / "ut1").iterdir()):
        if folder.is_dir():
            packed = ut1_archive(adult if folder.name == "adult" else folder, folder.name, archives)
            sources.append((f"ut1-{folder.name}", "ut1", folder.name, packed))
    sb = LISTS / "stevenblack" / "fakenews-gambling-porn-social.hosts"
    sources.append(("stevenblack-all", "hosts", "adult", sb))
    for name in HAGEZI:
        sources.append(
            (f"hagezi-{name}", "adblock-dns", HAGEZI_CATEGORY[name], LISTS / "hagezi" / f"{name}.txt")
        )
    for name, category in BLP.items():
        sources.append((f"blp-{name}", "hosts", category, LISTS / "blocklistproject" / f"{name}.txt"))
    sources.append(("easylist", "adblock", "ads", LISTS / "easylist" / "easylist.txt"))
    sources.append(("easyprivacy", "adblock", "tracking", LISTS / "easylist" / "easyprivacy.txt"))
    for path in sorted(PHRASES.glob("*/weighted")):
        sources.append((f"phrases-{path.parent.name}", "e2guardian-phrases", path.parent.name, path))
    return sources


def write_config(work: Path, adult: Path, ports: dict[str, int]) -> Path:
    """The appliance's configuration (Pi settings on loopback) and its profiles file; the config path."""
    from appliance.config import PolicySettings

    text = PolicySettings().profiles.read_text(encoding="utf-8")
    start, end = text.index(f"\n  {PROFILE}:\n"), text.index("\n  13-17:\n")
    block = re.sub(r"\n    schedule: [^\n]*", "", text[start:end])
    profiles = work / "profiles.yaml"
    profiles.write_text(text[:start] + block + text[end:], encoding="utf-8")
    lines = [
        "# bench/footprint.py: the full-size centre set, the Pi's services on loopback.",
        f"data_dir: {json.dumps(str(work / 'var'))}",
        "lists:",
        "  sources:",
    ]
    for name, fmt, category, path in centre_sources(adult, work / "ut1-archives"):
        members = f", members: [{category}/]" if path.name.endswith(".tar.gz") else ""
        lines.append(
            f"    - {{name: {name}, format: {fmt}, category: {category}, path: {json.dumps(str(path))}"
            f"{members}}}"
        )
    lines += [
        "policy:",
        "  timezone: Europe/London",
        f"  profiles: {json.dumps(str(profiles))}",
        "devices:",
        f'  - {{name: bench-child, profile: "{PROFILE}", network: {HOST}}}',
        "dns:",
        f'  listen: ["{HOST}:{ports["dns"]}"]',
        f'  upstreams: ["{HOST}:{ports["upstream"]}"]',
        f'  block_page_addresses: ["{HOST}"]',
        "proxy:",
        f"  listen: {HOST}:{ports['proxy']}",
        f"  reachable_local_ports: [{ports['origin']}]",
        "  centre: Footprint bench",
        "dashboard:",
        f"  listen: {HOST}:{ports['portal']}",
        f"  staff_listen: {HOST}:{ports['staff']}",
        f"  portal_tls_listen: {HOST}:{ports['portal_tls']}",
        f"  admin_networks: [{HOST}/32]",
    ]
    config = work / "appliance.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def _free_port() -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((HOST, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((HOST, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


# ---- the fake Internet: a DNS upstream and an HTTP origin ----


def start_upstream(port: int) -> socketserver.ThreadingUDPServer:
    """A DNS upstream on loopback answering every name: 192.0.2.1 / 2001:db8::1, TTL 300."""
    from dnslib import AAAA, QTYPE, RR, A, DNSRecord

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            try:
                query = DNSRecord.parse(data)
            except Exception:
                return
            reply = query.reply()
            q = query.q
            if q.qtype == QTYPE.A:
                reply.add_answer(RR(q.qname, QTYPE.A, rdata=A("192.0.2.1"), ttl=300))
            elif q.qtype == QTYPE.AAAA:
                reply.add_answer(RR(q.qname, QTYPE.AAAA, rdata=AAAA("2001:db8::1"), ttl=300))
            sock.sendto(reply.pack(), self.client_address)

    server = socketserver.ThreadingUDPServer((HOST, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_origin(port: int) -> http.server.ThreadingHTTPServer:
    """The origin: the homework page at every path."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((HOST, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---- traffic ----


class Traffic:
    """Light DNS and web traffic from the child's device, in two threads, each answer recorded with the
    time its question was sent: (sent, answered)."""

    def __init__(
        self, ports: dict[str, int], listed: list[str], popular: list[str], paths: list[str]
    ) -> None:
        self.ports = ports
        self.listed, self.popular, self.paths = listed, popular, paths
        self.dns: list[tuple[float, bool]] = []
        self.http: list[tuple[float, bool]] = []
        self.http_status: Counter[int] = Counter()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._dns_loop, daemon=True),
            threading.Thread(target=self._http_loop, daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _paced(self, rate: float) -> Iterator[int]:
        n = 0
        begun = time.monotonic()
        while not self._stop.is_set():
            yield n
            n += 1
            delay = begun + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def _dns_loop(self) -> None:
        from dnslib import DNSRecord

        rng = random.Random(SEED + 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(DNS_TIMEOUT_S)
            for n in self._paced(DNS_RATE):
                name = rng.choice(self.listed if n % 3 == 0 else self.popular)
                query = DNSRecord.question(name, "AAAA" if n % 10 == 9 else "A")
                sent = time.monotonic()
                sock.sendto(query.pack(), (HOST, self.ports["dns"]))
                answered = False
                try:
                    while True:  # skip any late answer to an earlier question
                        reply = DNSRecord.parse(sock.recv(4096))
                        if reply.header.id == query.header.id:
                            answered = True
                            break
                except OSError:
                    pass
                self.dns.append((sent, answered))

    def _http_loop(self) -> None:
        rng = random.Random(SEED + 2)
        origin = f"http://{HOST}:{self.ports['origin']}"
        for n in self._paced(HTTP_RATE):
            kind = n % 4
            if kind == 0:
                url = f"http://{rng.choice(self.listed)}/"
            elif kind == 1:
                url = origin + rng.choice(self.paths)
            else:
                url = origin + "/page.html"
            sent = time.monotonic()
            try:
                status, _ = fetch(self.ports["proxy"], url)
                self.http_status[status] += 1
                ok = True
            except (OSError, http.client.HTTPException):
                ok = False
            self.http.append((sent, ok))

    def answered_between(self, windows: list[tuple[float, float]]) -> tuple[int, int]:
        """(answered, asked) DNS questions sent inside any of `windows`."""
        inside = [ok for sent, ok in self.dns if any(a <= sent <= b for a, b in windows)]
        return sum(inside), len(inside)


def fetch(port: int, url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET `url` through the proxy on `port` (absolute form, as a browser configured to use it)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", url, headers={"Host": url.split("/", 3)[2], "User-Agent": "bench/footprint.py"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Staff:
    """A member of staff on the staff pages (HTTPS, the appliance's own certificate not checked)."""

    PAGES = ("/", "/reports", "/policy", "/policy/lists", "/people", "/incidents", "/audit")

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie = ""
        self.views = 0
        self.failed = 0
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def _request(self, method: str, path: str, body: str | None = None) -> tuple[int, str, str]:
        conn = http.client.HTTPSConnection(HOST, self.port, timeout=30, context=self.context)
        try:
            headers = {"Cookie": self.cookie} if self.cookie else {}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.getheader("Set-Cookie") or "", r.read().decode(errors="replace")
        finally:
            conn.close()

    def sign_in(self) -> None:
        status, cookie, page = self._request("GET", "/signin")
        self.cookie = cookie.split(";", 1)[0]
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        form = {"username": "bench-lead", "password": PASSWORD, "csrf_token": found.group(1) if found else ""}
        status, cookie, page = self._request("POST", "/signin", urllib.parse.urlencode(form))
        if status not in (302, 303) or not cookie:
            raise RuntimeError(f"staff sign-in failed: {status} {page[:300]}")
        self.cookie = cookie.split(";", 1)[0]

    def view(self, path: str) -> str:
        try:
            status, _, page = self._request("GET", path)
        except (OSError, http.client.HTTPException):
            self.failed += 1
            return ""
        self.views += 1
        if status != 200:
            self.failed += 1
        return page

    def round(self, listed: str) -> None:
        for path in self.PAGES:
            self.view(path)
        self.view("/policy/explain?" + urllib.parse.urlencode({"subject": listed, "profile": PROFILE}))


# ---- memory ----


def pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:")), 0)


def process_table(roots: list[int]) -> dict[int, str]:
    """Every process under `roots`: pid -> a short name from its command line."""
    out = {}
    for root in roots:
        for pid in [root, *descendants(root)]:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            words = [Path(a.decode(errors="replace")).name for a in argv if a]
            words = [w for w in words if not w.startswith("python")]
            out[pid] = " ".join(words[:3])
    return out


class Sampler:
    """Sums PSS over the given processes every SAMPLE_S while running; keeps the peak."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, sum(pss_kb(p) for p in self.pids()))
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- the appliance's processes ----


def _into(cgroup: Path | None) -> Callable[[], None] | None:
    """A preexec_fn that moves the child into `cgroup` before it runs anything."""
    if cgroup is None:
        return None
    procs = cgroup / "cgroup.procs"

    def move() -> None:
        procs.write_text(str(os.getpid()))

    return move


class Appliance(Started):
    """An appliance command the bench started, in the cgroup if one is given."""

    def __init__(self, name: str, args: list[str], log: Path, cgroup: Path | None) -> None:
        self.name, self.log, self.grace_s = name, log, 30.0
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(APPLIANCE), *args], stdout=out, stderr=subprocess.STDOUT, preexec_fn=_into(cgroup)
            )
        self.started = time.perf_counter()


def run_compile(
    config: Path, log: Path, cgroup: Path | None, sampler_pids: list[int] | None = None
) -> dict[str, Any]:
    """`appliance lists compile --json`: wall time, peak RSS (wait4), exit code, entries, and when it
    started and ended (time.monotonic, as the traffic's times)."""
    started = time.monotonic()
    with open(log, "ab") as err, tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [str(APPLIANCE), "lists", "compile", "--json", "--config", str(config)],
            stdout=out,
            stderr=err,
            preexec_fn=_into(cgroup),
        )
        if sampler_pids is not None:
            sampler_pids.append(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if sampler_pids is not None:
            sampler_pids.remove(proc.pid)
        out.seek(0)
        text = out.read().decode(errors="replace")
    seconds = time.monotonic() - started
    entries = 0
    try:
        report = json.loads(text)
        entries = sum(source["entries"] for source in report)
    except (ValueError, KeyError, TypeError):
        pass
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "exit_code": proc.returncode,
        "entries": entries,
        "started": started,
        "ended": started + seconds,
    }


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def index_mappings(pid: int, index: Path) -> list[int]:
    """Inodes of the mappings of `index` in the process."""
    found = []
    try:
        lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(str(index)):
            found.append(int(fields[4]))
    return found


def wait_until(what: str, condition: Callable[[], bool], timeout: float, alive: list[Started]) -> float:
    started = time.perf_counter()
    while not condition():
        for server in alive:
            server.check_alive()
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)
    return time.perf_counter() - started


def _dns_answers(port: int) -> bool:
    from dnslib import DNSRecord

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.sendto(DNSRecord.question("ready-probe.example").pack(), (HOST, port))
            sock.recv(4096)
            return True
        except OSError:
            return False


def _answers_http(port: int, url: str) -> bool:
    try:
        fetch(port, url, timeout=5)
        return True
    except (OSError, http.client.HTTPException):
        return False


def _tls_listens(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
        return True
    except OSError:
        return False


def _askable(name: str) -> bool:
    """Can the name go into a DNS question (labels of 1 to 63 ASCII characters)?"""
    return name.isascii() and all(0 < len(label) < 64 for label in name.split("."))


def _lines_of(path: Path, limit: int, every: int = 1) -> list[str]:
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f):
            line = line.strip()
            if line and not line.startswith("#") and n % every == 0 and _askable(line.strip("|^")):
                out.append(line)
                if len(out) >= limit:
                    break
    return out


def provenance(config: Path, ports: dict[str, int], adult: Path) -> dict[str, Any]:
    """The block page of a stand-in name and `appliance lists match` name ut1-adult and its line."""
    number, name = 0, ""
    with open(adult / "domains", encoding="ascii") as f:
        for number, text in enumerate(f, 1):  # line 1 is a comment; the millionth line, or the last
            name = text.strip()
            if number == 1_000_000:
                break
    _, body = fetch(ports["proxy"], f"http://{name}/")
    page = body.decode(errors="replace")
    rule = re.search(r"Rule: ([^<]*)", page)
    match = subprocess.run(
        [str(APPLIANCE), "lists", "match", name, "--config", str(config)], capture_output=True, text=True
    ).stdout
    expected = f"ut1-adult:{number}"
    return {
        "name": name,
        "block_page_rule": rule.group(1) if rule else None,
        "lists_match": match.strip().splitlines()[1:2],
        "ok": bool(rule) and expected in rule.group(1) and f"from {expected}" in match,  # type: ignore[union-attr]
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cgroup = Path(args.cgroup) if args.cgroup else None
    adult = stand_in(work / "ut1-adult", args.adult)
    ports = {k: _free_port() for k in ("dns", "upstream", "proxy", "origin", "portal", "staff", "portal_tls")}
    config = write_config(work, adult, ports)
    log = work / "appliance.log"
    index = work / "var" / "index" / "filters.idx"
    shutil.rmtree(work / "var", ignore_errors=True)
    env_config = ["--config", str(config)]

    say("first compile (alone)")
    first = run_compile(config, log, cgroup)
    if first["exit_code"] != 0:
        raise RuntimeError(f"the compile failed ({first['exit_code']}):\n{log.read_text()[-3000:]}")
    index_mb = index.stat().st_size / 1e6
    say(
        f"compiled {first['entries']:,} entries in {first['seconds']} s, "
        f"peak {first['peak_rss_mb']} MB, index {index_mb:.1f} MB"
    )
    subprocess.run(
        [str(APPLIANCE), "users", "add", "bench-lead", "--role", "admin", "--password-stdin", *env_config],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    upstream = start_upstream(ports["upstream"])
    origin = start_origin(ports["origin"])
    listed = _lines_of(adult / "domains", 3000, every=997)
    listed += [
        line[2:-1]
        for line in _lines_of(LISTS / "hagezi" / "nsfw.txt", 1000, every=37)
        if line.startswith("||")
    ]
    popular = _lines_of(REQUESTS / "top50k-hostnames.txt", 5000, every=7)
    paths = [
        "/" + url.split("/", 3)[3]
        for url in _lines_of(REQUESTS / "top500-sitelist.txt", 2000, every=9)
        if url.count("/") >= 3
    ]
    result: dict[str, Any] = {}
    try:
        with servers() as started:
            dns = Appliance("dns", ["dns", *env_config], log, cgroup)
            started.append(dns)
            proxy = Appliance("proxy", ["proxy", "--workers", "4", *env_config], log, cgroup)
            started.append(proxy)
            wait_until("the DNS filter answers", lambda: _dns_answers(ports["dns"]), 300, started)
            probe = f"http://{HOST}:{ports['origin']}/page.html"
            wait_until("the proxy answers", lambda: _answers_http(ports["proxy"], probe), 300, started)
            dashboard = Appliance("dashboard", ["dashboard", *env_config], log, cgroup)
            started.append(dashboard)
            wait_until("the staff pages listen", lambda: _tls_listens(ports["staff"]), 120, started)
            roots = [s.proc.pid for s in started]
            staff = Staff(ports["staff"])
            staff.sign_in()
            traffic = Traffic(ports, listed, popular, paths)
            traffic.start()
            say(f"services up; traffic for {args.traffic_s} s")
            end = time.monotonic() + args.traffic_s
            while time.monotonic() < end:
                staff.round(random.choice(listed))
                time.sleep(2)
            result["provenance"] = provenance(config, ports, adult)
            before = {pid: pss_kb(pid) for pid in process_table(roots)}

            compiles: list[dict[str, Any]] = []
            compile_pids: list[int] = []

            def measured() -> list[int]:
                return [*process_table(roots), *compile_pids]

            with Sampler(measured) as sampler:
                for n in (1, 2):
                    say(f"nightly compile {n} beside the services")
                    compiling = threading.Thread(
                        target=lambda: compiles.append(run_compile(config, log, cgroup, compile_pids))
                    )
                    compiling.start()
                    while compiling.is_alive():
                        staff.round(random.choice(listed))
                        compiling.join(2)
            windows = [(c["started"], c["ended"]) for c in compiles]
            for c in compiles:
                if c["exit_code"] != 0:
                    raise RuntimeError(
                        f"a nightly compile failed ({c['exit_code']}):\n{log.read_text()[-3000:]}"
                    )
            inode = index.stat().st_ino
            # The DNS filter and the proxy's workers (forked: the proxy's own children) load the index.
            mapping = [dns.proc.pid, *children(proxy.proc.pid)]
            reload_s = wait_until(
                "every process reloads the new index",
                lambda: all(index_mappings(p, index) == [inode] for p in mapping),
                120,
                started,
            )
            say(f"reloaded in {reload_s:.1f} s; traffic for {args.traffic_s} s")
            end = time.monotonic() + args.traffic_s
            while time.monotonic() < end:
                staff.round(random.choice(listed))
                time.sleep(2)
            traffic.stop()
            table = process_table(roots)
            after = {f"{pid} {name}": pss_kb(pid) for pid, name in table.items()}
            services_kb = sum(after.values())
            dns_kb = sum(pss_kb(pid) for pid in [dns.proc.pid, *descendants(dns.proc.pid)])
            answered, asked = traffic.answered_between(windows)
            for server in started:
                server.check_alive()
            result.update(
                {
                    "compile_s": first["seconds"],
                    "compile_peak_mb": max(c["peak_rss_mb"] for c in [first, *compiles]),
                    "services_pss_mb": round(services_kb / 1024, 1),
                    "ours_dns_pss_mb": round(dns_kb / 1024, 1),  # the DNS filter and its event writer
                    "peak_pss_during_compile_mb": round(sampler.peak_kb / 1024, 1),
                    "dns_answered_during_compile": round(answered / asked, 4) if asked else 0.0,
                    "lost": sum(1 for _, ok in traffic.dns if not ok)
                    + sum(1 for _, ok in traffic.http if not ok),
                    "nightly_compiles": [
                        {k: c[k] for k in ("seconds", "peak_rss_mb", "entries")} for c in compiles
                    ],
                    "first_compile_peak_mb": first["peak_rss_mb"],
                    "reload_s": round(reload_s, 1),
                    "dns_asked": len(traffic.dns),
                    "dns_asked_during_compile": asked,
                    "http_requests": len(traffic.http),
                    "http_status": dict(traffic.http_status),
                    "staff_views": staff.views,
                    "staff_failed": staff.failed,
                    "processes": len(table),
                    "pss_mb_by_process": {k: round(v / 1024, 1) for k, v in sorted(after.items())},
                    "pss_mb_before_compiles": round(sum(before.values()) / 1024, 1),
                    "index_mappings": {p: len(index_mappings(p, index)) for p in mapping},
                }
            )
            codes = {}
        for server in started:
            codes[server.name] = server.proc.returncode
        result["exit_codes"] = codes
    finally:
        upstream.shutdown()
        origin.shutdown()
    result["entries"] = first["entries"]
    result["index_mb"] = round(index_mb, 1)
    if args.peer:
        say("the peer: dnsmasq with the same blocked names")
        peer = run_peer(work, adult, listed)
        result["peer_dnsmasq"] = peer
        ours_dns = result["ours_dns_pss_mb"]
        if peer.get("pss_mb"):
            result["dns_pss_ratio_vs_dnsmasq"] = round(ours_dns / peer["pss_mb"], 3)
    return result


# ---- the peer: dnsmasq holding the same names ----


def peer_hosts(work: Path, adult: Path) -> tuple[Path, int]:
    """Every blocked domain name of the centre set (UT1's blacklists with the adult stand-in, StevenBlack,
    HaGeZi, the Block List Project) once, as a hosts file (`0.0.0.0 name`): how Pi-hole before v5 and
    most dnsmasq block-list set-ups hand a list to dnsmasq. Made once per stand-in; the file and its
    names."""
    target = work / "peer.hosts"
    marker = work / ".peer.hosts.made"
    wanted = (adult / ".stand-in").read_text()
    if target.exists() and marker.exists() and marker.read_text().startswith(wanted):
        return target, int(marker.read_text().split("\n")[1])
    files: list[tuple[Path, str]] = []
    for folder in sorted((LISTS / "ut1").iterdir()):
        usage = folder / "usage"
        white = usage.exists() and "white" in usage.read_text(errors="replace")
        if folder.is_dir() and not white:
            files.append(((adult if folder.name == "adult" else folder) / "domains", "domains"))
    files.append((LISTS / "stevenblack" / "fakenews-gambling-porn-social.hosts", "hosts"))
    files += [(LISTS / "hagezi" / f"{name}.txt", "adblock") for name in HAGEZI]
    files += [(LISTS / "blocklistproject" / f"{name}.txt", "hosts") for name in BLP]
    seen: set[str] = set()
    with open(target, "w", encoding="ascii", errors="ignore") as out:
        for path, kind in files:
            if not path.exists():
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if not line or line[0] in "#!":
                        continue
                    if kind == "hosts":
                        parts = line.split()
                        name = parts[1] if len(parts) >= 2 else ""
                    elif kind == "adblock":
                        name = line[2:-1] if line.startswith("||") and line.endswith("^") else ""
                    else:
                        name = line
                    name = name.lower()
                    if name and name.isascii() and name not in seen and _askable(name):
                        seen.add(name)
                        out.write(f"0.0.0.0 {name}\n")
    count = len(seen)
    marker.write_text(f"{wanted}{count}\n")
    return target, count


def run_peer(work: Path, adult: Path, listed: list[str]) -> dict[str, Any]:
    """dnsmasq with the centre set's blocked names as a hosts file, cache as on a Pi-hole: its load time,
    its PSS once it answers the listed names, and whether it blocks them."""
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not Path(dnsmasq).exists():
        return {"skipped": "no dnsmasq"}
    hosts, names = peer_hosts(work, adult)
    port = _free_port()
    upstream_port = _free_port()
    upstream = start_upstream(upstream_port)
    command = [
        dnsmasq, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
        f"--listen-address={HOST}", "--bind-interfaces", f"--port={port}", "--user=root",
        f"--server={HOST}#{upstream_port}", f"--addn-hosts={hosts}", "--cache-size=10000",
        f"--pid-file={work / 'dnsmasq.pid'}",
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until("dnsmasq answers", lambda: _dns_answers(port), 600, [])
        load_s = time.monotonic() - started
        from dnslib import DNSRecord

        blocked = 0
        sample = [line for line in listed if "|" not in line][:200]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            for name in sample:
                try:
                    sock.sendto(DNSRecord.question(name).pack(), (HOST, port))
                    reply = DNSRecord.parse(sock.recv(4096))
                except (OSError, ValueError):  # unanswered: counted as not blocked
                    continue
                if any(str(rr.rdata) == "0.0.0.0" for rr in reply.rr):
                    blocked += 1
        return {
            "names": names,
            "load_s": round(load_s, 1),
            "pss_mb": round(pss_kb(proc.pid) / 1024, 1),
            "blocked_share_of_listed": round(blocked / len(sample), 3) if sample else 0.0,
        }
    finally:
        proc.terminate()
        proc.wait(30)
        upstream.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--adult", type=int, default=ADULT_NAMES, help="stand-in names for UT1 adult/domains")
    parser.add_argument("--traffic-s", type=float, default=30.0, help="traffic before and after the compiles")
    parser.add_argument("--work", help="work folder (kept; the stand-in is made once there)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--cgroup", help="an existing cgroup folder for every appliance process")
    parser.add_argument(
        "--no-peer", dest="peer", action="store_false", help="leave out dnsmasq holding the same names"
    )
    args = parser.parse_args()
    if not (LISTS.is_dir() and REQUESTS.is_dir()):
        print(f"bench/footprint.py: {DATA} is absent: nothing measured")
        print(json.dumps({"skipped": "no ../shared/data"}))
        return 0
    if not APPLIANCE.exists():
        print(f"bench/footprint.py: {APPLIANCE} is missing (make setup installs the appliance)")
        print(json.dumps({"skipped": "no appliance command"}))
        return 0
    if args.work:
        work = Path(args.work).resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="footprint-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        result = run(args, work)
    finally:
        if not args.work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    met = (
        all(
            result[k] >= v if k in ("entries", "dns_answered_during_compile") else result[k] <= v
            for k, v in BAR.items()
        )
        and result["lost"] == 0
        and result["provenance"]["ok"]
    )
    head = {k: result[k] for k in ("entries", "compile_s", "compile_peak_mb", "index_mb", "services_pss_mb")}
    head |= {k: result[k] for k in ("peak_pss_during_compile_mb", "dns_answered_during_compile", "lost")}
    print(json.dumps({**head, "bar_met": met, **{k: v for k, v in result.items() if k not in head}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
