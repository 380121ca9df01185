"""HTTP filtering proxies side by side: ours (`appliance proxy`) against e2guardian and bare mitmdump,
same origin, same page, same load, one run.

- **Origin**: nginx (Debian's package) on 127.0.0.1 with a private configuration in the work folder (one
  worker, no access log), serving a small English page (a children's homework-help page, about 2.5 kB
  of text/html) at `/` and `/page.html`. Every proxy fetches `http://127.0.0.1:<origin port>/page.html`.
- **e2guardian** (Debian's package, 5.3): a copy of /etc/e2guardian in the work folder, every path in it
  pointed at the copy, listening on 127.0.0.1 only, in the foreground, access logging on (`loglevel = 3`,
  every request, to a file in the work folder), the shipped filter group otherwise as Debian has it
  (phrase lists, content scanning of text pages), and the centre set's domains (below) as banned sites:
  one per line in a file `.Include`d from the group's `bannedsitelist`. Its load time is `*_ready_s`.
  Before timing, a request for a banned domain must get its "Access Denied" page (e2guardian sends that
  page with status 200: it is recognised by its body).
- **mitmdump** 11.0 (the one in the venv), bare: no script, `-q`, its own confdir in the work folder.
- **Ours**: `appliance proxy` with the centre set compiled (`appliance lists compile`, timed as
  `ours_compile_s`), one device `bench-client` at 127.0.0.1 on the shipped `10-12` profile (a child), in a
  copy of the shipped profiles file where that profile has no schedule (so the result does not depend on
  the time of day: outside opening hours it would be allowlist-only) and `log_allowed: event` (every
  allowed request written to the SQLite event log; `--log-allowed count` keeps the shipped daily counts),
  and `proxy: {workers: 2}`. After the runs the event log's rows and the daily counts' total are read
  (`ours_events_written`, `ours_counted`).
- **The centre set** is bench/matching.py's: every UT1 category whose `usage` says black, StevenBlack with
  its four extensions (filed as `adult` here, as bench/decide.py does), HaGeZi nsfw, EasyList and
  EasyPrivacy, from ../shared/data. e2guardian gets the domain lists' names (UT1, StevenBlack, HaGeZi:
  the names bench/matching.py gives its peer); it has no use for EasyList's rules.
- **Same answer first**: before any timing, one request through each proxy must come back 200 with the
  origin's page, byte for byte, and a request for a banned domain through e2guardian and ours must be
  blocked: a proxy answering block pages fast must not count as fast.
- **Load**: `wrk -t2 -c32 -d10 --latency` against the proxy's port, a Lua script setting the path to the
  absolute URL and Host to the origin, so each proxy sees an absolute-form request as from a browser
  configured to use it. Each proxy first gets one untimed warm-up (`--warmup`, 2 s); then `--rounds`
  rounds, each running wrk once through every proxy, in an order rotated each round. All servers stay up
  throughout, but only the measured one is under load (`*_others_cpu_s`: CPU the idle proxies used
  during its runs).
- **Figures**: rps and p99 are the means over a proxy's rounds, with each run's figures beside them
  (`*_rps_runs`, `*_p99_ms_runs`). `*_non_2xx` and `*_socket_errors` sum wrk's counts over the timed runs
  (`problems` lists every run that had any: its figures are not to be trusted), `*_bytes_per_response`
  is wrk's bytes read per response (a changed page would show here). `*_cpu_us_per_request` is the CPU
  the proxy (all its processes and threads, from /proc/PID/stat) spent per request, `*_wrk_cpu_us_*` and
  `*_origin_cpu_us_*` wrk's and nginx's: they share the machine's cores. `*_rss_mb` and `*_pss_mb` are
  the largest VmRSS and PSS read after a run, summed over the proxy's processes (ours' workers share the
  index's pages: RSS counts them once per worker, PSS once). `*_ready_s` is the time from a proxy's
  start to its first answer (all start together and are polled in turn). The machine is shared: CPU
  it spent during a run on anything but the proxies, nginx and wrk is `*_foreign_cpu_s`, and a run where
  that passed 5% of the cores' time is named in `busy_machine` (its figures are low).

    .venv/bin/python bench/proxy.py [--seconds S] [--connections C] [--rounds R] [--warmup S]
                                    [--skip-ours] [--log-allowed event|count] [--ready-timeout S]
                                    [--work DIR] [--keep]

nginx, e2guardian and wrk come from Debian (`nginx-light`, `e2guardian`, `wrk`);
`deploy/system-packages.sh --bench` installs them when missing. nginx and e2guardian run as the user
running the bench (root on the bench machine). e2guardian 5.3 in the foreground does not stop cleanly on
SIGTERM: it either carries on, and is killed 10 s later (`e2guardian_exit_code` -9), or crashes (-11).
Progress goes to stderr; the last line printed is one JSON object: ours_rps, e2guardian_rps,
mitmdump_rps, ours_p99_ms, e2guardian_p99_ms, then the bar (ours_rps >= e2guardian_rps and ours_rps >=
0.9 x mitmdump_rps) and the details.
"""

from __future__ import annotations

import argparse
import grp
import http.client
import json
import os
import pwd
import re
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from matching import DATA, LISTS, _centre_sources, _peer_hosts_lines  # noqa: E402  (bench/ is on the path)
from processes import Started, log_problems, servers  # noqa: E402

APPLIANCE = Path(sys.executable).parent / "appliance"
MITMDUMP = Path(sys.executable).parent / "mitmdump"
HOST = "127.0.0.1"
TOOLS_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
E2G_CONFIG = Path("/etc/e2guardian")
SIDES = ("ours", "e2guardian", "mitmdump")
THREADS = 2  # wrk -t
PROFILE = "10-12"
FOREIGN_SHARE = 0.05  # a run during which other programs took more of the cores is listed in busy_machine

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Homework Helper: Fractions Made Easy</title>
</head>
<body>
<h1>Homework Helper</h1>
<h2>Fractions made easy</h2>
<p>A fraction tells you how many parts of a whole you have. The number on the bottom, the denominator,
says how many equal parts the whole is cut into. The number on the top, the numerator, says how many
of those parts you are talking about. If a pizza is cut into eight slices and you eat three of them,
you have eaten three eighths of the pizza.</p>
<h2>Adding fractions</h2>
<p>To add two fractions with the same denominator, add the numerators and keep the denominator the
same: one fifth plus two fifths is three fifths. When the denominators are different, first find a
number that both denominators divide into. To add one half and one third, change both into sixths:
one half is three sixths and one third is two sixths, so together they make five sixths.</p>
<h2>Simplifying</h2>
<p>A fraction is in its simplest form when no number bigger than one divides both the top and the
bottom. Six eighths can be simplified by dividing both numbers by two, which gives three quarters.
Always check your answer to see if it can be made simpler.</p>
<h2>Fractions and decimals</h2>
<p>Every fraction can also be written as a decimal. Divide the top number by the bottom number: one
quarter is one divided by four, which is nought point two five. Some fractions give decimals that go on
for ever, like one third, which is nought point three three three and so on. We often round these to
two decimal places.</p>
<h2>Tips from our helpers</h2>
<ul>
<li>Draw a picture. Bars, circles and number lines make fractions much easier to compare.</li>
<li>Learn your times tables: most fraction questions are really about multiplying and dividing.</li>
<li>Read the question twice and underline the numbers you need before you start.</li>
</ul>
<h2>Try these at home</h2>
<ol>
<li>What is two sevenths plus three sevenths?</li>
<li>Write ten twelfths in its simplest form.</li>
<li>Which is bigger: three quarters or two thirds? Explain how you know.</li>
<li>A class of thirty pupils goes on a trip and one fifth of them bring a packed lunch. How many
pupils is that?</li>
</ol>
<p>Stuck? Ask a helper at the homework club, or look again at the worked examples in chapter four of
your maths book. Remember to show your working: your teacher wants to see how you got the answer.</p>
</body>
</html>
"""


class Server(Started):
    """A proxy or the origin: its port, and whether it answers yet."""

    def __init__(self, name: str, cmd: list[str], port: int, log: Path, grace_s: float = 30.0) -> None:
        super().__init__(name, cmd, log, grace_s)
        self.port = port

    def answers(self, probe_url: str, via_proxy: bool) -> bool:
        """Does the server give an HTTP answer (any status) to `probe_url` yet? RuntimeError if it died."""
        self.check_alive()
        try:
            fetch(self.port, probe_url, via_proxy, timeout=5.0)
        except (OSError, http.client.HTTPException):  # refused before it listens, or cut short
            return False
        return True


def wait_ready(
    waiting: dict[str, Server], probe_url: str, via_proxy: bool, timeout: float
) -> dict[str, float]:
    """Seconds from each server's start to its first HTTP answer, polling them in turn (so that one's
    time does not include another's); RuntimeError if one dies or does not answer within `timeout`."""
    ready: dict[str, float] = {}
    while len(ready) < len(waiting):
        for name, server in waiting.items():
            if name not in ready and server.answers(probe_url, via_proxy):
                ready[name] = time.perf_counter() - server.started
            elif name not in ready and time.perf_counter() - server.started > timeout:
                raise RuntimeError(f"{name} did not answer within {timeout:.0f} s:\n{server.tail()}")
        if len(ready) < len(waiting):
            time.sleep(0.1)
    return ready


def fetch(port: int, url: str, via_proxy: bool = True, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET `url`, through the proxy on `port` (absolute form, as a browser sends it to a proxy) or from
    the server on `port` itself; the status and the body."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if via_proxy:
            host = url.split("/", 3)[2]
            conn.request("GET", url, headers={"Host": host, "User-Agent": "bench/proxy.py"})
        else:
            conn.request("GET", url, headers={"User-Agent": "bench/proxy.py"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _tool(name: str) -> str:
    path = shutil.which(name, path=TOOLS_PATH)
    if path is None:
        raise RuntimeError(f"{name} not found")
    return path


def _ensure_tools() -> None:
    if all(shutil.which(t, path=TOOLS_PATH) for t in ("nginx", "e2guardian", "wrk")):
        return
    print("nginx, e2guardian or wrk missing: running deploy/system-packages.sh --bench", file=sys.stderr)
    if subprocess.run(["sh", str(ROOT / "deploy" / "system-packages.sh"), "--bench"]).returncode != 0:
        sys.exit(1)


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def _user_group() -> tuple[str, str]:
    return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name


# ---- the origin ----


def write_nginx(work: Path, port: int) -> Path:
    """The page, and a private nginx configuration serving it on 127.0.0.1:`port`; the configuration."""
    www = work / "www"
    www.mkdir()
    for name in ("index.html", "page.html"):
        (www / name).write_text(PAGE, encoding="utf-8")
    base = work / "nginx"
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (base / "temp" / sub).mkdir(parents=True)
    user = f"user {_user_group()[0]} {_user_group()[1]};\n" if os.geteuid() == 0 else ""
    temps = "".join(
        f"    {sub}_temp_path {base / 'temp' / sub};\n" for sub in ("proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = base / "nginx.conf"
    conf.write_text(
        "# bench/proxy.py: the origin every proxy fetches from.\n"
        "daemon off;\n"
        "master_process on;\n"
        "worker_processes 1;\n"
        f"{user}"
        f"pid {base / 'nginx.pid'};\n"
        f"error_log {base / 'error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "    access_log off;\n"
        f"    client_body_temp_path {base / 'temp' / 'client_body'};\n"
        f"{temps}"
        "    default_type text/html;\n"
        "    types { text/html html; }\n"
        "    sendfile on;\n"
        "    server {\n"
        f"        listen {HOST}:{port};\n"
        f"        root {www};\n"
        "        index index.html;\n"
        "    }\n"
        "}\n"
    )
    return conf


# ---- e2guardian ----


def _set_options(text: str, options: dict[str, str]) -> str:
    """`text` (an e2guardian configuration) with every active line of each option dropped and the
    option's new value appended."""
    for key in options:
        text = re.sub(
            rf"^[ \t]*{re.escape(key)}[ \t]*=.*$", f"# (bench/proxy.py: {key} set below)", text, flags=re.M
        )
    text += "\n# ---- bench/proxy.py ----\n" + "".join(f"{k} = {v}\n" for k, v in options.items())
    return text


def _quote(value: Path | str) -> str:
    if "'" in str(value):
        raise RuntimeError(f"e2guardian cannot take a path with a quote: {value}")
    return f"'{value}'"


def write_e2guardian(work: Path, port: int, domains: list[str]) -> Path:
    """A private copy of Debian's e2guardian configuration: listening on 127.0.0.1:`port`, access log in
    the work folder, `domains` banned; the main configuration file."""
    base = work / "e2guardian"
    shutil.copytree(E2G_CONFIG, base)
    for path in base.rglob("*"):  # every file names /etc/e2guardian: point them at the copy
        if path.is_file():
            data = path.read_bytes()
            if b"/etc/e2guardian" in data:
                path.write_bytes(data.replace(b"/etc/e2guardian", str(base).encode()))
    banned = base / "lists" / "bench-centre-set"
    with open(banned, "w", encoding="utf-8") as f:
        f.write('#listcategory: "centre set"\n')
        f.writelines(f"{d}\n" for d in domains)
    with open(base / "lists" / "bannedsitelist", "a", encoding="utf-8") as f:
        f.write(f"\n# bench/proxy.py: the centre set's domains\n.Include<{banned}>\n")
    (work / "e2guardian-cache").mkdir()
    user, group = _user_group()
    conf = base / "e2guardian.conf"
    conf.write_text(
        _set_options(
            conf.read_text(encoding="utf-8"),
            {
                "filterip": HOST,
                "filterports": str(port),
                "loglevel": "3",  # every request
                "loglocation": _quote(work / "e2guardian-access.log"),
                "pidfilename": _quote(work / "e2guardian.pid"),
                "filecachedir": _quote(work / "e2guardian-cache"),
                "nodaemon": "on",
                "nologger": "off",
                "logsyslog": "off",
                "daemonuser": _quote(user),
                "daemongroup": _quote(group),
            },
        ),
        encoding="utf-8",
    )
    return conf


def _first_banned(domains: list[str]) -> str:
    """A banned name to probe with: the first plain domain name of HaGeZi's nsfw list (adult: blocked for
    every child profile)."""
    wanted = set(domains)
    path = LISTS / "hagezi" / "nsfw.txt"
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.fullmatch(r"\|\|([a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,})\^", line.strip().lower())
            if m and m.group(1) in wanted:
                return m.group(1)
    raise RuntimeError(f"no plain domain name in {path}")


# ---- ours ----


def write_ours(work: Path, log_allowed: str, origin_port: int) -> Path:
    """The appliance's configuration (centre set, one child device, two proxy workers) and its profiles
    file; the configuration's path."""
    from appliance.config import PolicySettings

    text = PolicySettings().profiles.read_text(encoding="utf-8")
    start, end = text.index(f"\n  {PROFILE}:\n"), text.index("\n  13-17:\n")
    block = text[start:end]
    new = re.sub(r"\n    schedule: [^\n]*", "", block)
    new = re.sub(r"\n    log_allowed: \w+", f"\n    log_allowed: {log_allowed}", new)
    if new.count("schedule:") or f"log_allowed: {log_allowed}" not in new:
        raise RuntimeError(f"could not rewrite the {PROFILE} profile of {PolicySettings().profiles}")
    profiles = work / "profiles.yaml"
    profiles.write_text(
        f"# bench/proxy.py: the shipped profiles; {PROFILE} always open, log_allowed: {log_allowed}.\n"
        + text[:start]
        + new
        + text[end:],
        encoding="utf-8",
    )
    lines = [
        "# bench/proxy.py: the proxy under test.",
        f"data_dir: {json.dumps(str(work / 'data'))}",
        "lists:",
        "  sources:",
    ]
    for s in _centre_sources():
        # StevenBlack's combined file is mostly pornography: filed under adult, as bench/decide.py does.
        category = "adult" if s.category == "mixed" else s.category
        lines.append(
            f"    - {{name: {s.name}, format: {s.format.value}, category: {category}, "
            f"path: {json.dumps(s.location)}}}"
        )
    lines += [
        "policy:",
        f"  profiles: {json.dumps(str(profiles))}",
        "devices:",
        f'  - {{name: bench-client, profile: "{PROFILE}", network: {HOST}}}',
        "proxy:",
        "  workers: 2",
        f"  reachable_local_ports: [{origin_port}]",  # the origin is on this machine's loopback
    ]
    config = work / "appliance.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def _ours_available() -> bool:
    return (
        subprocess.run(
            [str(APPLIANCE), "proxy", "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ).returncode
        == 0
    )


def _events(path: Path) -> dict[str, Any]:
    """What ours' event log holds: rows by profile, asker and action (`10-12 device:bench-client allow`:
    the client was known as the child device), and the daily counts' total."""
    if not path.exists():
        return {"events_written": 0, "events_by": {}, "counted": 0}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT profile, subject, action, count(*) FROM event_log GROUP BY profile, subject, action"
        ).fetchall()
        (counted,) = db.execute("SELECT coalesce(sum(count), 0) FROM daily_counts").fetchone()
    finally:
        db.close()
    return {
        "events_written": sum(row[3] for row in rows),
        "events_by": {f"{profile} {subject} {action}": n for profile, subject, action, n in rows},
        "counted": counted,
    }


# ---- load ----

_SIZE = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_TIME_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _TIME_MS[m.group(2)]


def parse_wrk(text: str) -> dict[str, Any]:
    """wrk's figures: requests, rps, latency percentiles, bytes read, socket errors and non-2xx/3xx."""
    out: dict[str, Any] = {}
    if m := re.search(r"^\s*(\d+) requests in ([\d.]+)(\w+), ([\d.]+)([KMGT]?B) read", text, re.M):
        out["requests"] = int(m.group(1))
        out["duration_s"] = _ms(m.group(2) + m.group(3)) / 1000
        out["bytes_read"] = round(float(m.group(4)) * _SIZE[m.group(5)])
    if m := re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M):
        out["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        if m := re.search(rf"^\s*{pct}(?:\.0+)?%\s+(\S+)", text, re.M):
            out[f"p{pct}_ms"] = _ms(m.group(1))
    if m := re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M):
        out["mean_ms"], out["max_ms"] = _ms(m.group(1)), _ms(m.group(3))
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors = dict(zip(errors, (int(g) for g in m.groups()), strict=True))
    out["socket_errors"] = errors
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    if "rps" not in out or "requests" not in out or "p99_ms" not in out:
        raise ValueError("wrk's output has no Requests/sec, request count or latency distribution")
    return out


def write_lua(work: Path, origin_port: int) -> Path:
    """wrk's script: every request in absolute form for the origin's page, as sent to a proxy."""
    lua = work / "wrk-proxy.lua"
    lua.write_text(
        "-- bench/proxy.py: requests through a forward proxy (absolute-form target).\n"
        'wrk.method = "GET"\n'
        f'wrk.path = "http://{HOST}:{origin_port}/page.html"\n'
        f'wrk.headers["Host"] = "{HOST}:{origin_port}"\n'
    )
    return lua


def run_wrk(
    server: Server,
    lua: Path,
    seconds: float,
    connections: int,
    out: Path,
    origin: Server,
    others: list[Server],
) -> dict[str, Any]:
    """One wrk run through `server`; wrk's figures, and the CPU each party spent."""
    cmd = [_tool("wrk"), "-t", str(THREADS), "-c", str(connections), "-d", f"{seconds:g}s", "--latency"]
    cmd += ["-s", str(lua), f"http://{HOST}:{server.port}/"]
    machine_before = _machine_cpu_s()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = server.cpu_s(), origin.cpu_s(), sum(o.cpu_s() for o in others)
    result = subprocess.run(cmd, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_after = server.cpu_s(), origin.cpu_s(), sum(o.cpu_s() for o in others)
    machine = _machine_cpu_s() - machine_before
    out.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"wrk through {server.name} failed ({result.returncode}): see {out}")
    try:
        figures = parse_wrk(result.stdout)
    except ValueError as e:
        raise RuntimeError(f"wrk through {server.name}: {e}: see {out}") from e
    n = max(1, figures["requests"])
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures["cpu_us"] = (cpu_after[0] - cpu_before[0]) / n * 1e6
    figures["origin_cpu_us"] = (cpu_after[1] - cpu_before[1]) / n * 1e6
    figures["wrk_cpu_us"] = wrk_cpu / n * 1e6
    figures["others_cpu_s"] = cpu_after[2] - cpu_before[2]
    # CPU the machine spent on anything else: other people's programs (and the kernel's own work).
    known = sum(cpu_after) - sum(cpu_before) + wrk_cpu
    figures["foreign_cpu_s"] = max(0.0, machine - known)
    figures["bytes_per_response"] = figures["bytes_read"] / n
    return figures


def _machine_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _side_summary(runs: list[dict[str, Any]], memory: list[tuple[float, float]]) -> dict[str, Any]:
    def mean(key: str) -> float:
        return sum(float(r[key]) for r in runs) / len(runs)

    errors: dict[str, int] = {}
    for r in runs:
        for kind, count in r["socket_errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    return {
        "rps": round(mean("rps"), 1),
        "p99_ms": round(mean("p99_ms"), 3),
        "rps_runs": [round(r["rps"], 1) for r in runs],
        "p99_ms_runs": [round(r["p99_ms"], 3) for r in runs],
        "p50_ms": round(mean("p50_ms"), 3),
        "max_ms": round(max(r["max_ms"] for r in runs), 3),
        "requests": sum(r["requests"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "socket_errors": errors,
        "bytes_per_response": round(mean("bytes_per_response"), 1),
        "cpu_us_per_request": round(mean("cpu_us"), 2),
        "wrk_cpu_us_per_request": round(mean("wrk_cpu_us"), 2),
        "origin_cpu_us_per_request": round(mean("origin_cpu_us"), 2),
        "others_cpu_s": round(sum(r["others_cpu_s"] for r in runs), 2),
        "foreign_cpu_s": round(sum(r["foreign_cpu_s"] for r in runs), 2),
        "rss_mb": max(rss for rss, _ in memory),
        "pss_mb": max(pss for _, pss in memory),
    }


# ---- the run ----


def _start(
    running: list[Started], work: Path, origin_port: int, config: Path | None, domains: list[str]
) -> dict[str, Server]:
    """Start the proxies (each appended to `running` as it starts, so that it is stopped even if a later
    one fails); the proxies by name. e2guardian loads its lists while the others start."""
    sides: dict[str, Server] = {}
    port = _free_port()
    conf = write_e2guardian(work, port, domains)
    cmd = [_tool("e2guardian"), "-N", "-c", str(conf)]
    sides["e2guardian"] = Server("e2guardian", cmd, port, work / "e2guardian.log", grace_s=10)
    running.append(sides["e2guardian"])
    port = _free_port()
    cmd = [str(MITMDUMP), "--listen-host", HOST, "-p", str(port), "-q", "--set", f"confdir={work / 'mitm'}"]
    sides["mitmdump"] = Server("mitmdump", cmd, port, work / "mitmdump.log")
    running.append(sides["mitmdump"])
    if config is not None:
        port = _free_port()
        cmd = [str(APPLIANCE), "proxy", "--config", str(config), "--listen", f"{HOST}:{port}"]
        sides["ours"] = Server("ours", cmd, port, work / "ours.log")
        running.append(sides["ours"])
    return {side: sides[side] for side in SIDES if side in sides}


def _blocked(side: str, status: int, body: bytes) -> bool:
    """Did `side` answer with its block page? (e2guardian's comes with status 200.)"""
    if side == "e2guardian":
        return b"Access Denied" in body
    return status in (403, 451) or (status == 200 and b"blocked" in body.lower() and PAGE.encode() != body)


def run(
    work: Path,
    seconds: float,
    connections: int,
    rounds: int,
    warmup: float,
    skip_ours: bool,
    log_allowed: str,
    ready_timeout: float,
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    load_at_start = float(Path("/proc/loadavg").read_text().split()[0])
    if load_at_start > 0.5:
        print(f"the machine is busy (load average {load_at_start}): figures may be low", file=sys.stderr)
    t0 = time.perf_counter()
    domains = [line.split(None, 1)[1] for line in _peer_hosts_lines()]
    print(
        f"centre set: {len(domains):,} domains for e2guardian in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    banned_probe = f"http://{_first_banned(domains)}/"
    config: Path | None = None
    compile_s = None
    origin_port = _free_port()
    if not skip_ours:
        config = write_ours(work, log_allowed, origin_port)
        # No `appliance check`: it refuses the UT1 categories that categories.yaml does not file (astrology,
        # press, sports...). They are compiled all the same; no profile uses them (the proxy starts).
        t0 = time.perf_counter()
        _run([str(APPLIANCE), "lists", "compile", "--config", str(config)], "appliance lists compile")
        compile_s = time.perf_counter() - t0
        print(f"ours: compiled the centre set in {compile_s:.1f} s", file=sys.stderr)

    url = f"http://{HOST}:{origin_port}/page.html"
    lua = write_lua(work, origin_port)
    page = PAGE.encode()
    runs: dict[str, list[dict[str, Any]]] = {}
    memory: dict[str, list[tuple[float, float]]] = {}
    with servers() as running:
        nginx_conf = write_nginx(work, origin_port)
        cmd = [
            _tool("nginx"),
            "-e",
            str(work / "nginx" / "error.log"),
            "-p",
            str(work / "nginx"),
            "-c",
            str(nginx_conf),
        ]
        origin = Server("nginx", cmd, origin_port, work / "nginx.log")
        running.append(origin)
        wait_ready({"nginx": origin}, url, False, 30)
        status, body = fetch(origin_port, url, via_proxy=False)
        if status != 200 or body != page:
            raise RuntimeError(f"nginx answered {status} with {len(body)} bytes, not the page")
        sides = _start(running, work, origin_port, config, domains)
        ready_s = wait_ready(sides, url, True, ready_timeout)
        memory_start = {side: s.memory_mb() for side, s in sides.items()}
        for side in sides:
            rss, pss = memory_start[side]
            print(
                f"{side}: answering after {ready_s[side]:.1f} s (RSS {rss} MB, PSS {pss} MB)", file=sys.stderr
            )
        # The same answer, or the speeds mean nothing.
        probes: dict[str, Any] = {}
        for side, s in sides.items():
            status, body = fetch(s.port, url)
            if status != 200 or body != page:
                raise RuntimeError(
                    f"{side} answered {status} with {len(body)} bytes, not the origin's page:\n"
                    f"{body[:300].decode(errors='replace')}"
                )
            try:
                status, body = fetch(s.port, banned_probe, timeout=30)
                probes[side] = [status, _blocked(side, status, body)]
            except (OSError, http.client.HTTPException) as e:
                probes[side], body = [type(e).__name__, False], b""
            if side != "mitmdump" and not probes[side][1]:
                raise RuntimeError(f"{side} did not block {banned_probe}: {probes[side][0]}\n{body[:300]!r}")
        print(f"the page through each proxy; {banned_probe} blocked: {probes}", file=sys.stderr)

        names = list(sides)
        warm: dict[str, dict[str, Any]] = {}
        for side, s in sides.items():
            if warmup > 0:
                others = [o for o in sides.values() if o is not s]
                figures = run_wrk(s, lua, warmup, connections, work / f"{side}-warmup.out", origin, others)
                warm[side] = figures
                print(f"{side}: warm-up {figures['rps']:.0f} rps", file=sys.stderr)
        for round_ in range(rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for side in order:
                s = sides[side]
                others = [o for o in sides.values() if o is not s]
                figures = run_wrk(
                    s, lua, seconds, connections, work / f"{side}-{round_ + 1}.out", origin, others
                )
                s.check_alive()
                origin.check_alive()
                runs.setdefault(side, []).append(figures)
                memory.setdefault(side, []).append(s.memory_mb())
                trouble = sum(figures["socket_errors"].values()) + figures["non_2xx"]
                print(
                    f"{side} round {round_ + 1}: {figures['rps']:.0f} rps, p50 {figures['p50_ms']:.2f} ms, "
                    f"p99 {figures['p99_ms']:.2f} ms, {figures['bytes_per_response']:.0f} B/response, "
                    f"{figures['cpu_us']:.0f} us CPU/request, RSS {memory[side][-1][0]} MB, "
                    f"{figures['foreign_cpu_s']:.1f} CPU s to other programs"
                    + (
                        f", {figures['non_2xx']} non-2xx, errors {figures['socket_errors']}"
                        if trouble
                        else ""
                    ),
                    file=sys.stderr,
                )
        exit_codes = {side: s.stop() for side, s in sides.items()}
        origin_memory = origin.memory_mb()

    per_side = {side: _side_summary(runs[side], memory[side]) for side in sides}
    for side in SIDES:
        summary[f"{side}_rps"] = per_side[side]["rps"] if side in per_side else None
    for side in ("ours", "e2guardian", "mitmdump"):
        summary[f"{side}_p99_ms"] = per_side[side]["p99_ms"] if side in per_side else None
    ours_rps = summary["ours_rps"]
    summary["ours_vs_e2guardian"] = round(ours_rps / summary["e2guardian_rps"], 3) if ours_rps else None
    summary["ours_vs_mitmdump"] = round(ours_rps / summary["mitmdump_rps"], 3) if ours_rps else None
    summary["bar_met"] = (
        ours_rps >= summary["e2guardian_rps"] and ours_rps >= 0.9 * summary["mitmdump_rps"]
        if ours_rps
        else None
    )
    problems = [
        f"{side} round {i + 1}: {r['non_2xx']} non-2xx, socket errors {r['socket_errors']}"
        for side, side_runs in runs.items()
        for i, r in enumerate(side_runs)
        if r["non_2xx"] or any(r["socket_errors"].values())
    ]
    summary["problems"] = problems
    # Other programs busy during a run take cores from the proxy, wrk and nginx: its figures are low.
    capacity = (os.cpu_count() or 1) * seconds
    summary["busy_machine"] = [
        f"{side} round {i + 1}: {r['foreign_cpu_s']:.1f} CPU s to other programs (of {capacity:g} core s)"
        for side, side_runs in runs.items()
        for i, r in enumerate(side_runs)
        if r["foreign_cpu_s"] > FOREIGN_SHARE * capacity
    ]
    summary["loadavg_at_start"] = load_at_start
    for side, figures in per_side.items():
        del figures["rps"], figures["p99_ms"]
        summary |= {f"{side}_{key}": value for key, value in figures.items()}
        summary[f"{side}_rss_start_mb"], summary[f"{side}_pss_start_mb"] = memory_start[side]
        summary[f"{side}_ready_s"] = round(ready_s[side], 2)
        summary[f"{side}_warmup_rps"] = round(warm[side]["rps"], 1) if side in warm else None
        # What the proxy's log should hold, give or take the requests in flight when wrk stopped.
        summary[f"{side}_requests_with_warmup"] = figures["requests"] + (
            warm[side]["requests"] if side in warm else 0
        )
        summary[f"{side}_exit_code"] = exit_codes[side]
        summary[f"{side}_banned_probe"] = probes[side]
    summary["banned_probe_url"] = banned_probe
    summary["e2guardian_banned_domains"] = len(domains)
    log = work / "e2guardian-access.log"
    summary["e2guardian_log_lines"] = len(log.read_bytes().splitlines()) if log.exists() else 0
    if "ours" in sides:
        events = _events(work / "data" / "appliance.sqlite")
        summary["ours_compile_s"] = round(compile_s or 0, 2)
        summary["ours_events_written"] = events["events_written"]
        summary["ours_events_by"] = events["events_by"]
        summary["ours_counted"] = events["counted"]
        summary["ours_log_problems"] = log_problems((work / "ours.log").read_text(errors="replace"))
        summary["ours_log_allowed"] = log_allowed
    summary["origin_rss_mb"] = origin_memory[0]
    summary["page_bytes"] = len(page)
    summary |= {
        "seconds": seconds,
        "connections": connections,
        "threads": THREADS,
        "rounds": rounds,
        "warmup_s": warmup,
        "skipped": [side for side in SIDES if side not in sides],
        "versions": _versions(),
    }
    return summary


def _versions() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        lines = (result.stdout + result.stderr).strip().splitlines()
        return lines[0] if lines else "?"

    return {
        "e2guardian": first_line([_tool("e2guardian"), "-v"]),
        "nginx": first_line([_tool("nginx"), "-v"]),
        "wrk": first_line([_tool("wrk"), "-v"]).split(" Copyright")[0],
        "mitmdump": first_line([str(MITMDUMP), "--version"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="length of each timed wrk run (default 10)"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk connections, -c (default 32)")
    parser.add_argument("--rounds", type=int, default=2, help="timed runs through each proxy (default 2)")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="untimed run through each first (default 2 s)"
    )
    parser.add_argument(
        "--skip-ours", action="store_true", help="leave ours out (e2guardian and mitmdump only)"
    )
    parser.add_argument(
        "--log-allowed",
        choices=("event", "count"),
        default="event",
        help="ours' profile: every allowed request written as an event (default), or only counted",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=600.0,
        help="seconds each proxy may take to start answering (default 600: e2guardian loads its list)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        help="folder for the configurations, page and logs, left in place (default: a temporary one, "
        "removed at the end unless --keep or the run failed)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = parser.parse_args()
    needed = [LISTS / "ut1", LISTS / "stevenblack", LISTS / "hagezi", LISTS / "easylist"]
    missing = [str(p) for p in needed if not p.is_dir()]
    missing = missing or [s.location for s in _centre_sources() if not Path(s.location).exists()]
    if missing:
        print(
            f"bench/proxy.py: the centre set's lists are not in {DATA} (missing: {', '.join(missing[:3])}): "
            "nothing measured",
            file=sys.stderr,
        )
        return 2
    _ensure_tools()
    if not args.skip_ours and not _ours_available():
        print("bench/proxy.py: `appliance proxy` is not available: run with --skip-ours", file=sys.stderr)
        return 2
    work = (args.work or Path(tempfile.mkdtemp(prefix="bench-proxy-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    ok = False
    started = time.perf_counter()
    try:
        summary = run(
            work,
            args.seconds,
            args.connections,
            args.rounds,
            args.warmup,
            args.skip_ours,
            args.log_allowed,
            args.ready_timeout,
        )
        ok = True
    finally:
        if args.work is None and ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder left in place: {work}", file=sys.stderr)
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    print(
        "; ".join(
            f"{side} {summary[f'{side}_rps']:.0f} rps, p99 {summary[f'{side}_p99_ms']} ms"
            for side in SIDES
            if summary[f"{side}_rps"] is not None
        )
        + (f"; bar met: {summary['bar_met']}" if summary["bar_met"] is not None else "")
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
