"""The event log's values are the one description of the `askers` and `answers` rows: their fields are
the tables' columns, a row written by the writer reads back as the value it was made from, and an
answer keeps its verdict's reasons as the log always has (without their grid)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.events.values import ANSWER_COLUMNS, ASKER_COLUMNS, Answer, Asker
from appliance.events.writer import StoreWriter
from appliance.store.schema import connect
from profiles.categories import Severity
from profiles.identity import Child, Identity, Via
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict

NOW = 1_790_000_000.0
BLOCKED_AND_FLAGGED = Verdict(
    Action.BLOCK,
    "10-12",
    (
        Reason(
            Step.CATEGORY,
            Action.BLOCK,
            "domain listed under Adult",
            "adult",
            "content / sexual",
            Severity.HIGH,
            "ut1-adult",
            4,
            "pornhub.com",
        ),
        Reason(Step.WATCH_LIST, Action.FLAG, "a watch-list word", "self-harm", "", Severity.CRITICAL),
    ),
    Severity.CRITICAL,
    log=LogDetail.EVENT,
)


def columns(db: sqlite3.Connection, table: str) -> tuple[str, ...]:
    return tuple(row[1] for row in db.execute(f"PRAGMA table_info({table})"))


def test_the_values_fields_are_the_tables_columns_but_the_id_and_notable(tmp_path: Path) -> None:
    db = connect(tmp_path / "events.sqlite")
    assert columns(db, "askers") == ("id", *ASKER_COLUMNS)
    assert columns(db, "answers") == ("id", *ANSWER_COLUMNS, "notable")
    assert ASKER_COLUMNS == ("client", "subject", "via")
    assert ANSWER_COLUMNS == (
        "channel",
        "profile",
        "host",
        "detail",
        "action",
        "severity",
        "category",
        "flagged",
        "reasons",
    )


def test_a_written_asker_and_answer_read_back_as_the_values(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    asker = Asker.of("10.0.0.9", Identity("10-12", Via.SESSION, child=Child("amira", "x", "10-12")))
    answer = Answer.of("dns", "www.pornhub.com", "A", BLOCKED_AND_FLAGGED)
    writer = StoreWriter(path, ZoneInfo("UTC"))
    writer.write(
        [(asker.key, asker), (answer.key, answer)], ([NOW], [asker.key], [answer.key], [0.001]), [], NOW
    )
    writer.close()
    with sqlite3.connect(path) as db:
        (asker_row,) = db.execute(f"SELECT {', '.join(ASKER_COLUMNS)} FROM askers").fetchall()
        (answer_row,) = db.execute(f"SELECT {', '.join(ANSWER_COLUMNS)}, notable FROM answers").fetchall()
    assert Asker(*asker_row) == asker == Asker("10.0.0.9", "child:amira", "session")
    assert Answer(*answer_row[:-1], keep=LogDetail.EVENT) == answer
    assert answer_row == (
        "dns",
        "10-12",
        "www.pornhub.com",
        "A",
        "block",
        "critical",
        "adult",
        1,
        answer.reasons,
        1,
    )


def test_an_answer_keeps_its_verdicts_reasons_without_their_grid_as_before() -> None:
    answer = Answer.of("dns", "www.pornhub.com", "A", BLOCKED_AND_FLAGGED)
    assert answer.reasons == (
        '[{"step": "category", "effect": "block", "detail": "domain listed under Adult", '
        '"category": "adult", "severity": "high", "source": "ut1-adult", "line": 4, "rule": "pornhub.com"}, '
        '{"step": "watch-list", "effect": "flag", "detail": "a watch-list word", "category": "self-harm", '
        '"severity": "critical", "source": "", "line": 0, "rule": ""}]'
    )
    assert json.loads(answer.reasons)[0]["category"] == "adult"
