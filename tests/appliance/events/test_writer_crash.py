"""Writers killed with SIGKILL mid-batch: two writer processes on one file (as the DNS filter's and a proxy
worker's), fed batches continuously, killed at random moments several times (and started again by their
EventLog); then the store opens, passes PRAGMA integrity_check, every event names an asker and an answer
that exist, every batch is whole or absent, and every batch flushed before a kill is there."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.events import recording
from appliance.events.recording import EventLog
from appliance.events.values import Answer, Asker
from appliance.events.writer import VISIT_GAP_S
from appliance.store.schema import connect
from profiles.categories import Severity
from profiles.identity import Child, Identity, Via
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict
from tests.conftest import assert_store_whole

BATCH = 1_500  # events per batch: a few tens of milliseconds of writing, so that kills land inside one
REQUESTS = 20  # web requests per batch
RUN_S = 8.0
KILLS = 6
STEP = VISIT_GAP_S + 100  # seconds between batches


def things(rng: random.Random, n: int) -> tuple[list[Asker], list[Answer]]:
    askers = [
        Asker.of(f"10.0.0.{i}", Identity("10-12", Via.SESSION, child=Child(f"c{i}", "x", "10-12")))
        for i in range(n)
    ]
    answers = []
    for i in range(n * 3):
        action = rng.choice((Action.BLOCK, Action.ALLOW))
        reason = Reason(Step.CATEGORY, action, "category adult", "adult", "", Severity.HIGH)
        verdict = Verdict(action, "10-12", (reason,), Severity.HIGH, log=LogDetail.EVENT)
        answers.append(Answer.of(rng.choice(("dns", "http")), f"host-{i}.example", "A", verdict))
    return askers, answers


def test_writers_killed_mid_batch_leave_a_whole_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recording, "RESTART_S", 0.2)  # start the killed writer again soon: more kills
    path = tmp_path / "events.sqlite"
    rng = random.Random(11)
    logs = [EventLog(path, ZoneInfo("UTC")), EventLog(path, ZoneInfo("UTC"))]
    base = float(int(time.time()))
    batch_no = 0
    pending: list[list[int]] = [[], []]  # per log: batches handed over since its last flush returned
    flushed: list[int] = []  # batches a flush confirmed written
    kills = 0
    killed = [-1, -1]  # per log: its `restarts` when its writer was last killed
    sizes: dict[int, tuple[int, int]] = {}  # batch -> (events, requests) handed over
    try:
        made = [things(rng, 20) for _ in logs]
        deadline = time.monotonic() + RUN_S
        while time.monotonic() < deadline or kills < KILLS:
            if time.monotonic() > deadline + 10:
                break
            i = rng.randrange(2)
            log, (askers, answers) = logs[i], made[i]
            batch_no += 1
            # Every row of a batch has its time: the batch is found by it. The batches are further apart
            # than a visit's gap, so each batch's attempts are visits of its own (docs/store.md#visits).
            ts = base + batch_no * STEP
            events = requests = 0
            for _ in range(BATCH):
                asker, answer = rng.choice(askers), rng.choice(answers)
                if answer.channel == "http" and requests < REQUESTS:
                    log.add_request(ts, asker, answer, 0.01, "GET", "http://x/", 200, 10)
                    requests += 1
                elif answer.channel == "dns":
                    log.add(ts, asker, answer, 0.001)
                    events += 1
            sizes[batch_no] = (events, requests)
            restarts = log.restarts
            log.hand_over()
            if log.restarts != restarts:  # a new writer: what waited for the dead one is lost
                pending[i] = []
            pending[i].append(batch_no)
            roll = rng.random()
            if roll < 0.15:
                try:
                    log.flush(timeout=20)
                except (EOFError, OSError):  # the writer was killed: its pending batches may be lost
                    pending[i] = []
                else:
                    flushed.extend(pending[i])
                    pending[i] = []
            elif roll < 0.25 and log.restarts > killed[i]:  # its writer is a new one, not yet killed
                time.sleep(rng.random() * 0.05)  # into the writing of the batches handed over
                os.kill(log.pid, signal.SIGKILL)
                killed[i] = log.restarts
                kills += 1
            time.sleep(rng.random() * 0.02)
        assert kills >= KILLS
        assert sum(log.restarts for log in logs) >= 2
        for i, log in enumerate(logs):
            restarts = log.restarts
            log.hand_over()
            if log.restarts != restarts:  # the last writer killed was replaced only now: its batches went
                pending[i] = []
            try:
                log.flush(timeout=20)
            except (EOFError, OSError):
                continue
            flushed.extend(pending[i])
    finally:
        for log in logs:
            log.close()

    assert_store_whole(path)
    db = connect(path)
    try:
        for table in ("events", "requests"):
            missing = db.execute(
                f"SELECT count(*) FROM {table} t LEFT JOIN askers a ON a.id = t.asker"
                " LEFT JOIN answers w ON w.id = t.answer WHERE a.id IS NULL OR w.id IS NULL"
            ).fetchone()
            assert missing == (0,), table
        found: Counter[int] = Counter()
        web: Counter[int] = Counter()
        for ts, n in db.execute("SELECT ts, sum(attempts) FROM events GROUP BY ts"):
            found[round((ts - base) / STEP)] = n
        for ts, n in db.execute("SELECT ts, sum(attempts) FROM requests GROUP BY ts"):
            web[round((ts - base) / STEP)] = n
        # A batch is one transaction: all of it or none.
        for batch in set(found) | set(web):
            assert (found[batch], web[batch]) == sizes[batch], batch
        lost = [batch for batch in flushed if batch not in found and batch not in web]
        assert not lost, f"flushed batches lost: {lost}"
        assert len(flushed) > 10
    finally:
        db.close()
