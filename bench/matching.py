"""URL matching: our compiled index against Brave's adblock-rust (the `adblock` package), same lists, same
requests, one run. Each engine is measured in its own subprocess so their memory does not mix.

The "centre set": every UT1 category whose `usage` says black, StevenBlack's hosts with all four
extensions, HaGeZi nsfw, EasyList and EasyPrivacy. The peer gets EasyList, EasyPrivacy and the same
domains in hosts format. Requests: ../shared/data/requests/adguard-urlfilter-requests.jsonl.

    .venv/bin/python bench/matching.py [--limit N]

The last line printed is one JSON object (see docs/benchmarks.md for the fields and the bar).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

LISTS = DATA / "lists"
REQUESTS = DATA / "requests" / "adguard-urlfilter-requests.jsonl"
EASYLISTS = [LISTS / "easylist" / "easylist.txt", LISTS / "easylist" / "easyprivacy.txt"]


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process, in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _percentile(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(len(sorted_ns) * q))] / 1000


def _ut1_black_categories() -> list[Path]:
    from filters.formats import parse_ut1_usage

    folders = []
    for folder in sorted((LISTS / "ut1").iterdir()):
        usage = folder / "usage"
        if (
            usage.exists()
            and parse_ut1_usage(usage.read_text(errors="replace").splitlines(), "usage") is False
        ):
            folders.append(folder)
    return folders


def _centre_sources() -> list[Any]:
    from filters.sources import Format, Source

    sources = [Source(f"ut1-{f.name}", Format.UT1, f.name, str(f)) for f in _ut1_black_categories()]
    sources += [
        Source(
            "stevenblack-all",
            Format.HOSTS,
            "mixed",
            str(LISTS / "stevenblack" / "fakenews-gambling-porn-social.hosts"),
        ),
        Source("hagezi-nsfw", Format.ADBLOCK_DNS, "adult", str(LISTS / "hagezi" / "nsfw.txt")),
        Source("easylist", Format.ADBLOCK, "ads", str(EASYLISTS[0])),
        Source("easyprivacy", Format.ADBLOCK, "tracking", str(EASYLISTS[1])),
    ]
    return sources


def _load_requests(limit: int | None) -> list[tuple[str, str, str]]:
    out = []
    with open(REQUESTS, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out.append((r["url"], r["frameUrl"], r["cpt"]))
            if limit and len(out) >= limit:
                break
    return out


def worker_build(index_path: str) -> dict[str, Any]:
    from appliance.config import Config, FetchSettings
    from appliance.lists import compile_lists

    data_dir = Path(index_path).parent.parent
    config = Config("bench", data_dir, tuple(_centre_sources()), FetchSettings())
    started = time.perf_counter()
    result = compile_lists(config, now=datetime.now(UTC))
    return {
        "build_s": time.perf_counter() - started,
        "index_mb": result.index_bytes / 1e6,
        "entries": sum(r.entries for r in result.reports),
        "skipped": sum(r.skipped for r in result.reports),
        "rejected": [r.source for r in result.reports if r.rejected],
    }


def worker_ours(index_path: str, limit: int | None) -> dict[str, Any]:
    from appliance.storage import open_index
    from filters.network_index import request_type_from_cpt

    requests = _load_requests(limit)
    typed = [(url, frame, request_type_from_cpt(cpt)) for url, frame, cpt in requests]
    gc.collect()
    rss_before, _ = _rss_mb()
    started = time.perf_counter()
    index = open_index(Path(index_path))
    load_s = time.perf_counter() - started
    match = index.match_url
    pc = time.perf_counter_ns
    cold = []
    for url, frame, kind in typed:  # first pass: per-host memos and decoded buckets are being filled
        t0 = pc()
        match(url, source_url=frame, request_type=kind)
        cold.append(pc() - t0)
    cold.sort()
    times = []
    verdicts = []
    for url, frame, kind in typed:
        t0 = pc()
        m = match(url, source_url=frame, request_type=kind)
        times.append(pc() - t0)
        verdicts.append(any(h.kind == "adblock" and h.listed == "block" for h in m.hits))
    times.sort()
    rss, peak = _rss_mb()
    return {
        "p50_us": _percentile(times, 0.5),
        "p99_us": _percentile(times, 0.99),
        "cold_p50_us": _percentile(cold, 0.5),
        "cold_p99_us": _percentile(cold, 0.99),
        "mean_us": sum(times) / len(times) / 1000,
        "load_s": load_s,
        "rss_mb": rss - rss_before,
        "peak_rss_mb": peak - rss_before,
        "blocked_any": sum(
            1 for url, frame, kind in typed if match(url, source_url=frame, request_type=kind).blocking
        ),
        "verdicts": verdicts,
    }


def _peer_hosts_lines() -> list[str]:
    """The centre set's domain lists, in hosts format, for the peer."""
    from filters.formats import parse_adblock_dns, parse_domains, parse_hosts
    from filters.report import ReportBuilder

    domains: list[str] = []
    for folder in _ut1_black_categories():
        path = folder / "domains"
        if path.exists():
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            domains += [h for h, _, _ in parse_domains(lines, path.name, ReportBuilder("x"))]
    sb = LISTS / "stevenblack" / "fakenews-gambling-porn-social.hosts"
    domains += [h for h, _, _ in parse_hosts(sb.read_text().splitlines(), sb.name, ReportBuilder("x"))]
    hz = LISTS / "hagezi" / "nsfw.txt"
    domains += [h for h, _, _ in parse_adblock_dns(hz.read_text().splitlines(), hz.name, ReportBuilder("x"))]
    return [f"0.0.0.0 {d}" for d in dict.fromkeys(domains)]


def worker_peer(limit: int | None) -> dict[str, Any]:
    import adblock

    requests = _load_requests(limit)
    hosts = "\n".join(_peer_hosts_lines())
    easy = [p.read_text(encoding="utf-8") for p in EASYLISTS]
    gc.collect()
    rss_before, _ = _rss_mb()
    started = time.perf_counter()
    full = adblock.FilterSet()
    for text in easy:
        full.add_filter_list(text)
    full.add_filter_list(hosts)
    engine = adblock.Engine(full, optimize=True)
    build_s = time.perf_counter() - started
    del hosts, full  # the engine holds what it needs; do not count the peer's input twice
    gc.collect()
    check = engine.check_network_urls
    pc = time.perf_counter_ns
    cold = []
    for url, frame, cpt in requests:  # first pass, as for ours
        t0 = pc()
        check(url, frame, cpt)
        cold.append(pc() - t0)
    cold.sort()
    times = []
    for url, frame, cpt in requests:
        t0 = pc()
        check(url, frame, cpt)
        times.append(pc() - t0)
    times.sort()
    rss, peak = _rss_mb()
    # The agreement reference: the peer with EasyList + EasyPrivacy only (built after the memory reading).
    easy_only = adblock.FilterSet()
    for text in easy:
        easy_only.add_filter_list(text)
    reference = adblock.Engine(easy_only, optimize=True)
    verdicts = [reference.check_network_urls(u, f, c).matched for u, f, c in requests]
    return {
        "p50_us": _percentile(times, 0.5),
        "p99_us": _percentile(times, 0.99),
        "cold_p50_us": _percentile(cold, 0.5),
        "cold_p99_us": _percentile(cold, 0.99),
        "mean_us": sum(times) / len(times) / 1000,
        "build_s": build_s,
        "rss_mb": rss - rss_before,
        "peak_rss_mb": peak - rss_before,
        "verdicts": verdicts,
    }


def _run_worker(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *args], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N requests")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        kind, *rest = args.worker
        limit = args.limit
        if kind == "build":
            result = worker_build(rest[0])
        elif kind == "ours":
            result = worker_ours(rest[0], limit)
        else:
            result = worker_peer(limit)
        print(json.dumps(result))
        return 0

    if not REQUESTS.exists() or not all(p.exists() for p in EASYLISTS):
        print(f"bench/matching.py: {DATA} is absent: nothing measured")
        print(json.dumps({"skipped": "no ../shared/data"}))
        return 0
    try:
        import adblock  # noqa: F401
    except ImportError:
        print("bench/matching.py: the peer package `adblock` is not installed (make bench installs it)")
        print(json.dumps({"skipped": "no adblock package"}))
        return 0

    limit = ["--limit", str(args.limit)] if args.limit else []
    with tempfile.TemporaryDirectory() as tmp:
        index_path = os.path.join(tmp, "index", "filters.idx")
        build = _run_worker("build", index_path)
        print(
            f"ours: compiled {build['entries']:,} entries ({build['skipped']:,} lines skipped) "
            f"into {build['index_mb']:.1f} MB in {build['build_s']:.1f} s"
        )
        ours = _run_worker("ours", index_path, *limit)
    peer = _run_worker("peer", *limit)
    agree = sum(a == b for a, b in zip(ours["verdicts"], peer["verdicts"], strict=True)) / len(
        ours["verdicts"]
    )
    for name, r in (("ours", ours), ("peer", peer)):
        print(
            f"{name}: p50 {r['p50_us']:.2f} us  p99 {r['p99_us']:.2f} us  mean {r['mean_us']:.2f} us  "
            f"rss {r['rss_mb']:.1f} MB (peak {r['peak_rss_mb']:.1f} MB)"
        )
    summary = {
        "requests": len(ours["verdicts"]),
        "ours_p50_us": round(ours["p50_us"], 2),
        "ours_p99_us": round(ours["p99_us"], 2),
        "peer_p50_us": round(peer["p50_us"], 2),
        "peer_p99_us": round(peer["p99_us"], 2),
        "ours_build_s": round(build["build_s"], 2),
        "ours_load_s": round(ours["load_s"], 4),
        "peer_build_s": round(peer["build_s"], 2),
        "ours_rss_mb": round(ours["rss_mb"], 1),
        "peer_rss_mb": round(peer["rss_mb"], 1),
        "ours_cold_p50_us": round(ours["cold_p50_us"], 2),
        "ours_cold_p99_us": round(ours["cold_p99_us"], 2),
        "peer_cold_p50_us": round(peer["cold_p50_us"], 2),
        "peer_cold_p99_us": round(peer["cold_p99_us"], 2),
        "ours_peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "peer_peak_rss_mb": round(peer["peak_rss_mb"], 1),
        "agreement": round(agree, 4),
        "ours_blocked_any": ours["blocked_any"],
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
