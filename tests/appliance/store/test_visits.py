"""One row per visit (docs/store.md#visits): a child's walk replayed through the real event log, a DNS
filter's `EventLog` and a proxy worker's (two writer processes, one SQLite file), as the centre saw it
(a blocked HTTPS site retried by the browser twelve times; a plain HTTP visit: its DNS answer, two TLS
tries, the page and its favicon). Each is found once, with its attempts and first and last times; the
feed and the report count it once; a new visit starts after the gap, for another child, another
device or another verdict; a writer started again finds the visit open in the store."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.events.recording import EventLog
from appliance.events.values import Answer, Asker
from appliance.events.writer import VISIT_GAP_S, VISIT_MAX_S
from appliance.store.feed import FeedFilter, feed
from appliance.store.reports import period_at, summary
from appliance.store.schema import connect
from profiles.categories import Severity
from profiles.identity import Child, Identity, Via
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict

T0 = float(int(time.time())) - 7200  # two hours ago (recent: retention keeps it)
UTC = ZoneInfo("UTC")


def child(child_id: str, address: str = "10.0.0.11") -> Asker:
    return Asker.of(address, Identity("kids", Via.SESSION, child=Child(child_id, "x", "kids")))


AMIRA, BEN = child("amira"), child("ben")
AMIRA_PHONE = child("amira", "10.0.0.12")


def blocked(
    category: str = "adult", *, flag: bool = False, step: Step = Step.CATEGORY, rule: str = "pornhub.com"
) -> Verdict:
    reason = Reason(step, Action.BLOCK, "listed", category, "", Severity.HIGH, "demo-adult", 4, rule)
    reasons = (reason,)
    if flag:
        reasons += (
            Reason(Step.WATCH_LIST, Action.FLAG, "a watch-list word", "self-harm", "", Severity.HIGH),
        )
    return Verdict(Action.BLOCK, "kids", reasons, Severity.HIGH, log=LogDetail.EVENT)


@dataclass
class Centre:
    """The DNS filter's event log and a proxy worker's, on one store."""

    path: Path
    dns: EventLog
    proxy: EventLog

    def ask(self, ts: float, who: Asker, host: str, verdict: Verdict, qtype: str = "A") -> None:
        self.dns.add(ts, who, Answer.of("dns", host, qtype, verdict), 0.001)

    def tls(self, ts: float, who: Asker, host: str, verdict: Verdict) -> None:
        what = Answer.of("tls", host, "", verdict)
        self.proxy.add_request(ts, who, what, 0.01, "CONNECT", host, 0, 0)

    def get(self, ts: float, who: Asker, url: str, verdict: Verdict, terms: str = "") -> None:
        what = Answer.of("http", url.split("/")[2], "GET", verdict)
        self.proxy.add_request(ts, who, what, 0.01, "GET", url, 403, 900, terms)

    def written(self) -> None:
        """Everything handed over and written, the DNS filter's first (it answers before the proxy)."""
        for log in (self.dns, self.proxy):
            log.hand_over()
            log.flush()

    def visits(self) -> list[tuple[str, str, int, float, float]]:
        """(subject, host, attempts, first, last) of every notable row, oldest first."""
        self.written()
        with sqlite3.connect(self.path) as db:
            return db.execute(
                "SELECT subject, host, attempts, ts, last_ts FROM event_log WHERE notable ORDER BY ts, id"
            ).fetchall()


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    path = tmp_path / "appliance.sqlite"
    c = Centre(path, EventLog(path, UTC), EventLog(path, UTC))
    yield c
    c.dns.close()
    c.proxy.close()


def walk(c: Centre) -> None:
    """Amira's walk: a blocked HTTPS site the browser tries twelve times; a blocked plain HTTP site."""
    c.ask(T0, AMIRA, "www.pornhub.com", blocked())
    c.ask(T0, AMIRA, "www.pornhub.com", blocked(), "AAAA")
    c.ask(T0 + 1, AMIRA, "www.pornhub.com", blocked(), "HTTPS")
    c.written()  # the DNS answer is in the store before the browser connects
    for i in range(12):
        c.tls(T0 + 2 + 3 * i, AMIRA, "www.pornhub.com", blocked())
    c.ask(T0 + 100, AMIRA, "bet.example", blocked("gambling"))
    c.written()
    c.tls(T0 + 101, AMIRA, "bet.example", blocked("gambling"))
    c.tls(T0 + 101.5, AMIRA, "bet.example", blocked("gambling"))
    c.get(T0 + 102, AMIRA, "http://bet.example/", blocked("gambling"))
    c.get(T0 + 102.2, AMIRA, "http://bet.example/favicon.ico", blocked("gambling"))


def test_a_walks_traffic_is_one_visit_per_site_with_its_attempts(centre: Centre) -> None:
    walk(centre)
    assert centre.visits() == [
        ("child:amira", "www.pornhub.com", 3 + 12, T0, T0 + 2 + 3 * 11),
        ("child:amira", "bet.example", 1 + 2 + 2, T0 + 100, T0 + 102.2),
    ]


def test_the_feed_shows_one_row_per_visit_and_the_report_counts_visits(centre: Centre) -> None:
    walk(centre)
    centre.written()
    db = connect(centre.path)
    try:
        rows = feed(db, FeedFilter(child="amira"))
        assert [(e.host, e.attempts, e.ts, e.last) for e in rows] == [
            ("bet.example", 5, T0 + 100, T0 + 102.2),
            ("www.pornhub.com", 15, T0, T0 + 35),
        ]
        report = summary(db, period_at(T0, UTC), {"adult": "content", "gambling": "conduct"})
        assert (report.total.events, report.total.blocked) == (2, 2)  # two visits, not 20 attempts
        assert {t.key: t.events for t in report.by_category} == {"adult": 1, "gambling": 1}
    finally:
        db.close()


def test_attempts_go_on_a_visit_while_each_is_within_the_gap_of_the_last(centre: Centre) -> None:
    step = VISIT_GAP_S - 60
    for i in range(5):  # every four minutes for sixteen: one visit
        centre.tls(T0 + i * step, AMIRA, "www.pornhub.com", blocked())
        centre.written()
    centre.tls(T0 + 4 * step + VISIT_GAP_S + 1, AMIRA, "www.pornhub.com", blocked())  # after the gap: new
    assert [(n, first, last) for _, _, n, first, last in centre.visits()] == [
        (5, T0, T0 + 4 * step),
        (1, T0 + 4 * step + VISIT_GAP_S + 1, T0 + 4 * step + VISIT_GAP_S + 1),
    ]


def test_a_visit_is_closed_an_hour_after_its_first_attempt(centre: Centre) -> None:
    times = [T0 + i * 240.0 for i in range(int(VISIT_MAX_S // 240) + 3)]  # every 4 minutes, 68 minutes
    for ts in times:
        centre.tls(ts, AMIRA, "www.pornhub.com", blocked())
    visits = centre.visits()
    assert [n for _, _, n, _, _ in visits] == [16, 2]
    assert visits[1][3] == times[16]


@pytest.mark.parametrize(
    "who, host, verdict, why",
    [
        (BEN, "www.pornhub.com", blocked(), "another child"),
        (AMIRA_PHONE, "www.pornhub.com", blocked(), "another device of the same child"),
        (AMIRA, "pornhub.com", blocked(), "another host"),
        (AMIRA, "www.pornhub.com", blocked("mixed-adult"), "another category"),
        (AMIRA, "www.pornhub.com", blocked(flag=True), "flagged as well"),
        (AMIRA, "www.pornhub.com", blocked(rule="www.pornhub.com"), "another rule"),
        (AMIRA, "www.pornhub.com", blocked(step=Step.BYPASS_ATTEMPT), "another reason"),
    ],
)
def test_a_new_visit_starts_for_another_child_device_host_or_verdict(
    centre: Centre, who: Asker, host: str, verdict: Verdict, why: str
) -> None:
    centre.ask(T0, AMIRA, "www.pornhub.com", blocked())
    centre.tls(T0 + 1, AMIRA, "www.pornhub.com", blocked())
    centre.tls(T0 + 2, who, host, verdict)
    assert [n for _, _, n, _, _ in centre.visits()] == [2, 1], why


def test_each_search_with_terms_is_its_own_event(centre: Centre) -> None:
    """Staff must see every search that matched a watch list: a request with search terms is never
    folded into a visit (nor are later attempts folded into it)."""
    flagged = Verdict(
        Action.ALLOW,
        "kids",
        (Reason(Step.WATCH_LIST, Action.FLAG, "watch list", "self-harm", "", Severity.HIGH),),
        Severity.HIGH,
        log=LogDetail.EVENT,
    )
    for i, terms in enumerate(("how to run away", "run away tonight", "run away tonight")):
        centre.get(T0 + i, AMIRA, f"http://search.example/?q={i}", flagged, terms)
    assert [n for _, _, n, _, _ in centre.visits()] == [1, 1, 1]


def test_a_writer_started_again_finds_the_visit_open_in_the_store(centre: Centre) -> None:
    centre.tls(T0, AMIRA, "www.pornhub.com", blocked())
    centre.written()
    centre.proxy.close()  # the proxy worker restarts: a new writer process, nothing in memory
    centre.proxy = EventLog(centre.path, UTC)
    centre.tls(T0 + 5, AMIRA, "www.pornhub.com", blocked())
    centre.ask(T0 + 6, AMIRA, "www.pornhub.com", blocked())  # and the DNS filter's writer finds it too
    assert centre.visits() == [("child:amira", "www.pornhub.com", 3, T0, T0 + 6)]


def test_no_attempt_is_lost_the_first_is_written_as_before(centre: Centre) -> None:
    """Every attempt handed over is counted: the rows' attempts add up to what the logs wrote."""
    walk(centre)
    centre.written()
    written = centre.dns.flush()[0] + centre.proxy.flush()[0]
    with sqlite3.connect(centre.path) as db:
        (attempts,) = db.execute("SELECT sum(attempts) FROM event_log").fetchone()
    assert attempts == written == 20
