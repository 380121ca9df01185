"""The event store: ingest through the real writer, then the staff's flagged feed over the result.

- **Store**: a fresh SQLite file in a temporary directory (appliance.store.schema, current schema).
- **Ingest**: through `appliance.events.recording.EventLog`, as the DNS filter does: a writer *process*
  (`python -m appliance.events.writer`) gets batches of arrays (when, who's key, what's key, seconds taken)
  handed over every 5,000 events (a quarter second at the bar's 20,000 events/s); web requests (about
  10%) go as `add_request` rows in the same batches. `flush` every 8 batches keeps the bench from
  outrunning the writer (beyond 200 waiting batches the log would drop some); the writer idles only while
  the first batch after each flush is made. Timed: wall clock from the first hand-over to the last
  flush's return.
- **Mix** (seeded): 150 children signed in through sessions (`child:<id>`, one to three devices each),
  100 devices by MAC or address and a few guests, their activity skewed (some children have a handful
  of events, some many thousands); about 3,000 distinct answers: hosts of ads, adult, gambling,
  social-networks, chat, malware (rare) and uncategorised sites, per profile and query type, with verdicts
  allow / block / flag and the categories' severities. About 71% allowed, 23% blocked, 6% flagged (allowed
  and flagged, or flagged for a watch list): the feed's notable rows are about 29% of the events. The
  writer folds a notable event into the visit of the same asker, host and verdict in the 5 minutes
  before (docs/store.md#visits), looking it up in the store when it has none open: the notable
  events and the visits (rows) they made are both reported.
  Timestamps run evenly over 30 days ending now.
- **Feed**: `appliance.store.feed.feed` (the dashboard's query) with random parameters, `--queries`
  times (default 200), on a connection of its own: no filter; a child; a device (by name or address);
  one category; a three-Cs area (its categories); a minimum severity; one to three days; blocked only;
  flagged only; and next pages (`until` = the oldest time of a first page of one of those).
  p50 / p95 / max over all, and p95 per kind in the progress lines.

    .venv/bin/python bench/store.py [--events N] [--queries Q] [--seed S] [--keep]

Bar (the issue's): `ingest_events_per_s >= 20000` and `feed_p95_ms <= 100` at `events >= 5,000,000`
(absolute, no peer). Progress lines first; the last line printed is one JSON object: events,
ingest_events_per_s, feed_p95_ms, feed_p50_ms, bar_met, then the details (with the SQLite version).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.events.recording import EventLog  # noqa: E402  (the repository root is on the path)
from appliance.events.values import Answer, Asker  # noqa: E402
from appliance.store.feed import FeedFilter, feed  # noqa: E402
from appliance.store.schema import connect  # noqa: E402
from profiles.categories import Severity  # noqa: E402
from profiles.identity import Child, Device, Identity, Via  # noqa: E402
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict  # noqa: E402

BATCH = 5_000  # a quarter second of events at the bar's 20,000 a second
FLUSH_EVERY = 8  # batches between flushes (back-pressure: see the docstring)
DAYS = 30
WEB_SHARE = 0.1
BAR_EVENTS, BAR_INGEST, BAR_P95_MS = 5_000_000, 20_000, 100.0
PROFILES = ("under-10", "10-12", "13-17", "guest")
AREAS = {  # categories.yaml: the three Cs
    "content": ("ads", "adult", "mixed-adult", "violence-hate", "weapons", "drugs", "misleading", "shopping"),
    "contact": ("tracking", "phishing", "social-networks", "chat", "dating", "personal-info", "self-harm"),
    "conduct": ("bullying", "gambling", "piracy", "hacking", "scams", "malware", "filter-bypass"),
}
# category: (hosts, share of events, severity, what the profiles mostly do)
CATEGORIES: dict[str, tuple[int, float, Severity, str]] = {
    "ads": (200, 0.12, Severity.LOW, "block"),
    "adult": (100, 0.02, Severity.HIGH, "block"),
    "gambling": (50, 0.015, Severity.HIGH, "block"),
    "social-networks": (40, 0.10, Severity.MEDIUM, "mixed"),
    "chat": (40, 0.05, Severity.MEDIUM, "flag"),
    "malware": (50, 0.0005, Severity.CRITICAL, "block"),
    "": (400, 0.6945, Severity.NONE, "allow"),
}


@dataclass
class World:
    """The centre's askers and answers, with the weights events are drawn by."""

    dns_who: list[Asker] = field(default_factory=list)
    who_weights: list[float] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    devices: list[tuple[str, str]] = field(default_factory=list)  # (name, address)
    dns_what: list[Answer] = field(default_factory=list)
    dns_weights: list[float] = field(default_factory=list)
    web_what: list[Answer] = field(default_factory=list)
    web_weights: list[float] = field(default_factory=list)


def _verdict(action: str, category: str, severity: Severity, profile: str, host: str) -> Verdict:
    if action == "allow":
        reasons: tuple[Reason, ...] = ()
        if category:
            reasons = (Reason(Step.CATEGORY, Action.ALLOW, f"category {category}", category, "", severity),)
        return Verdict(Action.ALLOW, profile, reasons, Severity.NONE, log=LogDetail.EVENT)
    if action == "flag":
        step = Step.WATCH_LIST if category == "" else Step.FLAG_CATEGORY
        reason = Reason(step, Action.FLAG, f"flagged: {category or 'watch list'}", category, "", severity)
        return Verdict(Action.ALLOW, profile, (reason,), severity, log=LogDetail.EVENT)
    reason = Reason(
        Step.CATEGORY, Action.BLOCK, f"category {category}", category, "", severity, "demo-list", 7, host
    )
    return Verdict(Action.BLOCK, profile, (reason,), severity, log=LogDetail.EVENT)


def _action(kind: str, profile: str, rng: random.Random) -> str:
    if kind == "mixed":  # social networks: blocked for the young, flagged or allowed for teenagers
        return "block" if profile in ("under-10", "10-12", "guest") else rng.choice(("allow", "flag"))
    if kind == "allow":
        return "flag" if rng.random() < 0.01 else "allow"  # a watch-list hit on an ordinary site
    return kind


def build_world(rng: random.Random) -> World:
    """Askers and answers of a busy centre (seeded)."""
    w = World()
    for i in range(150):
        child_id = f"c{i:04x}"
        profile = rng.choice(PROFILES[:3])
        child = Child(child_id, f"child {i}", profile)
        activity = rng.paretovariate(1.2)  # a few children do most of the asking
        for d in range(rng.randint(1, 3)):
            address = f"10.0.{d + 1}.{(i * 7 + d) % 250 + 2}"
            w.dns_who.append(Asker.of(address, Identity(profile, Via.SESSION, child=child)))
            w.who_weights.append(activity)
        w.children.append(child_id)
    for i in range(100):
        name, address = f"pc-{i:02d}", f"10.0.9.{i + 2}"
        profile = rng.choice(PROFILES)
        device = Device(name, profile, mac=f"02:00:00:00:09:{i:02x}")
        via = Via.MAC if i % 3 else Via.IP
        w.dns_who.append(Asker.of(address, Identity(profile, via, device=device)))
        w.who_weights.append(rng.paretovariate(1.2))
        w.devices.append((name, address))
    for i in range(20):
        w.dns_who.append(Asker.of(f"10.0.20.{i + 2}", Identity("guest", Via.GUEST)))
        w.who_weights.append(0.5)
    for category, (hosts, share, severity, kind) in CATEGORIES.items():
        slug = category or "site"
        for h in range(hosts):
            host = f"www.{slug}-{h}.example"
            popularity = share / hosts * min(rng.paretovariate(1.5), 20.0)
            for profile in rng.sample(PROFILES, rng.randint(1, 2)):
                v = _verdict(_action(kind, profile, rng), category, severity, profile, host)
                for qtype, part in (("A", 0.6), ("AAAA", 0.25), ("HTTPS", 0.15)):
                    w.dns_what.append(Answer.of("dns", host, qtype, v))
                    w.dns_weights.append(popularity * part)
                w.web_what.append(Answer.of("http", host, "GET", v))
                w.web_weights.append(popularity)
    return w


def ingest(path: Path, events: int, world: World, rng: random.Random) -> tuple[float, int, int]:
    """Write `events` events through EventLog: (seconds, DNS events, web requests)."""
    log = EventLog(path, ZoneInfo("Europe/London"))
    try:
        things: list[Asker | Answer] = [*world.dns_who, *world.dns_what, *world.web_what]
        for thing in things:
            log.define(thing)
        dns_who = array("Q", [who.key for who in world.dns_who])
        dns_what = array("Q", [what.key for what in world.dns_what])
        who_cum = list(_cumulative(world.who_weights))
        what_cum = list(_cumulative(world.dns_weights))
        web_cum = list(_cumulative(world.web_weights))
        end = time.time()
        start, step = end - DAYS * 86400, DAYS * 86400 / events
        dns = web = 0
        began = time.perf_counter()
        made = 0
        batches = 0
        while made < events:
            n = min(BATCH, events - made)
            t0 = start + made * step
            n_web = sum(1 for _ in range(n) if rng.random() < WEB_SHARE)
            n_dns = n - n_web
            who_i = rng.choices(range(len(dns_who)), cum_weights=who_cum, k=n)
            what_i = rng.choices(range(len(dns_what)), cum_weights=what_cum, k=n_dns)
            # The hot path appends to the arrays directly; whole arrays here (the writer sees the same).
            log.ts.extend(sorted(t0 + rng.random() * n * step for _ in range(n_dns)))
            log.who.extend(array("Q", [dns_who[i] for i in who_i[:n_dns]]))
            log.what.extend(array("Q", [dns_what[i] for i in what_i]))
            log.took.extend(array("f", [0.0004] * n_dns))
            web_i = rng.choices(range(len(world.web_what)), cum_weights=web_cum, k=n_web)
            for k, (wi, ai) in enumerate(zip(who_i[n_dns:], web_i, strict=True)):
                what = world.web_what[ai]
                status = 403 if what.action == "block" else 200
                url = f"http://{what.host}/page/{k}"
                log.add_request(t0 + k * step, world.dns_who[wi], what, 0.02, "GET", url, status, 5120)
            log.hand_over()
            made += n
            dns += n_dns
            web += n_web
            batches += 1
            if batches % FLUSH_EVERY == 0:
                log.flush(timeout=300)
                if batches % (FLUSH_EVERY * 25) == 0:
                    rate = made / (time.perf_counter() - began)
                    print(f"  ingest: {made:,} events, {rate:,.0f}/s", flush=True)
        written, _ = log.flush(timeout=300)
        seconds = time.perf_counter() - began
        if log.dropped_batches or written != events:
            raise SystemExit(f"the writer lost events: {written:,} of {events:,} written")
    finally:
        log.close()
    return seconds, dns, web


def _cumulative(weights: list[float]) -> list[float]:
    out, total = [], 0.0
    for weight in weights:
        total += weight
        out.append(total)
    return out


Query = tuple[str, FeedFilter]


def queries(world: World, rng: random.Random, now: float, count: int) -> list[Query]:
    """`count` feed filters the dashboard makes, with random parameters (next pages added later)."""
    categories = [c for c in CATEGORIES if c]
    makers: list[tuple[str, Callable[[], FeedFilter]]] = [
        ("none", lambda: FeedFilter()),
        ("child", lambda: FeedFilter(child=rng.choice(world.children))),
        ("device", lambda: FeedFilter(device=rng.choice(rng.choice(world.devices)))),
        ("category", lambda: FeedFilter(categories=(rng.choice(categories),))),
        ("area", lambda: FeedFilter(categories=AREAS[rng.choice(list(AREAS))])),
        ("severity", lambda: FeedFilter(min_severity=rng.choice(("low", "medium", "high", "critical")))),
        ("days", lambda: _days(rng, now)),
        ("blocked", lambda: FeedFilter(action="block")),
        ("flagged", lambda: FeedFilter(action="flag")),
    ]
    return [(name, make()) for name, make in (rng.choice(makers) for _ in range(count))]


def _days(rng: random.Random, now: float) -> FeedFilter:
    since = now - rng.uniform(1, DAYS) * 86400
    return FeedFilter(since=since, until=since + rng.randint(1, 3) * 86400)


def run_feed(path: Path, world: World, rng: random.Random, count: int) -> dict[str, list[float]]:
    """Milliseconds per feed query, by kind; every fourth query is followed by its next page."""
    db = connect(path)
    try:
        (now,) = db.execute("SELECT max(ts) FROM events").fetchone()
        times: dict[str, list[float]] = {}
        done = 0
        for kind, f in queries(world, rng, now, count):
            if done >= count:
                break
            began = time.perf_counter()
            page = feed(db, f)
            times.setdefault(kind, []).append((time.perf_counter() - began) * 1000)
            done += 1
            if done % 4 == 0 and len(page) == 50 and done < count:
                f = FeedFilter(**{**f.__dict__, "until": page[-1].ts})
                began = time.perf_counter()
                feed(db, f)
                times.setdefault("next-page", []).append((time.perf_counter() - began) * 1000)
                done += 1
    finally:
        db.close()
    return times


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=BAR_EVENTS)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the store file (its path is printed)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    path = work / "events.sqlite"
    try:
        world = build_world(rng)
        print(
            f"store bench: {args.events:,} events into {path} ({len(world.dns_who)} askers,"
            f" {len(world.dns_what) + len(world.web_what)} answers)",
            flush=True,
        )
        seconds, dns, web = ingest(path, args.events, world, rng)
        ingest_rate = args.events / seconds
        print(f"ingest: {args.events:,} events in {seconds:.1f} s: {ingest_rate:,.0f} events/s", flush=True)
        db = sqlite3.connect(path)
        notable, visits = db.execute(
            "SELECT sum(n), sum(v) FROM (SELECT sum(attempts) AS n, count(*) AS v FROM events WHERE notable"
            " UNION ALL SELECT sum(attempts), count(*) FROM requests WHERE notable)"
        ).fetchone()
        db.close()
        size_mb = sum(p.stat().st_size for p in work.iterdir()) / 1e6
        print(f"store: {size_mb:,.0f} MB, {notable:,} notable events in {visits:,} visits", flush=True)
        times = run_feed(path, world, rng, args.queries)
        every = [t for kind in times.values() for t in kind]
        for kind, values in sorted(times.items()):
            print(
                f"  feed {kind:>10}: {len(values):3} queries, p50 {statistics.median(values):7.2f} ms,"
                f" p95 {_pct(values, 95):7.2f} ms, max {max(values):7.2f} ms",
                flush=True,
            )
        p50, p95 = _pct(every, 50), _pct(every, 95)
        summary = {
            "events": args.events,
            "ingest_events_per_s": round(ingest_rate),
            "feed_p95_ms": round(p95, 2),
            "feed_p50_ms": round(p50, 2),
            "bar_met": args.events >= BAR_EVENTS and ingest_rate >= BAR_INGEST and p95 <= BAR_P95_MS,
            "feed_max_ms": round(max(every), 2),
            "feed_queries": len(every),
            "feed_p95_ms_by_kind": {k: round(_pct(v, 95), 2) for k, v in sorted(times.items())},
            "dns_events": dns,
            "web_requests": web,
            "notable_events": notable,
            "notable_visits": visits,
            "ingest_s": round(seconds, 1),
            "store_mb": round(size_mb),
            "sqlite_version": sqlite3.sqlite_version,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
        }
    finally:
        if args.keep:
            print(f"kept: {path}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
