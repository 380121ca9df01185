"""Alerts: events made through the real DNS filter and proxy, to a delivered e-mail and the dashboard's
banner, during a busy minute of normal traffic; and what the alerter costs the DNS filter.

- **Services**, as a centre runs them: `appliance dns`, `appliance proxy` (one worker, explicit mode),
  `appliance dashboard` and `appliance alerts` (at `nice` 10, as its unit runs it), on one
  configuration. Their upstream is a dnsmasq on 127.0.0.2 that answers every name with 127.0.0.1,
  where the bench's web origin listens; the e-mail goes to an SMTP server the bench runs (aiosmtpd)
  through the alerter's Apprise `mailto://` channel.
- **Alert events**: `--alerts` (200) spread evenly over the minute's "on" halves: half are DNS questions
  for names of a `self-harm` list (blocked, critical), half are web searches through the proxy with a
  self-harm watch-list term (flagged, critical), each a new visit. The bench's alerts.yaml throttles
  nothing (`throttle_minutes: 0`), so each event is an alert of its own and one message to the one
  contact: the worst case for delivery.
- **Normal traffic** all the while: dnsperf at full speed against the DNS filter (20,000 allowed names,
  8 clients) and a steady stream of web pages through the proxy.
- **On and off**: after one untimed pass of dnsperf over its questions (the DNS filter's cache warm),
  the minute is eight parts: off, on, on, off, on, off, off, on (so that a drift over the minute weighs
  on both alike). In an "off" part the alerter is stopped (SIGSTOP)
  and the same traffic is made, notable but raising nothing (blocked adult names, searches the bullying
  watch list flags: the bench's alerts.yaml has no rule for them); in an "on"
  part the alerter runs and the alert events are made. `cpu_s_off` and `cpu_s_on`: the CPU seconds
  each service spent in the off and the on parts.
  `dns_qps_change` is the DNS filter's answering rate in the on parts over the off ones, less one.
- **Latency** of an alert: from its first event's time in the store (when the DNS filter or the proxy
  answered) to the message's arrival at the SMTP server (`p50_s`, `p95_s`, `max_s`), and to the first
  poll of the dashboard's banner feed (`/alerts/live`, as an open staff page polls it) that shows it
  (`banner_p50_s`, `banner_p95_s`, `banner_max_s`).
- `duplicates`: messages beyond one per alert.

    .venv/bin/python bench/alerts.py [--seconds 60] [--alerts 200] [--work DIR] [--keep]

Needs dnsperf and dnsmasq (`deploy/system-packages.sh --bench`). Progress goes to stderr; the last line
is one JSON object: alerts, delivered, p50_s, p95_s, max_s, duplicates, dns_qps_change, then details.
Bar (issue 20): delivered == alerts, duplicates == 0, p95_s <= 2, dns_qps_change >= -0.05.
"""

from __future__ import annotations

import argparse
import email
import http.cookiejar
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from processes import Started, free_port, servers  # bench/ is on the path until the next line

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # `import dns`: dnspython

APPLIANCE = Path(sys.executable).parent / "appliance"
TOOLS_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
UPSTREAM_HOST, OURS_HOST = "127.0.0.2", "127.0.0.4"
ALLOWED = 20_000
PASSWORD = "bench-alerts-password-1"
TERMS = ["how to kill myself", "want to die", "self harm", "end my life", "cutting myself"]


def _tool(name: str) -> str:
    path = shutil.which(name, path=TOOLS_PATH)
    if path is None:
        raise RuntimeError(f"{name} not found: run deploy/system-packages.sh --bench")
    return path


def _run(cmd: list[str], what: str, stdin: str | None = None) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, input=stdin)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


# ---- the bench's own servers: the web origin and the SMTP server ----


class _Origin(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"<!doctype html><title>page</title><p>" + b"An ordinary page. " * 40 + b"</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Mailbox:
    """An SMTP server on loopback (aiosmtpd) keeping each message's arrival time and alert id."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.arrivals: list[tuple[float, int | None, str]] = []  # (time, alert id, subject)
        self._lock = threading.Lock()
        mailbox = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                arrived = time.time()
                message = email.message_from_bytes(envelope.content)
                text = _text_of(message)
                found = re.search(r"/alerts/(\d+)\b", text)
                with mailbox._lock:
                    mailbox.arrivals.append(
                        (arrived, int(found.group(1)) if found else None, str(message.get("Subject", "")))
                    )
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


def _text_of(message: email.message.Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    out = []
    for part in parts:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            out.append(payload.decode("utf-8", "replace"))
    return "\n".join(out)


# ---- the appliance's configuration ----


def write_config(
    work: Path,
    *,
    dns_port: int,
    upstream_port: int,
    proxy_port: int,
    origin_port: int,
    dashboard_port: int,
    smtp_port: int,
    alerts: int,
) -> Path:
    names = [f"hurt-{i}.selfharm-bench.example" for i in range(alerts)]
    (work / "selfharm.domains").write_text("\n".join(names) + "\n")
    calm = [f"calm-{i}.adult-bench.example" for i in range(alerts)]
    (work / "adult.domains").write_text("\n".join(calm) + "\n")
    (work / "queries.txt").write_text("".join(f"w{i}.allowed-bench.example A\n" for i in range(ALLOWED)))
    (work / "profiles.yaml").write_text(
        "# bench/alerts.py: the guest profile, filtered, self-harm sites blocked, searches watched.\n"
        "profiles:\n"
        "  guest:\n"
        "    description: The benchmark's devices.\n"
        "    mode: filtered\n"
        "    blocked_categories: [adult, self-harm]\n"
        "    watch: [self-harm, grooming, bullying]\n"
        "    safe_search: {enabled: false}\n"
        "    log_allowed: count\n"
        "    blocked_answer: zero\n"
    )
    (work / "alerts.yaml").write_text(
        "# bench/alerts.py: every critical event its own alert, told at once to one contact by e-mail.\n"
        "centre: Bench centre\n"
        f"link_base: http://127.0.0.1:{dashboard_port}\n"
        "throttle_minutes: 0\n"
        "rules:\n"
        "  - {name: self-harm, severity: critical, when: {watch_list: [self-harm]}}\n"
        "  - {name: self-harm-sites, severity: critical, when: {category: [self-harm]}}\n"
        "contacts:\n"
        "  lead:\n"
        "    name: E-safety lead\n"
        "    channels:\n"
        f'      email: "mailto://127.0.0.1:{smtp_port}?mode=insecure'
        '&from=appliance@bench.example&to=lead@bench.example"\n'
        "ladder:\n"
        "  - {after_minutes: 0, notify: lead}\n"
    )
    config = work / "appliance.yaml"
    config.write_text(
        "# bench/alerts.py: the services under test.\n"
        f"data_dir: {work / 'var'}\n"
        "lists:\n"
        "  sources:\n"
        f"    - {{name: bench-adult, format: domains, category: adult, path: {work / 'adult.domains'}}}\n"
        "    - {name: bench-selfharm, format: domains, category: self-harm,"
        f" path: {work / 'selfharm.domains'}}}\n"
        "policy:\n"
        "  guest_profile: guest\n"
        f"  profiles: {work / 'profiles.yaml'}\n"
        f"  alerts: {work / 'alerts.yaml'}\n"
        "dns:\n"
        f"  listen: ['{OURS_HOST}:{dns_port}']\n"
        f"  upstreams: ['{UPSTREAM_HOST}:{upstream_port}']\n"
        "  rate_limit: {per_second: 1000000000, burst: 1000000000}\n"
        "proxy:\n"
        f"  listen: 127.0.0.1:{proxy_port}\n"
        "  workers: 1\n"
        f"  reachable_local_ports: [{origin_port}]\n"
        "dashboard:\n"
        f"  listen: 127.0.0.1:{dashboard_port}\n"
    )
    return config


# ---- staff's open page: the banner's feed ----


class Banner:
    """A signed-in member of staff's page polling `/alerts/live` every quarter second, as the banner does:
    when each alert was first shown."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)
        )
        page = self.opener.open(self.base + "/signin", timeout=10).read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        form = {"username": "bench", "password": PASSWORD}
        if token:
            form["csrf_token"] = token.group(1)
        self.opener.open(self.base + "/signin", urllib.parse.urlencode(form).encode(), timeout=10).read()
        self.seen: dict[int, float] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.25):
            try:
                body = self.opener.open(self.base + "/alerts/live", timeout=5).read()
                now = time.time()
                for alert in json.loads(body).get("alerts", []):
                    self.seen.setdefault(int(alert["id"]), now)
            except (OSError, ValueError, KeyError):
                self.errors += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# ---- traffic ----


def _fetch(proxy_port: int, url: str) -> int:
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{proxy_port}"})
    )
    try:
        with opener.open(url, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def _web_background(proxy_port: int, origin_port: int, stop: threading.Event, counts: dict[str, int]) -> None:
    """Ordinary pages through the proxy, about twenty a second, all the while."""
    i = 0
    while not stop.wait(0.05):
        status = _fetch(proxy_port, f"http://page-{i % 500}.allowed-bench.example:{origin_port}/article/{i}")
        counts["web_pages"] += 1
        counts["web_failed"] += status != 200
        i += 1


def _alert_events(
    n: int,
    seconds: float,
    start: int,
    *,
    alerting: bool,
    dns_port: int,
    proxy_port: int,
    origin_port: int,
    sent: list[float],
) -> None:
    """`n` events spread evenly over `seconds`, DNS questions and searches through the proxy alternately,
    each a new visit: with `alerting`, for self-harm names and with self-harm terms (each time in `sent`);
    without, the same traffic, as notable, that raises nothing here: blocked adult names and searches
    flagged by the bullying watch list (the bench's alerts.yaml has no rule for either)."""
    import dns.message
    import dns.query

    began = time.monotonic()
    for k in range(n):
        time.sleep(max(0.0, began + k * seconds / n - time.monotonic()))
        i = start + k
        if alerting:
            sent.append(time.time())
        if i % 2 == 0:
            name = f"hurt-{i}.selfharm-bench.example" if alerting else f"calm-{i}.adult-bench.example"
            dns.query.udp(dns.message.make_query(name, "A"), OURS_HOST, port=dns_port, timeout=2)
        else:
            words = TERMS[i % len(TERMS)] if alerting else "everyone hates me"
            _fetch(
                proxy_port,
                f"http://www.google.com:{origin_port}/search?q={urllib.parse.quote_plus(f'{words} {i}')}",
            )


def _dnsperf(port: int, queries: Path, seconds: float, out: Path) -> float:
    cmd = [
        _tool("dnsperf"),
        "-s",
        OURS_HOST,
        "-p",
        str(port),
        "-d",
        str(queries),
        "-c",
        "8",
        "-l",
        str(seconds),
    ]
    with open(out, "wb") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)
    found = re.search(r"Queries per second:\s+([\d.]+)", out.read_text())
    if not found:
        raise RuntimeError(f"dnsperf: no rate in {out}")
    return float(found.group(1))


def _own_cpu_s() -> float:
    """CPU seconds of this process (all its threads), dnsperf's excluded."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 3)


def run(work: Path, seconds: float, alerts: int) -> dict[str, Any]:
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    mailbox = Mailbox()
    ports = {
        "dns_port": free_port(OURS_HOST),
        "upstream_port": free_port(UPSTREAM_HOST),
        "proxy_port": free_port(),
        "dashboard_port": free_port(),
    }
    config = write_config(
        work, origin_port=origin.server_address[1], smtp_port=mailbox.port, alerts=alerts, **ports
    )
    _run([str(APPLIANCE), "lists", "compile", "--config", str(config)], "appliance lists compile")
    _run(
        [
            str(APPLIANCE),
            "users",
            "add",
            "bench",
            "--role",
            "lead",
            "--password-stdin",
            "--config",
            str(config),
        ],
        "appliance users add",
        stdin=PASSWORD + "\n",
    )
    result: dict[str, Any] = {}
    try:
        with servers() as running:
            dnsmasq = _tool("dnsmasq")
            upstream = [
                dnsmasq,
                "--no-daemon",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                f"--port={ports['upstream_port']}",
                f"--listen-address={UPSTREAM_HOST}",
                "--address=/#/127.0.0.1",
                "--local-ttl=3600",
            ]
            running.append(Started("upstream", upstream, work / "upstream.log"))
            dns_server = Started("dns", [str(APPLIANCE), "dns", "--config", str(config)], work / "dns.log")
            running.append(dns_server)
            running.append(
                Started("proxy", [str(APPLIANCE), "proxy", "--config", str(config)], work / "proxy.log")
            )
            running.append(
                Started(
                    "dashboard",
                    [str(APPLIANCE), "dashboard", "--config", str(config)],
                    work / "dashboard.log",
                )
            )
            # As appliance-alerts.service runs it: Nice=10 (its CPUWeight needs systemd's cgroups).
            alerter = Started(
                "alerts",
                ["nice", "-n", "10", str(APPLIANCE), "alerts", "--config", str(config)],
                work / "alerts.log",
            )
            running.append(alerter)
            _wait_ready(ports, origin.server_address[1], running)
            os.kill(alerter.proc.pid, signal.SIGSTOP)
            banner = Banner(ports["dashboard_port"])
            stop = threading.Event()
            counts = {"web_pages": 0, "web_failed": 0}
            web = threading.Thread(
                target=_web_background, args=(ports["proxy_port"], origin.server_address[1], stop, counts)
            )
            web.start()
            # One untimed pass over the questions first: every part then meets the same warm cache.
            warm = [
                _tool("dnsperf"),
                "-s",
                OURS_HOST,
                "-p",
                str(ports["dns_port"]),
                "-d",
                str(work / "queries.txt"),
            ]
            subprocess.run(
                [*warm, "-n", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=True
            )
            phases = ("off", "on", "on", "off", "on", "off", "off", "on")  # a drift over the minute cancels
            quarter = seconds / len(phases)
            per_part = alerts // phases.count("on")
            qps: dict[str, list[float]] = {"off": [], "on": []}
            sent: list[float] = []
            made = calm = 0  # alert events made; events made that raise nothing
            cpu: dict[str, dict[str, float]] = {"off": {}, "on": {}}
            for q, phase in enumerate(phases):
                print(f"part {q + 1}: alerts {phase}", file=sys.stderr)
                on = phase == "on"
                if on:
                    os.kill(alerter.proc.pid, signal.SIGCONT)
                # The same traffic in every part: alert events when on, events that raise nothing when off.
                n = per_part if made + 2 * per_part <= alerts or not on else alerts - made
                events = threading.Thread(
                    target=_alert_events,
                    args=(n, quarter * 0.9, made if on else calm),
                    kwargs={
                        "alerting": on,
                        "dns_port": ports["dns_port"],
                        "proxy_port": ports["proxy_port"],
                        "origin_port": origin.server_address[1],
                        "sent": sent,
                    },
                )
                before = {server.name: server.cpu_s() for server in running}
                before["bench"] = _own_cpu_s()
                events.start()
                qps[phase].append(
                    _dnsperf(ports["dns_port"], work / "queries.txt", quarter, work / "dnsperf.out")
                )
                events.join()
                spent = {server.name: server.cpu_s() - before[server.name] for server in running}
                spent["bench"] = _own_cpu_s() - before["bench"]  # its SMTP server, banner polls, traffic
                for name, seconds in spent.items():
                    cpu[phase][name] = round(cpu[phase].get(name, 0.0) + seconds, 2)
                calm += 0 if on else n
                if on:
                    made += n
                    _drain(mailbox, work, alerts=len(sent), timeout=20.0)
                    os.kill(alerter.proc.pid, signal.SIGSTOP)
            stop.set()
            web.join()
            os.kill(alerter.proc.pid, signal.SIGCONT)
            _drain(mailbox, work, alerts=len(sent), timeout=30.0)
            banner.stop()
            result = _figures(work, mailbox, banner, sent, qps, counts)
            result["cpu_s_off"], result["cpu_s_on"] = cpu["off"], cpu["on"]
    finally:
        mailbox.stop()
        origin.shutdown()
    return result


def _wait_ready(ports: dict[str, int], origin_port: int, running: list[Started]) -> None:
    import dns.exception
    import dns.message
    import dns.query

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for server in running:
            server.check_alive()
        try:
            dns.query.udp(
                dns.message.make_query("ready.allowed-bench.example", "A"),
                OURS_HOST,
                port=ports["dns_port"],
                timeout=0.5,
            )
            if _fetch(ports["proxy_port"], f"http://ready.allowed-bench.example:{origin_port}/") == 200:
                urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    f"http://127.0.0.1:{ports['dashboard_port']}/signin", timeout=2
                ).read()
                return
        except (dns.exception.Timeout, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError("the services did not come up within 120 s")


def _store(work: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{work / 'var' / 'appliance.sqlite'}?mode=ro", uri=True, timeout=10)


def _drain(mailbox: Mailbox, work: Path, *, alerts: int, timeout: float) -> None:
    """Wait until every alert raised has a message, or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _store(work) as db:
            (raised,) = db.execute("SELECT count(*) FROM alerts").fetchone()
        if raised >= alerts and len({a for _, a, _ in mailbox.arrivals if a is not None}) >= raised:
            return
        time.sleep(0.2)


def _figures(
    work: Path,
    mailbox: Mailbox,
    banner: Banner,
    sent: list[float],
    qps: dict[str, list[float]],
    counts: dict[str, int],
) -> dict[str, Any]:
    db = _store(work)
    try:
        raised = dict(db.execute("SELECT id, raised FROM alerts").fetchall())
        by_kind = dict(db.execute("SELECT rule, count(*) FROM alerts GROUP BY rule").fetchall())
        deliveries = dict(
            db.execute("SELECT state, count(*) FROM alert_deliveries GROUP BY state").fetchall()
        )
    finally:
        db.close()
    first: dict[int, float] = {}
    messages = 0
    for arrived, alert, _ in mailbox.arrivals:
        if alert is not None:
            messages += 1
            first.setdefault(alert, arrived)
    delays = [first[a] - raised[a] for a in first if a in raised]
    shown = [banner.seen[a] - raised[a] for a in banner.seen if a in raised]
    off, on = sum(qps["off"]) / len(qps["off"]), sum(qps["on"]) / len(qps["on"])
    return {
        "alerts": len(sent),
        "delivered": len(first),
        "p50_s": _percentile(delays, 0.50),
        "p95_s": _percentile(delays, 0.95),
        "max_s": round(max(delays), 3) if delays else float("nan"),
        "duplicates": messages - len(first),
        "dns_qps_change": round(on / off - 1, 4),
        "raised": len(raised),
        "raised_by_rule": by_kind,
        "deliveries": deliveries,
        "banner_shown": len(shown),
        "banner_p50_s": _percentile(shown, 0.50),
        "banner_p95_s": _percentile(shown, 0.95),
        "banner_max_s": round(max(shown), 3) if shown else float("nan"),
        "banner_poll_errors": banner.errors,
        "dns_qps_off": [round(x) for x in qps["off"]],
        "dns_qps_on": [round(x) for x in qps["on"]],
        "web_pages": counts["web_pages"],
        "web_failed": counts["web_failed"],
        "messages_without_alert": sum(1 for _, a, _ in mailbox.arrivals if a is None),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="the busy minute's length")
    parser.add_argument("--alerts", type=int, default=200, help="alert events made")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = run(work, args.seconds, args.alerts)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
