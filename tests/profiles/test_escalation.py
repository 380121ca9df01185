"""The rota, the ladder, the retry schedule and the digest's timer, as truth tables. The times are the
centre's wall-clock times (here a centre in UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from profiles.alerts import AlertPolicy, Digest, LadderStep, Shift
from profiles.categories import Severity
from profiles.escalation import (
    digest_due,
    digest_slot,
    due_steps,
    on_duty,
    on_duty_at,
    recipient,
    retry_delay,
)


def at(text: str) -> datetime:
    """A time on the centre's clock, `YYYY-MM-DD HH:MM`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
WEEKDAYS = frozenset({MON, TUE, WED, THU, FRI})


def hm(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


ROTA = (
    Shift("duty", WEEKDAYS, hm("09:00"), hm("18:00")),
    # Friday and Saturday nights: the night worker, past midnight.
    Shift("night", frozenset({FRI, SAT}), hm("22:00"), hm("02:00")),
    Shift("sunday", frozenset({SUN}), 0, 0),  # the whole of Sunday
)


@pytest.mark.parametrize(
    ("weekday", "time", "who"),
    [
        (MON, "09:00", "duty"),  # a shift's first minute is in it
        (MON, "17:59", "duty"),
        (MON, "18:00", "out-of-hours"),  # its end is not
        (MON, "08:59", "out-of-hours"),
        (SAT, "12:00", "out-of-hours"),  # no day shift at weekends
        (FRI, "22:00", "night"),
        (FRI, "23:59", "night"),
        (SAT, "00:00", "night"),  # Friday's night shift runs on past midnight
        (SAT, "01:59", "night"),
        (SAT, "02:00", "out-of-hours"),
        (SUN, "01:00", "night"),  # Saturday's night runs into Sunday: the first shift listed wins
        (SUN, "03:00", "sunday"),
        (MON, "01:00", "out-of-hours"),  # Sunday's whole day does not spill into Monday
        (THU, "23:00", "out-of-hours"),  # no night shift on Thursday
        (FRI, "01:00", "out-of-hours"),  # ... so none on Friday morning either
        (SUN, "23:59", "sunday"),
    ],
)
def test_who_is_on_duty(weekday: int, time: str, who: str) -> None:
    assert on_duty_at(ROTA, "out-of-hours", weekday, hm(time)) == who


def test_without_an_out_of_hours_contact_nobody_is_on_duty_outside_the_rota() -> None:
    assert on_duty_at(ROTA, "", MON, hm("20:00")) == ""


def test_the_first_shift_that_covers_the_time_wins() -> None:
    rota = (Shift("a", WEEKDAYS, hm("09:00"), hm("17:00")), Shift("b", WEEKDAYS, hm("12:00"), hm("20:00")))
    assert [on_duty_at(rota, "", TUE, hm(t)) for t in ("10:00", "13:00", "18:00")] == ["a", "a", "b"]


POLICY = AlertPolicy(
    rota=ROTA,
    out_of_hours="out-of-hours",
    ladder=(
        LadderStep(0, "on-duty"),
        LadderStep(600, "lead"),
        LadderStep(1800, "out-of-hours", min_severity=Severity.CRITICAL),
    ),
)


@pytest.mark.parametrize(
    ("local", "step", "who"),
    [
        (at("2026-12-07 10:00"), 0, "duty"),  # a Monday morning: the rota's
        (at("2026-12-07 20:00"), 0, "out-of-hours"),  # Monday evening
        (at("2026-12-12 00:30"), 0, "night"),  # Saturday, just after midnight
        (at("2026-12-07 10:00"), 1, "lead"),  # a named contact whatever the time
    ],
)
def test_who_a_ladder_step_tells(local: datetime, step: int, who: str) -> None:
    assert on_duty(POLICY, at("2026-12-07 10:00")) == "duty"
    assert recipient(POLICY, POLICY.ladder[step], local) == who


RAISED = 1_000_000.0


@pytest.mark.parametrize(
    ("severity", "after_s", "due"),
    [
        (Severity.CRITICAL, 0, [0]),  # the first step at once
        (Severity.CRITICAL, 599, [0]),
        (Severity.CRITICAL, 600, [0, 1]),  # ten minutes unacknowledged: the lead too
        (Severity.CRITICAL, 1799, [0, 1]),
        (Severity.CRITICAL, 1800, [0, 1, 2]),  # half an hour: out of hours too
        (Severity.HIGH, 0, [0]),
        (Severity.HIGH, 3600, [0, 1]),  # the last step is for critical alerts only
        (Severity.MEDIUM, 3600, []),  # below every step's minimum: the banner and the feed only
    ],
)
def test_which_ladder_steps_are_due(severity: Severity, after_s: float, due: list[int]) -> None:
    assert due_steps(POLICY.ladder, severity, RAISED, RAISED + after_s) == due


@pytest.mark.parametrize(
    ("after_s", "due"),
    [
        (600, [0, 1]),
        (3600, [0, 1, 2]),  # the first step fell due an hour ago: still taken
        (3601, [1, 2]),  # ... and no longer
        (600 + 3601, [2]),
        (1800 + 3601, []),  # every step stale: an old alert is on the dashboard, not pushed
    ],
)
def test_a_step_long_past_is_not_taken(after_s: float, due: list[int]) -> None:
    assert due_steps(POLICY.ladder, Severity.CRITICAL, RAISED, RAISED + after_s, stale_s=3600) == due


def test_no_step_is_due_before_the_alert_was_raised() -> None:
    assert due_steps(POLICY.ladder, Severity.CRITICAL, RAISED, RAISED - 1) == []


@pytest.mark.parametrize(
    ("attempts", "wait_s"),
    [(1, 10), (2, 30), (3, 60), (4, 120), (5, 300), (6, 600), (7, 900), (8, 900), (100, 900)],
)
def test_retries_back_off_to_a_quarter_of_an_hour(attempts: int, wait_s: float) -> None:
    assert retry_delay(attempts) == wait_s


DAILY = Digest("lead", at=hm("08:00"))
WEEKLY = Digest("lead", at=hm("08:00"), weekday=MON)


@pytest.mark.parametrize(
    ("digest", "local", "slot"),
    [
        (DAILY, at("2026-12-08 08:00"), at("2026-12-08 08:00")),
        (DAILY, at("2026-12-08 12:00"), at("2026-12-08 08:00")),
        (
            DAILY,
            at("2026-12-08 07:59"),
            at("2026-12-07 08:00"),
        ),  # before 8: yesterday's
        (
            WEEKLY,
            at("2026-12-07 08:00"),
            at("2026-12-07 08:00"),
        ),  # Monday 7 December
        (
            WEEKLY,
            at("2026-12-10 09:00"),
            at("2026-12-07 08:00"),
        ),  # that Thursday
        (
            WEEKLY,
            at("2026-12-07 07:00"),
            at("2026-11-30 08:00"),
        ),  # Monday before eight
        (
            WEEKLY,
            at("2026-12-06 23:00"),
            at("2026-11-30 08:00"),
        ),  # the Sunday
    ],
)
def test_when_the_digest_was_last_due(digest: Digest, local: datetime, slot: datetime) -> None:
    assert digest_slot(digest, local) == slot


@pytest.mark.parametrize(
    ("last", "local", "due"),
    [
        (
            None,
            at("2026-12-08 09:00"),
            False,
        ),  # never sent: the first comes at the next slot
        (at("2026-12-07 08:00"), at("2026-12-08 07:59"), False),
        (
            at("2026-12-07 08:00"),
            at("2026-12-08 08:00"),
            True,
        ),  # the next morning at eight
        (
            at("2026-12-08 08:00"),
            at("2026-12-08 08:00:01"),
            False,
        ),  # sent: not again
        (
            at("2026-12-01 08:00"),
            at("2026-12-08 09:00"),
            True,
        ),  # days missed: one, now
    ],
)
def test_when_a_daily_digest_is_due(last: datetime | None, local: datetime, due: bool) -> None:
    assert digest_due(DAILY, last, local) is due
