"""DNS filtering: our DNS filter (`appliance dns`) against dnsmasq, same block list, same questions,
same upstream, one run.

- **Block list**: N generated domains (default 1,000,000; seeded, so the same on every run): names like
  `boma.online` or `shop.nunjortuvi848.xyz`, 10-30 characters, about 60% two labels and 40% three.
  Ours reads them as a `domains` source in category `adult` (compiled with `appliance lists compile`,
  timed as `ours_compile_s`); the peer reads the same names as a hosts file, each name twice,
  `0.0.0.0 name` and `:: name` (with the first alone, dnsmasq forwards a blocked name's AAAA question).
- **Questions**: a dnsperf file of 100,000 lines, shuffled with a fixed seed: 30% names drawn from the
  block list, 70% from a fixed set of 20,000 generated allowed names (none of them is, or is under, a
  blocked name); about 90% A, 10% AAAA. With the default list: 54,812 distinct questions, 25,158 of
  them allowed.
- **Upstream**, one for both: a dnsmasq on 127.0.0.2 answering every name (192.0.2.1, 2001:db8::1) with
  TTL 3600, so that both sides may cache.
- **Peer**: dnsmasq on 127.0.0.3 with the hosts file (`--addn-hosts`), no /etc/hosts, no resolv.conf,
  the upstream as its one server, and `--cache-size=100000`: the size of our answer cache
  (`dns.cache.entries`). dnsmasq warns above 10,000, but at 10,000 the file's allowed answers do not fit
  and it falls to about 2,000 qps.
- **Ours**: `appliance dns` on 127.0.0.4, one process, with the guest profile of a bench policy:
  filtered, `adult` blocked (answered 0.0.0.0 and ::), safe search on, and `log_allowed: event`: every
  question answered is written to the SQLite query log (`ours_events_written`, against `ours_answered`).
  `--log-allowed count` runs it with the shipped privacy default instead (allowed names only counted per
  day, blocks still written as events).
  The per-device rate limit stays in the path, set so high that it never throttles the one client.
- **Same answers first**: 200 questions (50 blocked and 50 allowed names, as A and as AAAA) are asked of
  both sides before any timing; `sample_agreement` is the share answered alike (rcode and addresses).
- **Load**: `dnsperf -c C -l S` (8 clients, 20 s, at most 100 questions outstanding, dnsperf's default).
  Each side first gets one untimed pass over the whole file (`-n 1`), so that both caches hold every
  answer in it; then the measured runs alternate ours, peer, ours, peer, each after a 2 s warm-up
  (`-l 2`) against the same side. Measured runs use `-v` (a line per answer, written to a file, from
  which the latency percentiles are taken; it costs dnsperf about 0.7 µs of CPU per answer, which
  weighs more on the faster side).
- **Figures**: qps is the mean of a side's two runs, lost their sum, p50, p99 and max the larger of the
  two, `over_20ms` the answers slower than 20 ms in both, RSS the larger VmRSS (/proc/PID/status) read at
  the end of each run (for ours summed over its processes: the server and its query-log writer).
  `*_cpu_us_per_query` is the CPU a side spent per answered question (all its processes, from
  /proc/PID/stat), `*_dnsperf_cpu_us_per_query` dnsperf's own: the servers and dnsperf share the
  machine's cores, so a side can only go as fast as the two cores hold both.

    .venv/bin/python bench/dns.py [--domains N] [--seconds S] [--clients C] [--work DIR] [--keep]

dnsperf and dnsmasq come from Debian (`dnsperf`, `dnsmasq-base`); `deploy/system-packages.sh --bench`
installs them when missing. Progress goes to stderr; the last line printed is one JSON object: ours_qps,
peer_qps, ratio (ours / peer), ours_p99_ms, peer_p99_ms, ours_lost, peer_lost, ours_rss_mb, peer_rss_mb,
then the details.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Container, Iterator
from pathlib import Path
from typing import Any

from processes import Started, free_port, log_problems, servers  # bench/ is on the path until the next lines

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This file is bench/dns.py: take bench/ off the path, so that `import dns` finds dnspython, not this file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

APPLIANCE = Path(sys.executable).parent / "appliance"
SEED = 20261124
QUERIES = 100_000
ALLOWED = 20_000
BLOCKED_SHARE = 0.30
AAAA_SHARE = 0.10
OUTSTANDING = 100  # dnsperf's default -q
PEER_CACHE = 100_000
UPSTREAM_V4, UPSTREAM_V6 = "192.0.2.1", "2001:db8::1"
UPSTREAM_HOST, PEER_HOST, OURS_HOST = "127.0.0.2", "127.0.0.3", "127.0.0.4"
TOOLS_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"

_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"
_TLDS = ["com"] * 40 + ["net"] * 10 + ["org"] * 10 + ["info"] * 4 + ["io"] * 4 + ["de"] * 5 + ["uk"] * 4
_TLDS += ["fr"] * 4 + ["xyz"] * 5 + ["online"] * 3 + ["site"] * 3 + ["tv"] * 2 + ["me"] * 2 + ["ru"] * 4
_SUBS = ["www", "m", "cdn", "img", "static", "shop", "blog", "api", "media", "video", "live", "my", "go"]


def _names(rng: random.Random) -> Iterator[str]:
    """Endless plausible domain names, `<word><n>.<tld>` or `<sub>.<word><n>.<tld>`, 10-30 characters."""
    choice, randrange, random_ = rng.choice, rng.randrange, rng.random
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS] + [
        c + v + e for c in _CONSONANTS for v in _VOWELS for e in "nrslm"
    ]
    while True:
        word = "".join(choice(syllables) for _ in range(randrange(2, 5)))
        if random_() < 0.6:
            word += str(randrange(1000))
        name = f"{word}.{choice(_TLDS)}"
        if random_() < 0.4:
            sub = choice(_SUBS) if random_() < 0.7 else "".join(choice(syllables) for _ in range(2))
            name = f"{sub}.{name}"
        if 10 <= len(name) <= 30:
            yield name


def _under(name: str, names: Container[str]) -> bool:
    """Is `name`, or a domain it is under, in `names`?"""
    labels = name.split(".")
    return any(".".join(labels[i:]) in names for i in range(len(labels) - 1))


def write_data(work: Path, domains: int) -> dict[str, Any]:
    """The block list (domains and hosts formats) and the query file; what they hold."""
    rng = random.Random(SEED)
    blocked: dict[str, None] = {}  # ordered, so the lists come out in the same order each run
    for name in _names(rng):
        blocked[name] = None
        if len(blocked) == domains:
            break
    blocked_set = blocked.keys()
    allowed: dict[str, None] = {}
    for name in _names(random.Random(SEED + 1)):
        if not _under(name, blocked_set):
            allowed[name] = None
            if len(allowed) == ALLOWED:
                break
    blocked_list, allowed_list = list(blocked), list(allowed)
    with open(work / "blocked.domains", "w") as f:
        f.write("# bench/dns.py: generated block list\n")
        f.writelines(f"{n}\n" for n in blocked_list)
    with open(work / "blocked.hosts", "w") as f:
        # `::` too: with only 0.0.0.0, dnsmasq forwards a blocked name's AAAA question upstream.
        f.writelines(f"0.0.0.0 {n}\n:: {n}\n" for n in blocked_list)
    rng = random.Random(SEED + 2)
    n_blocked = round(QUERIES * BLOCKED_SHARE)
    lines = [(rng.choice(blocked_list), True) for _ in range(n_blocked)]
    lines += [(rng.choice(allowed_list), False) for _ in range(QUERIES - n_blocked)]
    rng.shuffle(lines)
    types = ["AAAA" if rng.random() < AAAA_SHARE else "A" for _ in lines]
    with open(work / "queries.txt", "w") as f:
        f.writelines(f"{name} {kind}\n" for (name, _), kind in zip(lines, types, strict=True))
    return {
        "blocked_domains": len(blocked_list),
        "queries_in_file": len(lines),
        "queries_blocked": n_blocked,
        "queries_aaaa": types.count("AAAA"),
        "distinct_names_in_file": len({name for name, _ in lines}),
        # Asked of both sides before timing: 50 blocked and 50 allowed names, each as A and as AAAA.
        "sample": [
            (name, is_blocked, kind)
            for is_blocked in (True, False)
            for name in [n for n, b in lines[:500] if b == is_blocked][:50]
            for kind in ("A", "AAAA")
        ],
    }


def write_config(work: Path, upstream_port: int, log_allowed: str = "event") -> Path:
    """The appliance's configuration and the bench's profiles file; the configuration's path."""
    (work / "profiles.yaml").write_text(
        "# bench/dns.py: one guest profile that blocks the bench's list and logs every query.\n"
        "profiles:\n"
        "  guest:\n"
        "    description: The benchmark client.\n"
        "    mode: filtered\n"
        "    blocked_categories: [adult]\n"
        "    safe_search: {enabled: true, youtube: strict}\n"
        f"    log_allowed: {log_allowed}\n"
        "    blocked_answer: zero\n"
    )
    config = work / "appliance.yaml"
    config.write_text(
        "# bench/dns.py: the DNS filter under test.\n"
        f"data_dir: {work / 'var'}\n"
        "lists:\n"
        "  sources:\n"
        f"    - {{name: bench-blocked, format: domains, category: adult, path: {work / 'blocked.domains'}}}\n"
        "policy:\n"
        "  guest_profile: guest\n"
        f"  profiles: {work / 'profiles.yaml'}\n"
        "dns:\n"
        f'  upstreams: ["{UPSTREAM_HOST}:{upstream_port}"]\n'
        "  rate_limit: {per_second: 1000000000, burst: 1000000000}\n"
    )
    return config


def _ensure_tools() -> None:
    if shutil.which("dnsperf", path=TOOLS_PATH) and shutil.which("dnsmasq", path=TOOLS_PATH):
        return
    print("dnsperf or dnsmasq missing: running deploy/system-packages.sh --bench", file=sys.stderr)
    if subprocess.run(["sh", str(ROOT / "deploy" / "system-packages.sh"), "--bench"]).returncode != 0:
        sys.exit(1)


def _tool(name: str) -> str:
    path = shutil.which(name, path=TOOLS_PATH)
    if path is None:
        raise RuntimeError(f"{name} not found")
    return path


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def _ask(host: str, port: int, name: str, kind: str = "A", timeout: float = 1.0) -> tuple[str, list[str]]:
    """One question over UDP: the answer's rcode and its addresses, sorted."""
    import dns.message
    import dns.query
    import dns.rcode

    answer = dns.query.udp(dns.message.make_query(name, kind), host, port=port, timeout=timeout)
    found = sorted(str(rd) for rrset in answer.answer for rd in rrset if rd.rdtype in (1, 28))
    return dns.rcode.to_text(answer.rcode()), found


class Server(Started):
    """A DNS server the bench started: its address, and when it first answers."""

    def __init__(self, name: str, cmd: list[str], host: str, port: int, log: Path) -> None:
        super().__init__(name, cmd, log)
        self.host, self.port = host, port

    def wait_ready(self, timeout: float = 300.0) -> float:
        """Seconds from start to the first answer; RuntimeError if it dies or never answers."""
        import dns.exception

        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            self.check_alive()
            try:
                _ask(self.host, self.port, "ready-probe.example", timeout=0.5)
                return time.perf_counter() - self.started
            except (dns.exception.Timeout, OSError):  # OSError: refused, before it listens
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s:\n{self.tail()}")


_STAT = re.compile(r"^\s*(Queries sent|Queries completed|Queries lost|Queries per second):\s+([\d.]+)", re.M)
_RCODES = re.compile(r"^\s*Response codes:\s+(.*)$", re.M)


def dnsperf(
    server: Server, queries: Path, clients: int, seconds: float, extra: list[str], out: Path
) -> dict[str, Any]:
    """One dnsperf run against `server`; its figures, with latency percentiles if `-v` is in `extra`."""
    cmd = [_tool("dnsperf"), "-s", server.host, "-p", str(server.port), "-d", str(queries)]
    cmd += ["-c", str(clients), "-q", str(OUTSTANDING), "-l", str(seconds), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = server.cpu_s()
    with open(out, "wb") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = server.cpu_s() - server_before
    dnsperf_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text_stats: dict[str, float] = {}
    rcodes: dict[str, int] = {}
    latencies: list[float] = []
    with open(out, errors="replace") as f:
        for line in f:
            if line.startswith("> "):
                latencies.append(float(line.rsplit(None, 1)[1]))
            elif m := _STAT.match(line):
                text_stats[m.group(1)] = float(m.group(2))
            elif m := _RCODES.match(line):
                rcodes = {k: int(v) for k, v in re.findall(r"([A-Z]+) (\d+) \(", m.group(1))}
    if rc != 0 or "Queries per second" not in text_stats:
        raise RuntimeError(f"dnsperf against {server.name} failed ({rc}): see {out}")
    result: dict[str, Any] = {
        "qps": text_stats["Queries per second"],
        "sent": int(text_stats["Queries sent"]),
        "completed": int(text_stats["Queries completed"]),
        "lost": int(text_stats["Queries lost"]),
        "rcodes": rcodes,
        # CPU per answered question: the server's (all its processes), and dnsperf's own.
        "cpu_us": server_cpu / max(1, int(text_stats["Queries completed"])) * 1e6,
        "dnsperf_cpu_us": dnsperf_cpu / max(1, int(text_stats["Queries completed"])) * 1e6,
    }
    if latencies:
        latencies.sort()
        n = len(latencies)
        result["p50_ms"] = latencies[n // 2] * 1000
        result["p99_ms"] = latencies[min(n - 1, int(n * 0.99))] * 1000
        result["max_ms"] = latencies[-1] * 1000
        result["over_20ms"] = n - bisect.bisect_right(latencies, 0.020)
    out.unlink()  # the -v files run to tens of MB
    return result


def _events(path: Path) -> dict[str, Any]:
    """What ours' query log holds: events by action, and the daily counts' total."""
    if not path.exists():
        return {"events_written": 0}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        by_action = dict(db.execute("SELECT action, count(*) FROM event_log GROUP BY action").fetchall())
        (counted,) = db.execute("SELECT coalesce(sum(count), 0) FROM daily_counts").fetchone()
    finally:
        db.close()
    return {"events_written": sum(by_action.values()), "events_by_action": by_action, "counted": counted}


def _compare(
    sides: dict[str, Server], sample: list[tuple[str, bool, str]]
) -> tuple[int, int, dict[str, Any]]:
    """Ask both sides each sampled question: how many answers agree, of how many, and the first answer of
    each side to each kind of question (blocked or allowed, A or AAAA)."""
    agree = 0
    examples: dict[str, list[str]] = {}
    for name, is_blocked, kind in sample:
        answers = {side: _ask(s.host, s.port, name, kind) for side, s in sides.items()}
        if answers["ours"] == answers["peer"]:
            agree += 1
        else:
            print(f"answers differ: {name} {kind}: {answers}", file=sys.stderr)
        for side, (rcode, addresses) in answers.items():
            examples.setdefault(
                f"{side}_{'blocked' if is_blocked else 'allowed'}_{kind}", [rcode, *addresses]
            )
    return agree, len(sample), examples


def _start_servers(running: list[Started], work: Path, config: Path, upstream_port: int) -> dict[str, Server]:
    """Start the upstream (and wait until it answers), then the peer and ours; each is appended to
    `running` as it starts, so that it is stopped even if a later one fails. Ours and the peer, by name."""
    dnsmasq = _tool("dnsmasq")
    common = ["--no-daemon", "--keep-in-foreground", "--conf-file=/dev/null", "--bind-interfaces"]
    common += ["--no-resolv", "--no-hosts"]
    cmd = [dnsmasq, *common, f"--port={upstream_port}", f"--listen-address={UPSTREAM_HOST}"]
    cmd += [f"--address=/#/{UPSTREAM_V4}", f"--address=/#/{UPSTREAM_V6}", "--local-ttl=3600"]
    upstream = Server("upstream", cmd, UPSTREAM_HOST, upstream_port, work / "upstream.log")
    running.append(upstream)
    upstream.wait_ready()
    port = free_port(PEER_HOST)
    cmd = [dnsmasq, *common, f"--port={port}", f"--listen-address={PEER_HOST}"]
    cmd += [f"--addn-hosts={work / 'blocked.hosts'}", f"--cache-size={PEER_CACHE}"]
    cmd += [f"--server={UPSTREAM_HOST}#{upstream_port}"]
    peer = Server("peer", cmd, PEER_HOST, port, work / "peer.log")
    running.append(peer)
    port = free_port(OURS_HOST)
    cmd = [str(APPLIANCE), "dns", "--config", str(config), "--listen", f"{OURS_HOST}:{port}"]
    ours = Server("ours", cmd, OURS_HOST, port, work / "ours.log")
    running.append(ours)
    return {"ours": ours, "peer": peer}


def _side_summary(runs: list[dict[str, Any]], rss: list[float]) -> dict[str, Any]:
    rcodes: dict[str, int] = {}
    for r in runs:
        for code, n in r["rcodes"].items():
            rcodes[code] = rcodes.get(code, 0) + n
    return {
        "qps": round(sum(r["qps"] for r in runs) / len(runs), 1),
        "p99_ms": round(max(r["p99_ms"] for r in runs), 3),
        "lost": sum(r["lost"] for r in runs),
        "rss_mb": max(rss),
        "qps_runs": [round(r["qps"], 1) for r in runs],
        "p50_ms": round(max(r["p50_ms"] for r in runs), 3),
        "p99_ms_runs": [round(r["p99_ms"], 3) for r in runs],
        "max_ms": round(max(r["max_ms"] for r in runs), 3),
        "over_20ms": sum(r["over_20ms"] for r in runs),
        "rcodes": rcodes,
        "cpu_us_per_query": round(sum(r["cpu_us"] for r in runs) / len(runs), 2),
        "dnsperf_cpu_us_per_query": round(sum(r["dnsperf_cpu_us"] for r in runs) / len(runs), 2),
    }


def run(work: Path, domains: int, seconds: float, clients: int, log_allowed: str = "event") -> dict[str, Any]:
    started = time.perf_counter()
    data = write_data(work, domains)
    print(
        f"generated {data['blocked_domains']:,} blocked domains and {data['queries_in_file']:,} queries "
        f"in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    sample = data.pop("sample")
    queries = work / "queries.txt"
    upstream_port = free_port(UPSTREAM_HOST)
    config = write_config(work, upstream_port, log_allowed)
    _run([str(APPLIANCE), "check", "--config", str(config)], "appliance check")
    t0 = time.perf_counter()
    _run([str(APPLIANCE), "lists", "compile", "--config", str(config)], "appliance lists compile")
    compile_s = time.perf_counter() - t0
    print(f"ours: compiled the list in {compile_s:.1f} s", file=sys.stderr)

    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "peer": []}
    rss: dict[str, list[float]] = {"ours": [], "peer": []}
    with servers() as running:
        sides = _start_servers(running, work, config, upstream_port)
        ready_s = {side: s.wait_ready() for side, s in sides.items()}
        rss_start = {side: s.rss_mb() for side, s in sides.items()}
        print(
            f"answering: ours after {ready_s['ours']:.1f} s ({rss_start['ours']} MB), "
            f"peer after {ready_s['peer']:.1f} s ({rss_start['peer']} MB)",
            file=sys.stderr,
        )
        # The same answers, or their speeds mean nothing.
        agree, asked, examples = _compare(sides, sample)
        print(f"sample questions: {agree} of {asked} answered alike", file=sys.stderr)
        answered = {"ours": 1 + asked, "peer": 1 + asked}  # the readiness probe and the sample
        for side, server in sides.items():
            t0 = time.perf_counter()
            prime = dnsperf(server, queries, clients, 300, ["-n", "1"], work / f"{side}-prime.out")
            answered[side] += prime["completed"]
            print(
                f"{side}: primed with one pass over the query file in {time.perf_counter() - t0:.1f} s "
                f"({prime['qps']:.0f} qps, {prime['lost']} lost)",
                file=sys.stderr,
            )
        for round_ in range(2):
            for side, server in sides.items():
                warm = dnsperf(server, queries, clients, 2, [], work / f"{side}-warm.out")
                result = dnsperf(server, queries, clients, seconds, ["-v"], work / f"{side}-{round_}.out")
                answered[side] += warm["completed"] + result["completed"]
                if server.proc.poll() is not None:
                    raise RuntimeError(f"{side} exited during the run:\n{server.tail()}")
                rss[side].append(server.rss_mb())
                runs[side].append(result)
                print(
                    f"{side} run {round_ + 1}: {result['qps']:.0f} qps, p50 {result['p50_ms']:.3f} ms, "
                    f"p99 {result['p99_ms']:.3f} ms, max {result['max_ms']:.1f} ms, {result['lost']} lost, "
                    f"{result['rcodes']}, RSS {rss[side][-1]} MB",
                    file=sys.stderr,
                )
        exit_codes = {side: s.stop() for side, s in sides.items()}

    per_side = {side: _side_summary(runs[side], rss[side]) for side in ("ours", "peer")}
    ours, peer = per_side["ours"], per_side["peer"]
    summary: dict[str, Any] = {"ours_qps": ours["qps"], "peer_qps": peer["qps"]}
    summary["ratio"] = round(ours["qps"] / peer["qps"], 3)
    for key in ("p99_ms", "lost", "rss_mb"):  # the headline figures first
        summary |= {f"ours_{key}": ours.pop(key), f"peer_{key}": peer.pop(key)}
    del ours["qps"], peer["qps"]
    for side in ("ours", "peer"):
        summary |= {f"{side}_{key}": value for key, value in per_side[side].items()}
        summary[f"{side}_rss_start_mb"] = rss_start[side]
        summary[f"{side}_ready_s"] = round(ready_s[side], 2)
        summary[f"{side}_exit_code"] = exit_codes[side]
    summary["ours_compile_s"] = round(compile_s, 2)
    events = _events(work / "var" / "appliance.sqlite")
    summary["ours_answered"] = answered["ours"]
    summary["ours_events_written"] = events["events_written"]
    summary["ours_events_by_action"] = events.get("events_by_action", {})
    summary["ours_counted"] = events.get("counted", 0)
    stop_line = re.search(r"stopped after .*", ours_log := (work / "ours.log").read_text(errors="replace"))
    summary["ours_stop_line"] = stop_line.group(0) if stop_line else None
    summary["ours_log_problems"] = log_problems(ours_log)
    summary["sample_agreement"] = round(agree / asked, 3)
    summary["sample_answers"] = examples
    summary |= data
    summary |= {
        "seconds": seconds,
        "clients": clients,
        "outstanding": OUTSTANDING,
        "peer_cache_size": PEER_CACHE,
        "ours_log_allowed": log_allowed,
    }
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domains", type=int, default=1_000_000, help="blocked domains (default 1,000,000)")
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="length of each measured run (default 20)"
    )
    parser.add_argument("--clients", type=int, default=8, help="dnsperf clients, -c (default 8)")
    parser.add_argument(
        "--work",
        type=Path,
        help="folder for the lists, configuration and logs, left in place (default: a temporary one, "
        "removed at the end unless --keep or the run failed)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument(
        "--log-allowed",
        choices=("event", "count"),
        default="event",
        help="ours' profile: every allowed question written as an event (default), or only counted",
    )
    args = parser.parse_args()
    _ensure_tools()
    work = (args.work or Path(tempfile.mkdtemp(prefix="bench-dns-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    ok = False
    try:
        summary = run(work, args.domains, args.seconds, args.clients, args.log_allowed)
        ok = True
    finally:
        if args.work is None and ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder left in place: {work}", file=sys.stderr)
    print(
        f"ours {summary['ours_qps']:.0f} qps, p99 {summary['ours_p99_ms']} ms, {summary['ours_rss_mb']} MB; "
        f"peer {summary['peer_qps']:.0f} qps, p99 {summary['peer_p99_ms']} ms, {summary['peer_rss_mb']} MB; "
        f"ratio {summary['ratio']}"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
