"""A full disk under the event writers (an SD card fills up): the answering side goes on, the writer
keeps its batches (definitions included) in memory, says "disk full" once, and writes them, in order,
when there is room again: every event is there, every event names an asker and an answer that exist,
and the file is whole. A real writer process on a small disk of the test's own (a tmpfs, root only)."""

from __future__ import annotations

import sqlite3
import time
from array import array
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.events import writer
from appliance.events.recording import EventLog
from appliance.events.values import Answer, Asker
from appliance.events.writer import Backlog, Batch
from appliance.store.schema import connect
from profiles.categories import Severity
from profiles.identity import Child, Identity, Via
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict
from tests.conftest import SmallDisk, assert_store_whole

T0 = float(int(time.time()))  # (older events would be purged by retention)


def asker(i: int) -> Asker:
    return Asker.of(f"10.0.0.{i}", Identity("10-12", Via.SESSION, child=Child(f"c{i}", "x", "10-12")))


def answer(i: int) -> Answer:
    reason = Reason(Step.CATEGORY, Action.BLOCK, "category adult", "adult", "", Severity.HIGH, "demo", i)
    verdict = Verdict(Action.BLOCK, "10-12", (reason,), Severity.HIGH, log=LogDetail.EVENT)
    return Answer.of("dns", f"host-{i}.example", "A", verdict)


def attempts(path: Path) -> list[int]:
    """The attempts of each visit kept, oldest first."""
    with sqlite3.connect(path) as db:
        return [n for (n,) in db.execute("SELECT attempts FROM event_log ORDER BY ts")]


def stored(path: Path) -> list[tuple[float, str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT ts, subject, host FROM event_log ORDER BY ts").fetchall()


def test_batches_refused_by_a_full_disk_are_kept_and_written_when_there_is_room(
    small_disk: SmallDisk, capfd: pytest.CaptureFixture[str]
):
    path = small_disk.path / "appliance.sqlite"
    log = EventLog(path, ZoneInfo("UTC"))
    things = [(asker(i), answer(i)) for i in range(30)]
    try:
        for i in range(5):  # before: written at once
            log.add(T0 + i, *things[i], 0.001)
        log.hand_over()
        assert log.flush()[0] == 5

        small_disk.fill()
        for i in range(5, 25):  # while full: new askers and answers, defined only in these batches
            log.add(T0 + i, *things[i], 0.001)
            log.hand_over()
        log.flush()
        assert len(stored(path)) == 5

        small_disk.free()
        for i in range(5, 30):  # after: the ones defined while full named again (not defined again)
            log.add(T0 + 100 + i, *things[i], 0.001)
        log.hand_over()
        log.flush()
    finally:
        log.close()

    rows = stored(path)
    # Each site's attempts 100 s apart are one visit (docs/store.md#visits): every attempt is counted.
    assert [ts for ts, _, _ in rows] == [T0 + i for i in range(25)] + [T0 + 100 + i for i in range(25, 30)]
    assert attempts(path) == [1] * 5 + [2] * 20 + [1] * 5
    assert {(subject, host) for _, subject, host in rows} == {
        (f"child:c{i}", f"host-{i}.example") for i in range(30)
    }
    assert_store_whole(path)
    err = capfd.readouterr().err
    assert err.count("the disk is full") == 1, err  # once for the whole episode
    # The twenty of the full disk, and the 25 after it that waited behind them until the flush.
    assert "writing again: 45 events kept while it could not were written" in err
    assert "cannot rollback" not in err and "FOREIGN KEY" not in err


def test_a_writer_started_on_a_full_disk_waits_for_room_instead_of_dying(
    small_disk: SmallDisk, capfd: pytest.CaptureFixture[str]
):
    path = small_disk.path / "appliance.sqlite"
    small_disk.fill()  # not even the store's file can be made
    log = EventLog(path, ZoneInfo("UTC"))
    try:
        log.add(T0, asker(1), answer(1), 0.001)
        log.hand_over()
        assert log.flush() == (0, 0)
        assert log.restarts == 0 and log._process.poll() is None
        small_disk.free()
        log.add(T0 + 1, asker(1), answer(1), 0.001)
        log.hand_over()
        assert log.flush()[0] == 2
    finally:
        log.close()
    assert [ts for ts, _, _ in stored(path)] == [T0]  # one visit
    assert attempts(path) == [2]  # of both attempts
    assert "the disk is full" in capfd.readouterr().err


def batch(ts: list[float], who: Asker, what: Answer, *, define: bool) -> Batch:
    """A hand-over naming `who` and `what` (defining them, if `define`) in an event at each of `ts`."""
    n = len(ts)
    events = (array("d", ts), array("Q", [who.key] * n), array("Q", [what.key] * n), array("f", [0.001] * n))
    defs: list[tuple[int, Asker | Answer]] = [(who.key, who), (what.key, what)] if define else []
    return Batch(defs, events, array("Q"), ts[0], [], [], set())


def test_past_its_memory_the_writer_drops_the_oldest_events_but_never_a_definition(
    small_disk: SmallDisk, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(writer, "MAX_HELD_BYTES", 30_000)  # about half of what comes while full
    path = small_disk.path / "appliance.sqlite"
    backlog = Backlog(path, ZoneInfo("UTC"))
    things = [(asker(i), answer(i)) for i in range(40)]
    try:
        backlog.add(batch([T0], *things[0], define=True))
        backlog.write(0.0)
        small_disk.fill()
        for i in range(1, 40):  # each: a new asker and answer, and 20 events naming them
            backlog.add(batch([T0 + i + n / 100 for n in range(20)], *things[i], define=True))
            backlog.write(float(i), now_or_never=True)
        assert 0 < backlog.dropped < 20 * 39
        small_disk.free()
        for i in range(40):  # every one named again after, not defined again
            backlog.add(batch([T0 + 1000 + i], *things[i], define=False))
            backlog.write(100.0 + i)
        assert not backlog.held
    finally:
        backlog.close()
    rows = stored(path)
    assert len([r for r in rows if r[0] >= T0 + 1000]) == 40  # every definition survived
    assert len(rows) == 1 + 20 * 39 + 40 - backlog_dropped(caplog.text)
    db = connect(path)
    try:
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        db.close()
    assert "the oldest are dropped from now on" in caplog.text
    assert "dropped for want of memory" in caplog.text


def backlog_dropped(text: str) -> int:
    import re

    return int(re.search(r", (\d+) dropped for want of memory", text).group(1))  # type: ignore[union-attr]
