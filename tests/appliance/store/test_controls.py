"""Staff's controls in the store (appliance/store/controls.py, schema version 9), on a real SQLite file:
pauses, grants, asks to use a site, budgets, extra time, active minutes, and the values the services
get from them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from appliance.store import audit, controls, people
from appliance.store.controls import AskRecord, GrantRecord, PauseRecord
from appliance.store.schema import connect
from profiles.controls import Budget, Left, Scope, Usage

T = 1_800_000_000.0  # 2027-01-15 08:00 UTC
LONDON = ZoneInfo("Europe/London")
MAC = "dc:a6:32:01:02:03"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(tmp_path / "store.sqlite")
    yield connection
    connection.close()


def _audit(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
    return [(e.username, e.action, e.subject) for e in reversed(audit.entries(db))]


def _pause(db: sqlite3.Connection, **kw: Any) -> int:
    args: dict[str, Any] = dict(
        scope=Scope.DEVICE, target=MAC, label="Room 1 PC 1", minutes=15, by="sam", reason="", now=T
    )
    return controls.pause(db, **{**args, **kw})


def _grant(db: sqlite3.Connection, **kw: Any) -> int:
    args: dict[str, Any] = dict(
        child="amira",
        device=None,
        label="Amira",
        host="scratch.mit.edu",
        category=None,
        until=T + 1800,
        by="sam",
        reason="coding club",
        now=T,
    )
    return controls.grant(db, **{**args, **kw})


def _ask(db: sqlite3.Connection, **kw: Any) -> int:
    args: dict[str, Any] = dict(
        subject="child:amira",
        child="amira",
        device=MAC,
        client="192.168.50.20",
        label="Amira",
        host="scratch.mit.edu",
        category="games",
        profile="10-12",
        note="for my homework",
        now=T,
    )
    return controls.ask(db, **{**args, **kw})


# --- pauses ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "target", "label", "minutes", "active_at", "over_at"),
    [
        (Scope.DEVICE, MAC, "Room 1 PC 1", 15, T + 899, T + 900),
        (Scope.CHILD, "amira", "Amira", 30, T + 1799, T + 1800),
        (Scope.PROFILE, "10-12", "10-12", 60, T + 3599, T + 3600),
        (Scope.CENTRE, "", "the whole centre", None, T + 86_400 * 30, None),  # until resumed
    ],
)
def test_a_pause_covers_its_scope_from_now_until_its_minutes_are_over(
    db: sqlite3.Connection,
    scope: Scope,
    target: str,
    label: str,
    minutes: int | None,
    active_at: float,
    over_at: float | None,
) -> None:
    pause_id = _pause(db, scope=scope, target=target, label=label, minutes=minutes)
    until = None if minutes is None else T + minutes * 60
    expected = PauseRecord(pause_id, scope, target, label, T, until, "sam", "")
    assert controls.active_pauses(db, T) == [expected]
    assert controls.active_pauses(db, active_at) == [expected]
    assert controls.active_pauses(db, T - 1) == []
    if over_at is not None:
        assert controls.active_pauses(db, over_at) == []
    subject = "centre" if scope is Scope.CENTRE else f"{scope}:{target}"
    assert _audit(db) == [("sam", "pause", subject)]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (dict(minutes=0), "at least a minute"),
        (dict(minutes=-5), "at least a minute"),
        (dict(scope=Scope.CENTRE, target="amira"), "whole centre has no target"),
        (dict(scope=Scope.CHILD, target=""), "must name the child"),
        (dict(scope="room"), "'room' is not a valid Scope"),
    ],
)
def test_a_pause_staff_could_not_mean_is_refused_in_words(
    db: sqlite3.Connection, change: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        _pause(db, **change)
    assert db.execute("SELECT count(*) FROM pauses").fetchone() == (0,)
    assert controls.controls_version(db) == 0 and _audit(db) == []


def test_resuming_early_ends_a_pause_at_once_and_only_once(db: sqlite3.Connection) -> None:
    first = _pause(db, minutes=None)
    second = _pause(db, scope=Scope.CHILD, target="amira", label="Amira", minutes=15)
    assert controls.resume(db, first, by="lee", now=T + 60) is True
    assert [p.id for p in controls.active_pauses(db, T + 61)] == [second]
    assert controls.resume(db, first, by="lee", now=T + 70) is False  # already over
    assert controls.resume(db, second, by="lee", now=T + 900) is False  # over by itself
    assert controls.resume(db, 99, by="lee", now=T) is False  # none such
    assert db.execute("SELECT ended, ended_by FROM pauses WHERE id = ?", (first,)).fetchone() == (
        T + 60,
        "lee",
    )
    assert _audit(db)[-1] == ("lee", "resume", f"device:{MAC}")


# --- grants ---------------------------------------------------------------------------------------------


def test_a_grant_ends_exactly_at_its_until(db: sqlite3.Connection) -> None:
    grant_id = _grant(db, until=T + 1800)
    assert [g.id for g in controls.active_grants(db, T)] == [grant_id]
    assert [g.id for g in controls.active_grants(db, T + 1799.999)] == [grant_id]
    assert controls.active_grants(db, T + 1800) == []
    assert controls.active_grants(db, T - 0.001) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (dict(device=MAC), "exactly one of them"),  # child and device
        (dict(child=None), "exactly one of them"),  # neither
        (dict(child=""), "one child or one device"),
        (dict(category="games"), "one site or one category"),  # host and category
        (dict(host=None), "one site or one category"),  # neither
        (dict(reason=""), "needs a reason"),
        (dict(reason="   "), "needs a reason"),
        (dict(until=T), "end in the future"),
        (dict(until=T - 60), "end in the future"),
    ],
)
def test_a_grant_staff_could_not_mean_is_refused_in_words(
    db: sqlite3.Connection, change: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        _grant(db, **change)
    assert db.execute("SELECT count(*) FROM grants").fetchone() == (0,)
    assert controls.controls_version(db) == 0 and _audit(db) == []


def test_a_grant_for_a_device_or_a_category_is_kept_as_given(db: sqlite3.Connection) -> None:
    by_device = _grant(db, child=None, device=MAC, label="Room 1 PC 1", host=None, category="games")
    site = _grant(db, host="Scratch.MIT.edu.")  # written as the lists write names
    assert controls.active_grants(db, T) == [
        GrantRecord(by_device, None, MAC, "Room 1 PC 1", None, "games", T, T + 1800, "sam", "coding club"),
        GrantRecord(site, "amira", None, "Amira", "scratch.mit.edu", None, T, T + 1800, "sam", "coding club"),
    ]


def test_ending_a_grant_early_stops_it_and_is_kept_for_the_review(db: sqlite3.Connection) -> None:
    grant_id = _grant(db)
    assert controls.end_grant(db, grant_id, by="lee", now=T + 600) is True
    assert controls.active_grants(db, T + 601) == []
    assert controls.end_grant(db, grant_id, by="lee", now=T + 700) is False
    (kept,) = controls.grants_between(db, T, T + 1)
    assert (kept.ended, kept.ended_by) == (T + 600, "lee")
    assert _audit(db) == [("sam", "grant", "child:amira"), ("lee", "end-grant", "child:amira")]


def test_the_yearly_review_reads_the_grants_given_in_its_period(db: sqlite3.Connection) -> None:
    year = 365 * 86_400.0
    before = _grant(db, now=T - 10, until=T + 100)
    first = _grant(db, now=T, until=T + 100)
    last = _grant(db, now=T + year - 1, until=T + year + 100, reason="exam revision")
    _grant(db, now=T + year, until=T + year + 100)
    review = controls.grants_between(db, T, T + year)
    assert [g.id for g in review] == [first, last]
    assert review[1].reason == "exam revision" and review[1].by == "sam"
    assert before not in [g.id for g in review]


# --- asks -----------------------------------------------------------------------------------------------


def test_asking_again_for_the_same_site_within_ten_minutes_is_the_same_ask(db: sqlite3.Connection) -> None:
    first = _ask(db)
    assert _ask(db, now=T + 599, note="please") == first
    assert _ask(db, now=T + 30, host="www.bbc.co.uk") != first  # another site
    assert _ask(db, now=T + 30, subject="child:ben", child="ben") != first  # another child
    later = _ask(db, now=T + 601)
    assert later != first
    asks = controls.pending_asks(db, T + 700)
    assert len(asks) == 4 and asks[0].id == first
    assert asks[0] == AskRecord(
        first,
        T,
        "child:amira",
        "amira",
        MAC,
        "192.168.50.20",
        "Amira",
        "scratch.mit.edu",
        "games",
        "10-12",
        "for my homework",
    )
    amira, ben = ("child:amira", "ask-to-use", "child:amira"), ("child:ben", "ask-to-use", "child:ben")
    assert _audit(db) == [amira, amira, ben, amira]  # the same ask again: nothing written


def test_an_ask_nobody_answers_for_two_hours_expires(db: sqlite3.Connection) -> None:
    old = _ask(db)
    new = _ask(db, now=T + 3600, host="www.bbc.co.uk")
    assert [a.id for a in controls.pending_asks(db, T + 7199)] == [old, new]
    assert [a.id for a in controls.pending_asks(db, T + 7200)] == [new]
    found = controls.get_ask(db, old)
    assert found is not None and found.state == "expired"
    assert (
        controls.answer_ask(db, old, grant_minutes=15, until=None, by="sam", reason="ok", now=T + 7300)
        is None
    )
    assert controls.active_grants(db, T + 7300) == []


def test_an_ask_with_a_note_too_long_or_no_site_is_refused_in_words(db: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="201 characters long; at most 200"):
        _ask(db, note="x" * 201)
    with pytest.raises(ValueError, match="names the site"):
        _ask(db, host=" ")
    _ask(db, note="x" * 200)


@pytest.mark.parametrize(
    ("child", "granted_child", "granted_device"),
    [("amira", "amira", None), (None, None, MAC)],  # signed in: the child; else the device
)
def test_granting_an_ask_allows_its_site_to_its_child_else_its_device(
    db: sqlite3.Connection, child: str | None, granted_child: str | None, granted_device: str | None
) -> None:
    ask_id = _ask(db, child=child, subject="child:amira" if child else "guest")
    version = controls.controls_version(db)
    grant_id = controls.answer_ask(
        db, ask_id, grant_minutes=30, until=None, by="sam", reason="homework", now=T + 60
    )
    assert grant_id is not None
    (made,) = controls.active_grants(db, T + 60)
    assert (made.id, made.child, made.device, made.host, made.category) == (
        grant_id,
        granted_child,
        granted_device,
        "scratch.mit.edu",
        None,
    )
    assert (made.until, made.by, made.reason, made.label) == (T + 60 + 1800, "sam", "homework", "Amira")
    answered = controls.get_ask(db, ask_id)
    assert answered is not None
    assert (answered.state, answered.answered, answered.answered_by, answered.grant_id) == (
        "granted",
        T + 60,
        "sam",
        grant_id,
    )
    assert controls.pending_asks(db, T + 61) == []
    assert controls.controls_version(db) > version
    # Answered once: a second member of staff's click makes no second grant.
    assert (
        controls.answer_ask(db, ask_id, grant_minutes=15, until=None, by="lee", reason="ok", now=T + 70)
        is None
    )
    assert controls.refuse_ask(db, ask_id, by="lee", reason="", now=T + 70) is False
    assert len(controls.grants_between(db, T, T + 100)) == 1


def test_granting_an_ask_until_closing_and_refusing_one(db: sqlite3.Connection) -> None:
    first = _ask(db)
    second = _ask(db, host="www.bbc.co.uk")
    closing = T + 8 * 3600
    grant_id = controls.answer_ask(
        db, first, grant_minutes=None, until=closing, by="sam", reason="club", now=T
    )
    assert grant_id is not None and controls.active_grants(db, closing - 1)[0].until == closing
    assert controls.refuse_ask(db, second, by="sam", reason="not for school", now=T + 5) is True
    refused = controls.get_ask(db, second)
    assert refused is not None and (refused.state, refused.grant_id) == ("refused", None)
    assert [a for _, a, _ in _audit(db)][-2:] == ["grant", "refuse-ask"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (dict(grant_minutes=15, until=T + 60), "exactly one of them"),
        (dict(grant_minutes=None, until=None), "exactly one of them"),
        (dict(grant_minutes=0), "at least a minute"),
        (dict(reason=""), "needs a reason"),
        (dict(grant_minutes=None, until=T - 1), "end in the future"),
        (dict(ask_id=99), "no ask 99"),
    ],
)
def test_an_answer_staff_could_not_mean_is_refused_and_the_ask_stays_pending(
    db: sqlite3.Connection, change: dict[str, Any], words: str
) -> None:
    ask_id = _ask(db)
    args: dict[str, Any] = dict(ask_id=ask_id, grant_minutes=15, until=None, by="sam", reason="ok", now=T)
    with pytest.raises(ValueError, match=words):
        controls.answer_ask(db, **{**args, **change})
    assert [a.id for a in controls.pending_asks(db, T)] == [ask_id]
    assert db.execute("SELECT count(*) FROM grants").fetchone() == (0,)


# --- budgets, extra time, activity ----------------------------------------------------------------------


def test_a_childs_own_budget_is_set_replaced_and_removed(db: sqlite3.Connection) -> None:
    amira = people.add_child(db, "Amira", "10-12", "4826", T)
    ben = people.add_child(db, "Ben", "10-12", "4827", T)
    controls.set_child_budget(db, amira.id, Budget(minutes=120, categories={"games": 30}), by="lee", now=T)
    controls.set_child_budget(db, ben.id, Budget(), by="lee", now=T)  # no limits, whatever the profile says
    assert controls.child_budgets(db) == {
        amira.id: Budget(minutes=120, categories={"games": 30}),
        ben.id: Budget(),
    }
    controls.set_child_budget(db, amira.id, Budget(categories={"social-networks": 30}), by="lee", now=T + 1)
    controls.set_child_budget(db, ben.id, None, by="lee", now=T + 1)  # back to the profile's
    assert controls.child_budgets(db) == {amira.id: Budget(categories={"social-networks": 30})}
    assert [a for _, a, _ in _audit(db)] == ["set-budget"] * 4
    with pytest.raises(ValueError, match="no child 'nobody'"):
        controls.set_child_budget(db, "nobody", Budget(minutes=60), by="lee", now=T)
    with pytest.raises(ValueError, match="games minutes must be a whole number, 0 or more"):
        controls.set_child_budget(db, amira.id, Budget(categories={"games": -1}), by="lee", now=T)


def test_usage_and_extra_time_are_counted_per_child_for_one_day(db: sqlite3.Connection) -> None:
    minute = int(T // 60)
    controls.record_activity(
        db,
        [("2027-01-15", "amira", "", minute + i) for i in range(3)]
        + [("2027-01-15", "amira", "games", minute + 1), ("2027-01-15", "ben", "games", minute)]
        + [("2027-01-14", "amira", "", minute - 1440)],  # yesterday: another day
    )
    assert controls.usage(db, "2027-01-15") == {
        "amira": Usage(internet=3, categories={"games": 1}),
        "ben": Usage(internet=0, categories={"games": 1}),
    }
    assert controls.usage(db, "2027-01-16") == {}
    for category, minutes in (("", 10), ("games", 5), ("games", 10)):
        controls.add_time(
            db,
            child="amira",
            category=category,
            minutes=minutes,
            by="sam",
            reason="",
            now=T,
            day="2027-01-15",
        )
    controls.add_time(db, child="ben", category="", minutes=15, by="sam", reason="", now=T, day="2027-01-16")
    assert controls.extra(db, "2027-01-15") == {"amira": {"": 10, "games": 15}}
    assert [a for _, a, _ in _audit(db)] == ["add-time"] * 4


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (dict(minutes=0), "at least a minute"),
        (dict(minutes=-10), "at least a minute"),
        (dict(day="15/01/2027"), "YYYY-MM-DD"),
    ],
)
def test_extra_time_staff_could_not_mean_is_refused_in_words(
    db: sqlite3.Connection, change: dict[str, Any], words: str
) -> None:
    args: dict[str, Any] = dict(
        child="amira", category="", minutes=10, by="sam", reason="", now=T, day="2027-01-15"
    )
    with pytest.raises(ValueError, match=words):
        controls.add_time(db, **{**args, **change})
    assert controls.extra(db, "2027-01-15") == {}


def test_a_minute_the_dns_filter_and_the_proxy_both_record_is_one_row_and_one_bump(tmp_path: Path) -> None:
    """The DNS filter's and a proxy worker's writers (two connections to one file) record the same minute
    of Amira's: one row; the counter moves only for what is new."""
    path = tmp_path / "store.sqlite"
    dns, proxy = connect(path), connect(path)
    minute = int(T // 60)
    row = ("2027-01-15", "amira", "", minute)
    assert controls.record_activity(dns, [row, ("2027-01-15", "amira", "games", minute)]) == 2
    version = controls.controls_version(dns)
    assert controls.record_activity(proxy, [row]) == 0
    assert controls.controls_version(proxy) == version  # nothing new: nothing for the services to reload
    assert controls.record_activity(proxy, [row, ("2027-01-15", "amira", "", minute + 1)]) == 1
    assert controls.controls_version(dns) == version + 1
    assert controls.record_activity(dns, []) == 0
    assert controls.usage(dns, "2027-01-15") == {"amira": Usage(internet=2, categories={"games": 1})}
    dns.close()
    proxy.close()


def test_activity_recorded_inside_a_writers_transaction_goes_with_it(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")
    controls.record_activity(db, [("2027-01-15", "amira", "", 1)])
    db.execute("ROLLBACK")  # the batch refused: its minutes with it
    assert controls.usage(db, "2027-01-15") == {} and controls.controls_version(db) == 0


# --- audit and the counter ------------------------------------------------------------------------------

CHANGES: list[tuple[str, Callable[[sqlite3.Connection], object]]] = [
    ("pause", lambda db: _pause(db)),
    ("resume", lambda db: controls.resume(db, _pause(db), by="sam", now=T + 1)),
    ("grant", lambda db: _grant(db)),
    ("end-grant", lambda db: controls.end_grant(db, _grant(db), by="sam", now=T + 1)),
    ("ask-to-use", lambda db: _ask(db)),
    ("refuse-ask", lambda db: controls.refuse_ask(db, _ask(db), by="sam", reason="", now=T + 1)),
    (
        "add-time",
        lambda db: controls.add_time(
            db, child="amira", category="", minutes=5, by="sam", reason="", now=T, day="2027-01-15"
        ),
    ),
    (
        "set-budget",
        lambda db: controls.set_child_budget(
            db, people.add_child(db, "Amira", "10-12", "4826", T).id, Budget(minutes=60), by="sam", now=T
        ),
    ),
]


@pytest.mark.parametrize(("action", "change"), CHANGES, ids=[a for a, _ in CHANGES])
def test_every_change_is_audited_by_whom_and_bumps_the_counter(
    db: sqlite3.Connection, action: str, change: Callable[[sqlite3.Connection], object]
) -> None:
    db.execute(
        "INSERT INTO staff (id, username, display_name, role, password, created)"
        " VALUES (7, 'sam', 'Sam', 'staff', 'x', 1)"
    )
    before = controls.controls_version(db)
    change(db)
    assert controls.controls_version(db) > before
    (last,) = db.execute("SELECT staff, username, action FROM audit ORDER BY id DESC LIMIT 1").fetchall()
    assert last == ((None, "child:amira", action) if action == "ask-to-use" else (7, "sam", action))


# --- as values ------------------------------------------------------------------------------------------


def test_records_become_the_values_decide_takes_in_the_centres_zone(db: sqlite3.Connection) -> None:
    summer = 1_790_000_000.0  # 2026-09-21, British Summer Time
    pause_id = _pause(db, now=summer, minutes=None)
    grant_id = _grant(db, now=summer, until=summer + 1800)
    ended = _grant(db, now=summer, until=summer + 3600, host="www.bbc.co.uk")
    controls.end_grant(db, ended, by="lee", now=summer + 60)
    left = Left(internet=30, categories={}, spent=frozenset(), warned=frozenset())
    values = controls.as_controls(
        controls.active_pauses(db, summer),
        controls.grants_between(db, summer, summer + 1),
        {"child:amira": left},
        {"child:amira": frozenset({"games"})},
        LONDON,
    )
    (pause,) = values.pauses
    assert (pause.id, pause.scope, pause.target, pause.until) == (pause_id, Scope.DEVICE, MAC, None)
    assert (
        pause.since == datetime(2026, 9, 21, 15, 13, 20, tzinfo=LONDON)
        and pause.since.utcoffset() is not None
    )
    assert str(pause.since) == "2026-09-21 15:13:20+01:00"
    granted, stopped = values.grants
    assert (granted.id, granted.child, granted.host) == (grant_id, "amira", "scratch.mit.edu")
    assert granted.until == datetime(2026, 9, 21, 15, 43, 20, tzinfo=LONDON)
    assert stopped.until == datetime(2026, 9, 21, 15, 14, 20, tzinfo=LONDON)  # ended early: its end
    assert values.left == {"child:amira": left} and values.counted == {"child:amira": frozenset({"games"})}


def test_the_audit_says_what_was_done_for_how_long_and_why(db: sqlite3.Connection) -> None:
    _pause(db, minutes=15, reason="fighting over the PC")
    _pause(db, scope=Scope.CENTRE, target="", label="the whole centre", minutes=None)
    _grant(db, until=T + 1800)
    details = [e.detail for e in reversed(audit.entries(db))]
    assert details == [
        "pause 1 of Room 1 PC 1 for 15 minutes: fighting over the PC",
        "pause 2 of the whole centre until resumed",
        "grant 1: scratch.mit.edu for Amira for 30 minutes: coding club",
    ]
