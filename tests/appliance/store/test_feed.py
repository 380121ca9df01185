"""The staff's feed: the same events, in the same order, as a plain query over every row would give, for
every filter and page (with the walk cut short, so that both of its steps are exercised); notable only;
and no statement of it reads a whole table."""

from __future__ import annotations

import random
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from appliance.events.values import Answer, Asker
from appliance.events.writer import StoreWriter
from appliance.store import feed as feed_module
from appliance.store.feed import SEVERITIES, FeedEvent, FeedFilter, feed, get_events
from appliance.store.schema import connect
from profiles.categories import Severity
from profiles.identity import Child, Device, Identity, Via
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict

NOW = 1_800_000_000.0
CATEGORIES = {
    "ads": Severity.LOW,
    "adult": Severity.HIGH,
    "chat": Severity.MEDIUM,
    "malware": Severity.CRITICAL,
}


def verdict(action: str, category: str, severity: Severity) -> Verdict:
    if action == "allow":
        return Verdict(Action.ALLOW, "10-12", (), Severity.NONE, log=LogDetail.EVENT)
    effect = Action.FLAG if action == "flag" else Action.BLOCK
    reason = Reason(Step.CATEGORY, effect, f"category {category}", category, "", severity, "demo", 3, "x")
    return Verdict(
        Action.BLOCK if action == "block" else Action.ALLOW, "10-12", (reason,), severity, log=LogDetail.EVENT
    )


def child(child_id: str, address: str) -> Asker:
    return Asker.of(address, Identity("10-12", Via.SESSION, child=Child(child_id, "x", "10-12")))


def device(name: str, address: str) -> Asker:
    return Asker.of(address, Identity("10-12", Via.MAC, Device(name, "10-12", mac="02:00:00:00:00:01")))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    """2,000 events and 400 web requests over 20 days: a busy child, a child with three notable events,
    devices, four categories (malware rare), allowed, blocked and flagged; distinct times."""
    path = tmp_path_factory.mktemp("feed") / "events.sqlite"
    rng = random.Random(5)
    askers = [child("busy", "10.0.0.2"), child("busy", "10.0.0.3"), child("quiet", "10.0.0.4")]
    askers += [device(f"pc-{i}", f"10.0.1.{i}") for i in range(4)]
    answers: list[tuple[str, Answer]] = []
    for category, severity in CATEGORIES.items():
        for action in ("block", "flag", "allow"):
            for h in range(3):
                v = verdict(action, category, severity)
                answers.append((category, Answer.of("dns", f"{category}-{h}.example", "A", v)))
    web = [Answer.of("http", f"{c}.example", "GET", verdict("block", c, s)) for c, s in CATEGORIES.items()]
    writer = StoreWriter(path, ZoneInfo("UTC"))
    things: list[Asker | Answer] = [*askers, *web, *(w for _, w in answers)]
    defs = [(t.key, t) for t in things]
    times = sorted(rng.sample(range(int(NOW - 20 * 86400), int(NOW)), 2400))
    quiet_left = 3
    when: list[float] = []
    who_keys: list[int] = []
    what_keys: list[int] = []
    requests = []
    for i, ts in enumerate(times):
        who = askers[0] if rng.random() < 0.4 else rng.choice(askers[1:2] + askers[3:])
        category, what = rng.choice(answers)
        if category == "malware" and rng.random() < 0.9:  # rare
            category, what = answers[0]
        if who is askers[1] and quiet_left and what.action == "block":  # the quiet child's only events
            who, quiet_left = askers[2], quiet_left - 1
        if i % 6 == 5:
            w = rng.choice(web)
            requests.append((ts + 0.5, who.key, w.key, 0.01, "GET", f"http://{w.host}/{i}", 403, 10, ""))
        else:
            when.append(ts + 0.25)
            who_keys.append(who.key)
            what_keys.append(what.key)
    writer.write(defs, (when, who_keys, what_keys, [0.001] * len(when)), [], NOW, requests)
    writer.close()
    db = connect(path)
    yield db
    db.close()


def reference(db: sqlite3.Connection, f: FeedFilter, limit: int) -> list[str]:
    """The feed by brute force: every row of the log view, filtered in Python."""
    rows = db.execute(
        "SELECT id, ts, subject, client, category, severity, action, flagged, notable FROM event_log"
    ).fetchall()
    out = []
    for event_id, ts, subject, client, category, severity, action, flagged, notable in rows:
        if not notable or (f.until is not None and ts >= f.until) or (f.since is not None and ts < f.since):
            continue
        if f.child and subject != f"child:{f.child}":
            continue
        if f.device and subject != f"device:{f.device}" and client != f.device:
            continue
        if f.categories and category not in f.categories:
            continue
        if f.min_severity in SEVERITIES and severity not in SEVERITIES[SEVERITIES.index(f.min_severity) :]:
            continue
        if (f.action == "block" and action != "block") or (f.action == "flag" and not flagged):
            continue
        prefix, _, number = event_id.partition(":")
        out.append((ts, prefix == "web", int(number), event_id))
    return [event_id for *_, event_id in sorted(out, reverse=True)[:limit]]


FILTERS = [
    FeedFilter(),
    FeedFilter(child="busy"),
    FeedFilter(child="quiet"),
    FeedFilter(child="nobody"),
    FeedFilter(device="pc-2"),
    FeedFilter(device="10.0.0.2"),
    FeedFilter(categories=("malware",)),
    FeedFilter(categories=("ads", "adult")),
    FeedFilter(min_severity="critical"),
    FeedFilter(min_severity="medium"),
    FeedFilter(action="block"),
    FeedFilter(action="flag"),
    FeedFilter(child="busy", categories=("chat",), action="flag"),
    FeedFilter(since=NOW - 5 * 86400, until=NOW - 3 * 86400),
    FeedFilter(since=NOW - 15 * 86400, categories=("malware",)),
    FeedFilter(until=NOW - 10 * 86400, child="busy"),
]


@pytest.mark.parametrize("walk", [3_000, 7])
@pytest.mark.parametrize("f", FILTERS, ids=lambda f: repr(f)[11:-1] or "none")
def test_feed_matches_a_plain_query_page_after_page(
    store: sqlite3.Connection, f: FeedFilter, walk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "WALK", walk)
    for page_no in range(4):
        page = feed(store, f, 30)
        assert [e.id for e in page] == reference(store, f, 30), f"page {page_no + 1}"
        if len(page) < 30:
            break
        f = FeedFilter(**{**f.__dict__, "until": page[-1].ts})


def test_only_blocked_and_flagged_events_are_shown(store: sqlite3.Connection) -> None:
    page = feed(store, FeedFilter(), 500)
    assert len(page) == 500
    assert all(e.action == "block" or e.flagged for e in page)
    assert {e.id[:3] for e in page} == {"dns", "web"}


def test_a_child_with_few_events(store: sqlite3.Connection) -> None:
    page = feed(store, FeedFilter(child="quiet"))
    assert len(page) == 3
    assert {e.child for e in page} == {"quiet"}
    assert all(e.action == "block" for e in page)


def test_events_read_whole_and_by_id(store: sqlite3.Connection) -> None:
    page = feed(store, FeedFilter(categories=("malware",)), 5)
    web = next(e for e in feed(store, FeedFilter(), 50) if e.id.startswith("web"))
    assert web.method == "GET" and web.url.startswith("http://") and web.status == 403
    again = get_events(store, [page[0].id, web.id, "dns:999999", "nonsense", "web:x"])
    assert again == [page[0], web]
    assert page[0].reasons[0]["category"] == "malware" and page[0].severity == "critical"
    assert isinstance(page[0], FeedEvent) and page[0].record()["id"] == page[0].id
    # An incident keeps each event's record as JSON, its fields in this order.
    assert list(web.record()) == [
        *("id", "ts", "channel", "client", "subject", "via", "profile", "host", "detail", "action"),
        *("severity", "category", "flagged", "reasons", "method", "url", "status", "terms"),
        *("attempts", "last_ts"),
    ]
    assert web.record()["flagged"] is False and web.record()["reasons"] == web.reasons


def test_no_statement_reads_a_whole_table(store: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every feed statement walks an index of notable rows (EXPLAIN QUERY PLAN), whatever the filter."""
    monkeypatch.setattr(feed_module, "WALK", 7)
    statements: list[str] = []
    store.set_trace_callback(statements.append)
    try:
        for f in FILTERS:
            feed(store, f)
    finally:
        store.set_trace_callback(None)
    plans: list[Any] = []
    for sql in statements:
        plans += [row[3] for row in store.execute(f"EXPLAIN QUERY PLAN {sql}")]
    assert any("events_notable_by_asker" in p for p in plans)
    assert any("events_notable_by_answer" in p for p in plans)
    scans = [p for p in plans if re.match(r"SCAN (e|r|events|requests|askers|answers)\b", p)]
    assert all("COVERING INDEX" in p for p in scans), scans
    assert not [p for p in plans if re.search(r"\b(e|r|events|requests) USING INDEX events_by_time", p)]


def test_an_empty_store(tmp_path: Path) -> None:
    db = connect(tmp_path / "empty.sqlite")
    assert feed(db, FeedFilter()) == []
    assert feed(db, FeedFilter(child="x", categories=("adult",))) == []
    db.close()
