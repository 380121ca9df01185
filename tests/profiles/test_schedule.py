"""Opening windows: wall-clock times in the centre's zone, across midnight and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from profiles.decide import decide
from profiles.policy import Policy
from profiles.request import Request
from profiles.schedule import Outside, Schedule, ScheduleRule, Window, parse_clock, parse_days
from profiles.verdict import Action, Step
from tests.profiles.sample_policy import who

LONDON = ZoneInfo("Europe/London")
FRI, SAT, SUN = 4, 5, 6


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("daily", set(range(7))),
        ("mon, wed-fri", {0, 2, 3, 4}),
        ("fri-mon", {4, 5, 6, 0}),
        ("Tue", {1}),
    ],
)
def test_days(text: str, days: set[int]) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize("text", ["monday-friday", "mon-", "weekdays", ""])
def test_bad_days_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_days(text)


@pytest.mark.parametrize(("text", "minutes"), [("00:00", 0), ("08:30", 510), ("15:00", 900), ("24:00", 1440)])
def test_clock(text: str, minutes: int) -> None:
    assert parse_clock(text) == minutes


@pytest.mark.parametrize("text", ["8", "8:3", "25:00", "12:60", "noon", "24:01"])
def test_bad_clock_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_clock(text)


LATE = Window(frozenset({FRI}), 22 * 60, 2 * 60)  # Friday 22:00 to Saturday 02:00


@pytest.mark.parametrize(
    ("weekday", "clock", "open_"),
    [
        (FRI, "21:59", False),
        (FRI, "22:00", True),
        (FRI, "23:59", True),
        (SAT, "00:00", True),
        (SAT, "01:59", True),
        (SAT, "02:00", False),
        (SAT, "22:30", False),  # the window is Friday's, not Saturday's
        (SUN, "01:00", False),
    ],
)
def test_a_window_across_midnight(weekday: int, clock: str, open_: bool) -> None:
    assert LATE.covers(weekday, parse_clock(clock)) is open_


DAYTIME = ScheduleRule((Schedule("day", (Window(frozenset(range(7)), 9 * 60, 17 * 60),)),))


@pytest.mark.parametrize(
    ("utc", "open_"),
    [
        # 29 March 2026: London moves from GMT to BST at 01:00 UTC.
        (datetime(2026, 3, 28, 8, 30, tzinfo=UTC), False),  # 08:30 GMT
        (datetime(2026, 3, 29, 8, 30, tzinfo=UTC), True),  # 09:30 BST
        (datetime(2026, 3, 29, 16, 0, tzinfo=UTC), False),  # 17:00 BST
        (datetime(2026, 3, 28, 16, 0, tzinfo=UTC), True),  # 16:00 GMT
        # 25 October 2026: back to GMT at 01:00 UTC.
        (datetime(2026, 10, 25, 8, 30, tzinfo=UTC), False),  # 08:30 GMT
        (datetime(2026, 10, 24, 8, 30, tzinfo=UTC), True),  # 09:30 BST
    ],
)
def test_windows_follow_the_wall_clock_through_daylight_saving(utc: datetime, open_: bool) -> None:
    assert DAYTIME.is_open(utc, LONDON) is open_


def test_the_repeated_hour_of_autumn_is_open_both_times() -> None:
    small_hours = ScheduleRule((Schedule("night", (Window(frozenset(range(7)), 90, 105),)),))  # 01:30-01:45
    first = datetime(2026, 10, 25, 0, 35, tzinfo=UTC)  # 01:35 BST
    second = datetime(2026, 10, 25, 1, 35, tzinfo=UTC)  # 01:35 GMT, an hour later
    assert small_hours.is_open(first, LONDON) and small_hours.is_open(second, LONDON)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        DAYTIME.is_open(datetime(2026, 3, 29, 9, 30), LONDON)  # noqa: DTZ001


def test_the_decision_changes_at_the_minute_the_window_closes(policy: Policy) -> None:
    # The kid profile's window is Monday to Friday 15:00-19:00 London; random.example is not on its allowlist
    # and outside the window the reason becomes the schedule.
    before = datetime(2026, 11, 24, 18, 59, 59, tzinfo=UTC)
    after = datetime(2026, 11, 24, 19, 0, 0, tzinfo=UTC)
    steps = [
        decide(Request("random.example"), policy, who("kid"), t).reasons[0].step for t in (before, after)
    ]
    assert steps == [Step.NOT_ALLOWLISTED, Step.SCHEDULE]
    late = [decide(Request("random.example"), policy, who("late"), t).action for t in (before, after, before)]
    assert late == [Action.ALLOW, Action.FLAG, Action.ALLOW]


def test_outside_values() -> None:
    assert {o.value for o in Outside} == {"allowlist", "block", "flag"}


CLUB = ScheduleRule(
    (
        Schedule("after-school", (Window(frozenset(range(5)), 15 * 60, 19 * 60),)),  # mon-fri 15:00-19:00
        Schedule("late", (LATE,)),  # and Friday 22:00 to Saturday 02:00
    )
)


@pytest.mark.parametrize(
    ("local", "opens"),
    [
        # Tuesday 1 December 2026 (GMT): the morning waits for the afternoon, the evening for tomorrow
        (datetime(2026, 12, 1, 10, 0, tzinfo=LONDON), datetime(2026, 12, 1, 15, 0, tzinfo=LONDON)),
        (datetime(2026, 12, 1, 19, 0, tzinfo=LONDON), datetime(2026, 12, 2, 15, 0, tzinfo=LONDON)),
        # open now: nothing to wait for
        (datetime(2026, 12, 1, 15, 0, tzinfo=LONDON), None),
        (datetime(2026, 12, 5, 1, 30, tzinfo=LONDON), None),  # Saturday, in Friday's late window
        # between Friday's two windows; after the late one, Monday's
        (datetime(2026, 12, 4, 20, 0, tzinfo=LONDON), datetime(2026, 12, 4, 22, 0, tzinfo=LONDON)),
        (datetime(2026, 12, 5, 2, 0, tzinfo=LONDON), datetime(2026, 12, 7, 15, 0, tzinfo=LONDON)),
        # a week round: Friday after 19:00 waits for 22:00, not for next Friday
        (datetime(2026, 12, 4, 21, 59, tzinfo=LONDON), datetime(2026, 12, 4, 22, 0, tzinfo=LONDON)),
        # the clocks went forward on Sunday 29 March: Monday opens at 15:00 summer time
        (datetime(2026, 3, 28, 12, 0, tzinfo=LONDON), datetime(2026, 3, 30, 15, 0, tzinfo=LONDON)),
    ],
)
def test_when_the_windows_next_open(local: datetime, opens: datetime | None) -> None:
    found = CLUB.next_opening(local, LONDON)
    assert found == opens
    if found is not None and opens is not None:
        assert found.utcoffset() == opens.utcoffset()  # the centre's clock at that moment


def test_windows_that_never_open_have_no_next_opening() -> None:
    assert ScheduleRule(()).next_opening(datetime(2026, 12, 1, 10, 0, tzinfo=UTC), LONDON) is None
