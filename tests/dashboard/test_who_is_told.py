"""The "Who is told" panel's words, as a truth table over the rota and the centre's time (pure: the time
is given, never read)."""

from __future__ import annotations

from datetime import datetime

import pytest

from dashboard.who_is_told import channel_kind, who_is_told
from profiles.alerts import AlertPolicy, Channel, Contact, LadderStep, Shift

WEEKDAYS = frozenset(range(5))


def at(*fields: int) -> datetime:
    """The centre's wall-clock time, naive, as the dashboard gives it (profiles.escalation's way)."""
    return datetime(*fields)  # noqa: DTZ001


CONTACTS = (
    Contact("duty", (Channel("phone", "ntfys://ntfy.example.org/t"),), "Duty phone"),
    Contact("night", (Channel("sms", "twilio://sid:token@+1/+2"),), "Night worker"),
    Contact("ooh", (Channel("email", "mailto://u:p@mail.lan"),), ""),  # no display name: the key
)
LADDER = (LadderStep(0, "on-duty"),)


def policy(*rota: Shift, out_of_hours: str = "ooh") -> AlertPolicy:
    return AlertPolicy(contacts=CONTACTS, rota=rota, out_of_hours=out_of_hours, ladder=LADDER)


DAY = Shift("duty", WEEKDAYS, 9 * 60, 18 * 60)
NIGHT = Shift("night", frozenset({4, 5}), 22 * 60, 2 * 60)  # Fri and Sat nights, past midnight


@pytest.mark.parametrize(
    ("rota", "out_of_hours", "when", "on_duty", "until"),
    [
        ((DAY,), "ooh", at(2026, 12, 7, 9, 0), "Duty phone", "until 18:00 today, then ooh"),
        ((DAY,), "ooh", at(2026, 12, 7, 18, 0), "ooh", "until 09:00 tomorrow, then Duty phone"),
        ((DAY,), "", at(2026, 12, 7, 18, 0), "", "until 09:00 tomorrow, when Duty phone comes on duty"),
        ((DAY,), "ooh", at(2026, 12, 11, 18, 0), "ooh", "until Monday 09:00, then Duty phone"),
        (
            (DAY, NIGHT),
            "ooh",
            at(2026, 12, 11, 23, 0),
            "Night worker",
            "until 02:00 tomorrow, then ooh",
        ),
        ((DAY, NIGHT), "ooh", at(2026, 12, 12, 1, 0), "Night worker", "until 02:00 today, then ooh"),
        ((DAY, NIGHT), "ooh", at(2026, 12, 11, 20, 0), "ooh", "until 22:00 today, then Night worker"),
        ((), "ooh", at(2026, 12, 7, 12, 0), "ooh", ""),  # no rota: always the out-of-hours contact
        ((Shift("duty", frozenset(range(7)), 0, 0),), "", at(2026, 12, 7, 12, 0), "Duty phone", ""),
    ],
)
def test_who_is_on_duty_and_until_when(rota, out_of_hours, when, on_duty, until):
    told = who_is_told(policy(*rota, out_of_hours=out_of_hours), when)
    assert (told.on_duty, told.until) == (on_duty, until)


def test_a_channel_is_said_by_its_kind_from_the_scheme_only():
    kinds = [
        channel_kind(Channel("x", url))
        for url in (
            "mailtos://u:secret@host",
            "ntfy://host/topic",
            "tgram://token/chat",
            "jsons://host/p",
            "matrixs://u:p@host/#room",
            "twilio://sid:tok@+1/+2",
            "smseagle://tok@host/1",
            "not a url",
        )
    ]
    assert kinds == ["e-mail", "ntfy", "Telegram", "webhook", "Matrix", "SMS (Twilio)", "smseagle", "unknown"]
    told = who_is_told(policy(DAY), at(2026, 12, 7, 12, 0))
    assert [(c.name, c.channels) for c in told.contacts] == [
        ("Duty phone", ("phone (ntfy)",)),
        ("Night worker", ("sms (SMS (Twilio))",)),
        ("ooh", ("email (e-mail)",)),
    ]
