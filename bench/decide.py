"""The whole decision (identify -> decide) against the bare match, same index, same requests, one run.

The centre set of bench/matching.py (UT1 black categories, StevenBlack with its four extensions,
HaGeZi nsfw, EasyList, EasyPrivacy), the shipped policy and its `13-17` profile, a centre of 40 devices
with a dozen children signed in, and the 30,523 real requests of
../shared/data/requests/adguard-urlfilter-requests.jsonl. The timed decision is what the proxy does per
request once it has the request's host: build the `Request`, `identify` the client, `decide`.
The two are timed alternately, 500 requests at a time, after a warm-up pass each, so both see the
same warm caches and the same machine.

    .venv/bin/python bench/decide.py [--limit N] [--rounds R]

The last line printed is one JSON object: decide_p50_us, decide_p99_us, match_p50_us, match_p99_us,
and the ratios (the bar: at most 1.25 at p50 and at p99).
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from matching import REQUESTS, _centre_sources, _load_requests, _percentile  # noqa: E402  (bench/ is on the path)

PROFILE = "13-17"
_CHUNK = 500
# Tuesday 24 November 2026, 16:00 in London: inside the profile's opening hours.
NOW = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def _centre() -> tuple[Any, Any, str, str]:
    """Devices and sessions of a busy centre; the client (IP, MAC) that asks, a 13-17 device."""
    from profiles.identity import Child, Device, Devices, Session, Sessions

    devices = [
        Device(f"pc-{i}", "10-12" if i % 2 else "under-10", mac=f"02:00:00:00:00:{i:02x}") for i in range(30)
    ]
    devices += [
        Device(f"teen-pc-{i}", PROFILE, mac=f"02:00:00:00:01:{i:02x}", managed=True) for i in range(8)
    ]
    devices += [
        Device("quiet-room", "under-10", network="10.0.0.16/28"),
        Device("all", "guest", network="10.0.0.0/24"),
    ]
    sessions = [
        Session(
            Child(f"c-{i:04x}", f"child {i}", "10-12"),
            f"02:00:00:00:00:{i:02x}",
            NOW - timedelta(hours=1),
            NOW + timedelta(hours=2),
            NOW - timedelta(minutes=1),
        )
        for i in range(12)
    ]
    return Devices(devices), Sessions(sessions), "10.0.0.77", "02:00:00:00:01:03"


def run(index_path: Path, limit: int | None, rounds: int) -> dict[str, Any]:
    from appliance.config import PolicySettings
    from appliance.policy_files import read_policy_files
    from appliance.storage import open_index
    from filters.network_index import request_type_from_cpt
    from filters.urls import split_url
    from profiles.decide import decide
    from profiles.identity import identify
    from profiles.request import Channel, Request

    index = open_index(index_path)
    policy = read_policy_files(PolicySettings()).bind(index)
    devices, sessions, client_ip, client_mac = _centre()
    assert identify(client_ip, client_mac, devices, sessions, NOW).profile == PROFILE
    # The proxy knows each request's host already (mitmproxy parsed it): split here, untimed.
    typed = [
        (url, split_url(url)[0], frame, request_type_from_cpt(cpt))
        for url, frame, cpt in _load_requests(limit)
    ]
    match = index.match_url
    pc = time.perf_counter_ns
    http = Channel.HTTP

    def match_pass(chunk: list[tuple[str, str, str, str]], out: list[int] | None) -> None:
        for url, _, frame, kind in chunk:
            t0 = pc()
            match(url, source_url=frame, request_type=kind)
            t1 = pc()
            if out is not None:
                out.append(t1 - t0)

    def decide_pass(chunk: list[tuple[str, str, str, str]], out: list[int] | None) -> None:
        for url, host, frame, kind in chunk:
            t0 = pc()
            identity = identify(client_ip, client_mac, devices, sessions, NOW)
            decide(Request(host, url, http, frame, kind), policy, identity, NOW)
            t1 = pc()
            if out is not None:
                out.append(t1 - t0)

    match_pass(typed, None)
    decide_pass(typed, None)
    match_times: list[int] = []
    decide_times: list[int] = []
    # Alternate in chunks, each side first in turn, so that drift in the machine's speed (other work,
    # frequency) falls on both alike.
    chunks = [typed[i : i + _CHUNK] for i in range(0, len(typed), _CHUNK)]
    gc.collect()
    gc.disable()
    try:
        for round_ in range(rounds):
            for n, chunk in enumerate(chunks):
                if (n + round_) % 2:
                    match_pass(chunk, match_times)
                    decide_pass(chunk, decide_times)
                else:
                    decide_pass(chunk, decide_times)
                    match_pass(chunk, match_times)
    finally:
        gc.enable()
    match_times.sort()
    decide_times.sort()
    actions: collections.Counter[str] = collections.Counter()
    steps: collections.Counter[str] = collections.Counter()
    for url, host, frame, kind in typed:
        verdict = decide(
            Request(host, url, http, frame, kind),
            policy,
            identify(client_ip, client_mac, devices, sessions, NOW),
            NOW,
        )
        actions[
            verdict.action.value + ("+flag" if verdict.flagged and verdict.action.value != "flag" else "")
        ] += 1
        if verdict.reasons:
            steps[verdict.reasons[0].step.value] += 1
    return {
        "requests": len(typed),
        "rounds": rounds,
        "decide_p50_us": round(_percentile(decide_times, 0.5), 2),
        "decide_p99_us": round(_percentile(decide_times, 0.99), 2),
        "match_p50_us": round(_percentile(match_times, 0.5), 2),
        "match_p99_us": round(_percentile(match_times, 0.99), 2),
        "decide_mean_us": round(sum(decide_times) / len(decide_times) / 1000, 2),
        "match_mean_us": round(sum(match_times) / len(match_times) / 1000, 2),
        "ratio_p50": round(_percentile(decide_times, 0.5) / _percentile(match_times, 0.5), 3),
        "ratio_p99": round(_percentile(decide_times, 0.99) / _percentile(match_times, 0.99), 3),
        "actions": dict(actions),
        "first_steps": dict(steps),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N requests")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed passes of each (default 3)")
    parser.add_argument(
        "--index", type=Path, help="a compiled centre-set index to reuse (else compiled here)"
    )
    args = parser.parse_args()
    if not REQUESTS.exists():
        print(f"bench/decide.py: {REQUESTS.parent.parent} is absent: nothing measured")
        print(json.dumps({"skipped": "no ../shared/data"}))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        index_path = args.index
        if index_path is None or not index_path.exists():
            from appliance.config import Config, FetchSettings
            from appliance.lists import compile_lists

            data_dir = Path(tmp) if index_path is None else index_path.parent.parent
            sources = tuple(
                # StevenBlack's combined file is mostly pornography: filed under adult here.
                s if s.category != "mixed" else type(s)(s.name, s.format, "adult", s.location)
                for s in _centre_sources()
            )
            config = Config("bench", data_dir, sources, FetchSettings())
            started = time.perf_counter()
            result = compile_lists(config, now=datetime.now(UTC))
            print(f"compiled the centre set in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            index_path = result.index_path
        summary = run(index_path, args.limit, args.rounds)
    print(
        f"decide p50 {summary['decide_p50_us']} us p99 {summary['decide_p99_us']} us; "
        f"match p50 {summary['match_p50_us']} us p99 {summary['match_p99_us']} us; "
        f"ratio p50 {summary['ratio_p50']} p99 {summary['ratio_p99']}"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
