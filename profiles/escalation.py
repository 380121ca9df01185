"""Who is told, and when: the rota, the escalation ladder, the retry schedule and the digest's timer.

Pure: the centre's local time is an argument, never read from a clock: a datetime whose wall-clock
fields are the centre's (naive, or in the centre's zone), or a weekday and minutes after midnight. The
deliverer (`appliance.alerts.delivery`) asks these questions every quarter second and keeps the answers
in the store's outbox.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from profiles.alerts import ON_DUTY, AlertPolicy, Digest, LadderStep, Shift
from profiles.categories import Severity

MINUTES_A_DAY = 24 * 60

# Seconds to wait before each retry of a failed delivery: the first retry after 10 s, then longer, at most
# a quarter of an hour between tries (a channel down for a day is tried about a hundred times, not
# thousands).
RETRY_DELAYS_S: tuple[float, ...] = (10, 30, 60, 120, 300, 600, 900)

# A ladder step that fell due longer ago than this is not taken (see `due_steps`).
STALE_S = 24 * 3600.0

# After this many failed attempts in a row a channel is shown failing and reported through the others.
FAILING_AFTER = 3


def _covers(shift: Shift, weekday: int, minute: int) -> bool:
    """Is `weekday` (0 Monday) at `minute` after midnight within `shift`? A shift that ends before it
    starts runs past midnight into the next day and belongs to the day it starts on; one that ends when
    it starts lasts the whole day."""
    if shift.start == shift.end:
        return weekday in shift.days
    if shift.start < shift.end:
        return weekday in shift.days and shift.start <= minute < shift.end
    if weekday in shift.days and minute >= shift.start:
        return True
    return (weekday - 1) % 7 in shift.days and minute < shift.end


def on_duty_at(rota: tuple[Shift, ...], out_of_hours: str, weekday: int, minute: int) -> str:
    """The contact on duty on `weekday` (0 Monday .. 6 Sunday) at `minute` after midnight, centre's
    time: the first shift of `rota` that covers it, else `out_of_hours` ('' when there is none)."""
    for shift in rota:
        if _covers(shift, weekday, minute):
            return shift.contact
    return out_of_hours


def on_duty(policy: AlertPolicy, local: datetime) -> str:
    """The contact on duty at `local` (the centre's time, naive)."""
    return on_duty_at(policy.rota, policy.out_of_hours, local.weekday(), local.hour * 60 + local.minute)


def next_change(policy: AlertPolicy, local: datetime) -> datetime | None:
    """When the contact on duty at `local` (naive, centre's time) next changes; None: never (no rota, or
    one that covers every hour)."""
    current = on_duty(policy, local)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = {0} | {m for s in policy.rota for m in (s.start, s.end)}
    candidates = sorted(midnight + timedelta(days=d, minutes=m) for d in range(9) for m in minutes)
    return next((c for c in candidates if c > local and on_duty(policy, c) != current), None)


def recipient(policy: AlertPolicy, step: LadderStep, local: datetime) -> str:
    """The contact a ladder step tells at `local`: its own, or for `on-duty` the rota's."""
    return on_duty(policy, local) if step.notify == ON_DUTY else step.notify


def due_steps(
    ladder: tuple[LadderStep, ...],
    severity: Severity,
    raised: float,
    now: float,
    *,
    stale_s: float | None = None,
) -> list[int]:
    """The ladder's steps (their indices) due at `now` for an alert of `severity` raised at `raised`
    and not acknowledged: those whose `after_s` has passed and whose `min_severity` it reaches. With
    `stale_s`, not those due more than that long ago (an old alert is not pushed when contacts are first
    written, or after the alerter was off for days: the dashboard and the digest still show it)."""
    return [
        i
        for i, step in enumerate(ladder)
        if severity >= step.min_severity
        and now >= raised + step.after_s
        and (stale_s is None or now - (raised + step.after_s) <= stale_s)
    ]


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the `attempts`th failed attempt (1: the first) before trying again."""
    return RETRY_DELAYS_S[min(max(attempts, 1), len(RETRY_DELAYS_S)) - 1]


def digest_slot(digest: Digest, local: datetime) -> datetime:
    """The latest time at or before `local` a digest was due (naive, centre's time): today's (or this
    week's day's) `at`, else the one before."""
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    slot = midnight + timedelta(minutes=digest.at)
    if digest.weekday is None:
        return slot if slot <= local else slot - timedelta(days=1)
    slot -= timedelta(days=(local.weekday() - digest.weekday) % 7)
    return slot if slot <= local else slot - timedelta(days=7)


def digest_period(digest: Digest) -> timedelta:
    """How far back a digest looks: a day, or a week."""
    return timedelta(days=1 if digest.weekday is None else 7)


def digest_due(digest: Digest, last: datetime | None, local: datetime) -> bool:
    """Is a digest due at `local`, the last having been sent for the slot `last` (None: never)? Never
    one sent: not yet (the first comes at the next slot, not on the alerter's first start)."""
    return last is not None and digest_slot(digest, local) > last
