"""Children's active minutes (what time budgets count, docs/profiles.md "Time budgets") go from the
answering side's `EventLog.activity` with each batch to the real writer process, which records them in
the batch's transaction under the centre's date of each minute: one row per child, category and minute
however many writers and batches name it; the `controls` counter moves only for a new minute."""

from __future__ import annotations

import sqlite3
import time
from array import array
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.events import recording, writer
from appliance.events.recording import EventLog
from appliance.events.values import Answer, Asker
from appliance.events.writer import Backlog, Batch
from appliance.store.controls import controls_version
from appliance.store.schema import connect
from profiles.categories import Severity
from profiles.identity import Child, Identity, Via
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict

# Kiritimati is UTC+14: at noon UTC its date is already the next day's. (Recent: retention keeps 60 days.)
CENTRE = ZoneInfo("Pacific/Kiritimati")
NOON = (int(time.time()) // 86_400 - 1) * 86_400 + 43_200.0  # yesterday, noon UTC
MINUTE = int(NOON // 60)
AMIRA = Asker.of("10.0.0.11", Identity("10-12", Via.SESSION, child=Child("amira", "Amira", "10-12")))


def day(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, CENTRE).date().isoformat()


def allowed(host: str = "www.bbc.co.uk") -> Answer:
    reason = Reason(Step.CATEGORY, Action.ALLOW, "news", "news", "", Severity.NONE)
    return Answer.of(
        "dns", host, "A", Verdict(Action.ALLOW, "10-12", (reason,), Severity.NONE, log=LogDetail.EVENT)
    )


def activity(path: Path) -> list[tuple[str, str, str, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT day, child, category, minute FROM activity ORDER BY 1, 2, 3, 4").fetchall()


def version(path: Path) -> int:
    db = connect(path)
    try:
        return controls_version(db)
    finally:
        db.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "appliance.sqlite"


@pytest.fixture
def dns(path: Path) -> Iterator[EventLog]:
    log = EventLog(path, CENTRE)
    yield log
    log.close()


def test_a_batchs_active_minutes_are_recorded_for_the_centres_date(path: Path, dns: EventLog) -> None:
    assert day(MINUTE) != datetime.fromtimestamp(NOON, UTC).date().isoformat()  # the zone matters here
    dns.add(NOON, AMIRA, allowed(), 0.001)
    dns.activity |= {("amira", "", MINUTE), ("amira", "games", MINUTE), ("amira", "", MINUTE + 1)}
    dns.hand_over()
    dns.flush()
    assert activity(path) == [
        (day(MINUTE), "amira", "", MINUTE),
        (day(MINUTE), "amira", "", MINUTE + 1),
        (day(MINUTE), "amira", "games", MINUTE),
    ]
    with sqlite3.connect(path) as db:  # in the same batch as the events
        assert db.execute("SELECT count(*) FROM events").fetchone() == (1,)
    assert version(path) == 1


def test_a_minute_named_by_every_batch_and_by_both_writers_is_one_row_and_one_bump(
    path: Path, dns: EventLog
) -> None:
    """The DNS filter and a proxy worker both see Amira's tablet in the same minute, four batches a
    second each."""
    proxy = EventLog(path, CENTRE)
    try:
        for _ in range(3):
            dns.activity.add(("amira", "", MINUTE))
            dns.hand_over()
            dns.flush()
        after_dns = version(path)
        for _ in range(3):
            proxy.activity.add(("amira", "", MINUTE))
            proxy.hand_over()
            proxy.flush()
        assert activity(path) == [(day(MINUTE), "amira", "", MINUTE)]
        assert version(path) == after_dns == 1  # nothing new: the services reload nothing
        proxy.activity.add(("amira", "", MINUTE + 1))
        proxy.hand_over()
        proxy.flush()
        assert version(path) == 2
    finally:
        proxy.close()


def test_a_batch_without_activity_records_nothing_and_moves_no_counter(path: Path, dns: EventLog) -> None:
    dns.add(NOON, AMIRA, allowed(), 0.001)
    dns.hand_over()
    dns.flush()
    assert activity(path) == [] and version(path) == 0


def test_a_batch_only_of_activity_is_handed_over(path: Path, dns: EventLog) -> None:
    """A child on a site the answering processes remember (no new events to send) still uses minutes."""
    dns.activity.add(("amira", "", MINUTE))
    dns.hand_over()
    dns.flush()
    assert activity(path) == [(day(MINUTE), "amira", "", MINUTE)]


def test_a_batch_the_writer_fell_behind_on_keeps_its_minutes_for_the_next(
    path: Path, dns: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recording, "MAX_WAITING_BATCHES", 0)  # every batch dropped: the writer "behind"
    dns.add(NOON, AMIRA, allowed(), 0.001)
    dns.activity.add(("amira", "", MINUTE))
    dns.hand_over()
    assert dns.dropped_batches == 1
    monkeypatch.setattr(recording, "MAX_WAITING_BATCHES", 200)
    dns.activity.add(("amira", "", MINUTE + 1))
    dns.hand_over()
    dns.flush()
    assert activity(path) == [(day(MINUTE), "amira", "", MINUTE), (day(MINUTE), "amira", "", MINUTE + 1)]
    with sqlite3.connect(path) as db:  # (its event is lost, as before)
        assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)


def _batch(ts: float, what: Answer, minutes: set[tuple[str, str, int]], *, define: bool) -> Batch:
    events = (array("d", [ts]), array("Q", [AMIRA.key]), array("Q", [what.key]), array("f", [0.001]))
    defs: list[tuple[int, Asker | Answer]] = [(AMIRA.key, AMIRA), (what.key, what)] if define else []
    return Batch(defs, events, array("Q"), ts, [], [], set(), minutes)


def test_batches_held_past_the_writers_memory_lose_their_events_but_not_their_minutes(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches waiting for the store (a full disk) past MAX_HELD_BYTES: the oldest one's events go, its
    definitions, sessions seen and active minutes go on with the next."""
    monkeypatch.setattr(writer, "MAX_HELD_BYTES", 1)
    backlog = Backlog(path, CENTRE)
    what = allowed()
    try:
        backlog.add(_batch(NOON, what, {("amira", "", MINUTE)}, define=True))
        backlog.add(_batch(NOON + 60, what, {("amira", "", MINUTE + 1)}, define=False))
        assert len(backlog.held) == 1 and backlog.dropped == 1
        backlog.write(0.0)
        assert not backlog.held
    finally:
        backlog.close()
    assert activity(path) == [(day(MINUTE), "amira", "", MINUTE), (day(MINUTE), "amira", "", MINUTE + 1)]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT ts FROM events").fetchall() == [(NOON + 60,)]
