"""Blocks of names under one blocked domain are put together per device: the first is kept as an event
for staff, the others within `store.aggregate_minutes` only add to the day's totals (random names under a
blocked domain, `a1.pornhub.com`, `b2.pornhub.com`, ..., or a tracker's random subdomains, would
otherwise flood the staff's feed and the store). Through the real event log: `EventLog`, its writer
process and a SQLite file. The DNS filter's own test is in tests/appliance/dns/test_reload_and_log.py."""

from __future__ import annotations

import random
import sqlite3
import string
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.config.store import StoreSettings
from appliance.events.recording import EventLog
from appliance.events.values import Answer, Asker, blocked_under
from profiles.categories import Severity
from profiles.identity import Child, Identity, Via
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict

NOW = 1_790_000_000.0
TABLET = Asker.of("10.0.0.11", Identity("kids", Via.SESSION, child=Child("c1", "x", "kids")))
LAPTOP = Asker.of("10.0.0.12", Identity("kids", Via.SESSION, child=Child("c2", "y", "kids")))


def block(rule: str, *, flag: bool = False, step: Step = Step.CATEGORY) -> Verdict:
    """A block of category adult by `rule` (with a watch-list flag riding along when `flag`)."""
    reasons = [
        Reason(step, Action.BLOCK, "domain listed under Adult", "adult", "", Severity.HIGH, "demo", 4, rule)
    ]
    if flag:
        reasons.append(
            Reason(Step.WATCH_LIST, Action.FLAG, "a watch-list word", "self-harm", "", Severity.HIGH)
        )
    return Verdict(Action.BLOCK, "kids", tuple(reasons), Severity.HIGH, log=LogDetail.EVENT)


def random_names(domain: str, n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [f"{''.join(rng.choices(string.ascii_lowercase + string.digits, k=8))}.{domain}" for _ in range(n)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[EventLog, Path]]:
    path = tmp_path / "events.sqlite"
    log = EventLog(path, ZoneInfo("UTC"))
    yield log, path
    log.close()


def written(log: EventLog, path: Path) -> tuple[list[tuple[str, str, int]], int]:
    """(subject, host, notable) of every event kept, oldest first; and the day's counted blocks."""
    log.hand_over()
    log.flush()
    with sqlite3.connect(path) as db:
        events = db.execute("SELECT subject, host, notable FROM event_log ORDER BY ts, id").fetchall()
        (counted,) = db.execute(
            "SELECT coalesce(sum(count), 0) FROM daily_counts WHERE action = 'block' AND category = 'adult'"
        ).fetchone()
    return events, int(counted)


# ---- which blocks are names under a blocked domain ----


@pytest.mark.parametrize(
    ("host", "verdict", "under"),
    [
        pytest.param("a1.pornhub.com", block("pornhub.com"), "pornhub.com", id="a-domain-list-parent"),
        pytest.param(
            "x.y.tracker.example", block("||tracker.example^"), "tracker.example", id="adblock-parent"
        ),
        pytest.param("A1.PornHub.com.", block("pornhub.com"), "pornhub.com", id="case-and-final-dot"),
        pytest.param("pornhub.com", block("pornhub.com"), "", id="the-listed-name-itself"),
        pytest.param("notpornhub.com", block("pornhub.com"), "", id="not-a-parent-only-a-suffix"),
        pytest.param("www.example.org", block("example.org/ads"), "", id="a-url-prefix-rule"),
        pytest.param("a.porn.example", block(r"porn\.example"), "", id="an-expression"),
        pytest.param("a1.pornhub.com", block("pornhub.com", flag=True), "", id="flagged-staff-see-each"),
        pytest.param(
            "a1.pornhub.com",
            Verdict(Action.ALLOW, "kids", (), log=LogDetail.EVENT),
            "",
            id="allowed",
        ),
        pytest.param(
            "a1.pornhub.com",
            Verdict(Action.BLOCK, "kids", (*block("a1.pornhub.com").reasons, *block("pornhub.com").reasons)),
            "",
            id="listed-by-name-and-by-parent",
        ),
        pytest.param(
            "a1.pornhub.com", block("pornhub.com", step=Step.OVERRIDE), "pornhub.com", id="own-entry"
        ),
    ],
)
def test_a_block_is_of_a_name_under_a_blocked_domain_when_its_rule_is_a_parent(host, verdict, under):
    assert blocked_under(host, verdict) == under
    assert Answer.of("dns", host, "A", verdict).under == under


# ---- putting them together ----


def test_fifty_random_names_under_a_blocked_domain_from_one_device_are_one_event_and_49_counted(store):
    log, path = store
    for i, name in enumerate(random_names("pornhub.com", 50)):
        log.add(NOW + i, TABLET, Answer.of("dns", name, "A", block("pornhub.com")), 0.001)
    events, counted = written(log, path)
    assert events == [("child:c1", random_names("pornhub.com", 1)[0], 1)]
    assert counted == 49
    assert log.aggregated == 49
    with sqlite3.connect(path) as db:  # the 49 leave no answer rows behind either
        assert db.execute("SELECT count(*) FROM answers").fetchone() == (1,)


def test_two_devices_each_get_their_event(store):
    log, path = store
    for i, name in enumerate(random_names("pornhub.com", 50)):
        log.add(NOW + i, (TABLET, LAPTOP)[i % 2], Answer.of("dns", name, "A", block("pornhub.com")), 0.001)
    events, counted = written(log, path)
    assert [subject for subject, _, _ in events] == ["child:c1", "child:c2"]
    assert counted == 48


def test_names_under_two_blocked_domains_are_two_events(store):
    log, path = store
    names = random_names("pornhub.com", 25) + random_names("xvideos.com", 25, seed=2)
    for i, name in enumerate(names):
        rule = "pornhub.com" if name.endswith("pornhub.com") else "xvideos.com"
        log.add(NOW + i, TABLET, Answer.of("dns", name, "A", block(rule)), 0.001)
    events, counted = written(log, path)
    assert [host.split(".", 1)[1] for _, host, _ in events] == ["pornhub.com", "xvideos.com"]
    assert counted == 48


def test_an_exact_blocked_name_repeated_is_an_event_each_time(store):
    """Unchanged: the same blocked name asked again and again is one answer, kept as an attempt each time
    (of one visit: docs/store.md#visits; the kept name of a window is too; other names under its domain
    are counted)."""
    log, path = store
    listed = Answer.of("dns", "www.pornhub.com", "A", block("www.pornhub.com"))
    kept = Answer.of("dns", "a1.pornhub.com", "A", block("pornhub.com"))
    other = Answer.of("dns", "b2.pornhub.com", "A", block("pornhub.com"))
    for i in range(5):
        log.add(NOW + i, TABLET, listed, 0.001)
        log.add(NOW + i, TABLET, kept, 0.001)
        log.add(NOW + i, TABLET, other, 0.001)
    events, counted = written(log, path)
    hosts = [host for _, host, _ in events]
    assert hosts == ["www.pornhub.com", "a1.pornhub.com"]  # a visit each,
    with sqlite3.connect(path) as db:  # of five attempts each
        assert db.execute("SELECT attempts FROM event_log ORDER BY ts, id").fetchall() == [(5,), (5,)]
    assert counted == 5


def test_after_the_window_the_next_name_is_an_event_again(tmp_path: Path):
    path = tmp_path / "events.sqlite"
    log = EventLog(path, ZoneInfo("UTC"), StoreSettings(aggregate_minutes=2))
    try:
        names = random_names("pornhub.com", 4)
        for ts, name in zip((NOW, NOW + 60, NOW + 121, NOW + 150), names, strict=True):
            log.add(ts, TABLET, Answer.of("dns", name, "A", block("pornhub.com")), 0.001)
        events, counted = written(log, path)
    finally:
        log.close()
    assert [host for _, host, _ in events] == [names[0], names[2]]
    assert counted == 2


def test_flagged_blocks_are_never_put_together(store):
    log, path = store
    for i, name in enumerate(random_names("pornhub.com", 10)):
        log.add(NOW + i, TABLET, Answer.of("dns", name, "A", block("pornhub.com", flag=True)), 0.001)
    events, counted = written(log, path)
    assert len(events) == 10 and counted == 0


def test_web_requests_go_through_the_same_window_as_dns(store):
    """The proxy's requests (`add_request`) and the DNS filter's answers share the one place that puts
    names together: random subdomains over TLS are one request row, the rest counted."""
    log, path = store
    for i, name in enumerate(random_names("tracker.example", 30)):
        what = Answer.of("tls", name, "tls", block("||tracker.example^"))
        log.add_request(NOW + i, TABLET, what, 0.001, "CONNECT", f"https://{name}/", 403, 0)
    log.hand_over()
    log.flush()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*), sum(notable) FROM requests").fetchone() == (1, 1)
        assert db.execute(
            "SELECT channel, action, count FROM daily_counts WHERE category = 'adult'"
        ).fetchall() == [("tls", "block", 29)]


def test_a_counted_name_asked_again_later_by_the_fast_path_is_written_whole(store):
    """The DNS filter's fast path names an answer by its key without going through `add`: a name that
    was only counted gets its answer row the first time an event names it."""
    log, path = store
    names = random_names("pornhub.com", 2)
    first, second = (Answer.of("dns", name, "A", block("pornhub.com")) for name in names)
    log.add(NOW, TABLET, first, 0.001)
    log.add(NOW + 1, TABLET, second, 0.001)  # counted
    assert written(log, path) == ([("child:c1", names[0], 1)], 1)
    # As `_drain` does for a remembered answer: the arrays, directly.
    log.ts.append(NOW + 2)
    log.who.append(TABLET.key)
    log.what.append(second.key)
    log.took.append(0.001)
    events, counted = written(log, path)
    assert events == [("child:c1", names[0], 1), ("child:c1", names[1], 1)]
    assert counted == 1
