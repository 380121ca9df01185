"""Incidents in the store: one subject each; events added later, once, raising the severity."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.store import incidents, staff
from appliance.store.feed import FeedEvent
from appliance.store.schema import connect

T = 1_800_000_000.0


@pytest.fixture
def db(tmp_path: Path):
    connection = connect(tmp_path / "store.sqlite")
    staff.add_user(connection, "lead", "Lena", staff.Role.LEAD, "correct horse battery", T)
    yield connection
    connection.close()


def event(number: int, subject: str, severity: str = "medium") -> FeedEvent:
    return FeedEvent(
        id=f"dns:{number}",
        ts=T + number,
        reasons=[],
        client="10.0.0.2",
        subject=subject,
        via="session",
        channel="dns",
        profile="10-12",
        host=f"site{number}.example",
        detail="A",
        action="block",
        severity=severity,
        category="dating",
        flagged=False,
    )


def test_events_of_two_subjects_never_make_one_incident(db):
    with pytest.raises(incidents.MixedSubjects) as refused:
        incidents.open_incident(db, "x", [event(1, "child:amira"), event(2, "device:pc-1")], 1, T, {})
    assert refused.value.subjects == ("child:amira", "device:pc-1")
    assert db.execute("SELECT count(*) FROM incidents").fetchone() == (0,)


def test_events_added_once_each_of_the_incidents_subject_raising_its_severity(db):
    number = incidents.open_incident(db, "x", [event(1, "child:amira")], 1, T, {})
    assert (
        incidents.add_events(db, number, [event(2, "child:amira", "high"), event(1, "child:amira")], 1, T)
        == 1
    )
    assert incidents.add_events(db, number, [event(2, "child:amira", "high")], 1, T) == 0
    with pytest.raises(incidents.MixedSubjects):
        incidents.add_events(db, number, [event(3, "child:ben")], 1, T)
    assert [e["id"] for e in incidents.events_of(db, number)] == ["dns:1", "dns:2"]
    assert incidents.get(db, number).severity == "high"
    assert [i.id for i in incidents.incidents_with(db, "dns:2", T + 2)] == [number]
    assert incidents.incidents_with(db, "dns:2", T + 99) == []  # the same rowid, another event
