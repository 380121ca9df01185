"""Staff in control: which pause and grants cover a client now, and what is left of a child's budget.

Truth tables for `Controls.standing` (pauses by device, child, profile and centre, their ends, grants by
child or device) and `left` (budget, usage and staff's extra time, floored; spent and warned).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from profiles.controls import (
    INTERNET,
    NO_CONTROLS,
    NO_STANDING,
    Budget,
    Controls,
    Grant,
    Left,
    Pause,
    Scope,
    Usage,
    budget_for,
    device_key,
    left,
)
from profiles.identity import GUEST_IDENTITY, Child, Device, Identity, Via

NOW = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
MAC = "aa:bb:cc:00:00:01"
OTHER_MAC = "aa:bb:cc:00:00:02"
AMINA = Child("c-7f3a", "Amina", "10-12")
BEN = Child("c-91d0", "Ben", "10-12")
ROSE = Child("s-rose", "rose", "staff", staff=True)
PC = Device("library-pc-1", "10-12", mac=MAC)
AMINA_AT_PC = Identity("10-12", Via.SESSION, PC, AMINA)
BEN_AT_PC = Identity("10-12", Via.SESSION, PC, BEN)
ROSE_AT_PC = Identity("staff", Via.SESSION, PC, ROSE)
PC_ALONE = Identity("10-12", Via.MAC, PC)
TEEN_PC = Identity("13-17", Via.MAC, Device("teen-pc", "13-17", mac=OTHER_MAC))
TECH = Identity("tech", Via.MAC, Device("tech-laptop", "tech", mac=OTHER_MAC))


def pause(scope: Scope, target: str, *, id: int = 1, minutes: int | None = 30, ago: int = 5) -> Pause:
    since = NOW - timedelta(minutes=ago)
    until = None if minutes is None else since + timedelta(minutes=minutes)
    return Pause(id=id, scope=scope, target=target, since=since, until=until, by="rose")


def grant(
    *, child: str | None = None, device: str | None = None, host: str | None = "games.example", id: int = 1
) -> Grant:
    return Grant(
        id=id,
        child=child,
        device=device,
        host=host,
        category=None if host else "games",
        since=NOW - timedelta(minutes=5),
        until=NOW + timedelta(minutes=25),
        by="rose",
        reason="homework",
    )


# --- pauses: who they cover ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "target", "identity", "device", "covered"),
    [
        (Scope.DEVICE, MAC, AMINA_AT_PC, MAC, True),
        (Scope.DEVICE, MAC, PC_ALONE, MAC, True),
        (Scope.DEVICE, MAC, TEEN_PC, OTHER_MAC, False),
        (Scope.DEVICE, "10.0.0.12", GUEST_IDENTITY, "10.0.0.12", True),  # no MAC known: the address
        (Scope.CHILD, AMINA.id, AMINA_AT_PC, MAC, True),
        (Scope.CHILD, AMINA.id, BEN_AT_PC, MAC, False),  # the same device, another child
        (Scope.CHILD, AMINA.id, PC_ALONE, MAC, False),  # Amina signed out: the device is free
        (Scope.PROFILE, "10-12", AMINA_AT_PC, MAC, True),
        (Scope.PROFILE, "10-12", PC_ALONE, MAC, True),
        (Scope.PROFILE, "10-12", TEEN_PC, OTHER_MAC, False),
        (Scope.CENTRE, "", AMINA_AT_PC, MAC, True),
        (Scope.CENTRE, "", TEEN_PC, OTHER_MAC, True),
        (Scope.CENTRE, "", GUEST_IDENTITY, "10.0.0.99", True),
        (Scope.CENTRE, "", ROSE_AT_PC, MAC, False),  # staff signed in keep working
        (Scope.DEVICE, MAC, ROSE_AT_PC, MAC, True),  # a device pause names the device, whoever uses it
    ],
)
def test_which_clients_a_pause_covers(
    scope: Scope, target: str, identity: Identity, device: str, covered: bool
) -> None:
    paused = pause(scope, target)
    standing = Controls(pauses=(paused,)).standing(identity, device, NOW)
    assert standing.pause == (paused if covered else None)
    assert (standing is NO_STANDING) is not covered


def test_a_centre_pause_does_not_cover_a_profile_that_bypasses_filtering_when_the_caller_says_so() -> None:
    controls = Controls(pauses=(pause(Scope.CENTRE, ""),))
    assert controls.standing(TECH, OTHER_MAC, NOW, bypass=True) is NO_STANDING
    # Said nothing: the pause is in the standing, and decide leaves it out (test_decide_controls.py).
    assert controls.standing(TECH, OTHER_MAC, NOW).pause is not None
    # A device pause names the technician's laptop itself.
    assert (
        Controls(pauses=(pause(Scope.DEVICE, OTHER_MAC),)).standing(TECH, OTHER_MAC, NOW, bypass=True).pause
    )


@pytest.mark.parametrize(
    ("since", "until", "active"),
    [
        (NOW - timedelta(minutes=5), NOW + timedelta(seconds=1), True),
        (NOW - timedelta(minutes=5), NOW, False),  # over exactly at `until`
        (NOW - timedelta(minutes=5), NOW - timedelta(seconds=1), False),
        (NOW, NOW + timedelta(minutes=5), True),  # from exactly `since`
        (NOW + timedelta(seconds=1), NOW + timedelta(minutes=5), False),  # not yet
        (NOW - timedelta(days=2), None, True),  # until resumed
    ],
)
def test_a_pause_holds_from_since_until_just_before_until(
    since: datetime, until: datetime | None, active: bool
) -> None:
    paused = Pause(id=3, scope=Scope.CENTRE, target="", since=since, until=until, by="rose")
    assert paused.active(NOW) is active
    assert (Controls(pauses=(paused,)).standing(PC_ALONE, MAC, NOW).pause is not None) is active


def test_of_several_pauses_the_one_ending_last_is_the_standing_one() -> None:
    short = pause(Scope.DEVICE, MAC, id=1, minutes=15)
    long = pause(Scope.PROFILE, "10-12", id=2, minutes=60)
    endless = pause(Scope.CHILD, AMINA.id, id=3, minutes=None)
    assert Controls(pauses=(short, long)).standing(AMINA_AT_PC, MAC, NOW).pause == long
    assert Controls(pauses=(long, short)).standing(AMINA_AT_PC, MAC, NOW).pause == long
    assert Controls(pauses=(short, endless, long)).standing(AMINA_AT_PC, MAC, NOW).pause == endless
    assert Controls(pauses=(endless, long)).standing(AMINA_AT_PC, MAC, NOW).pause == endless


def test_a_pause_over_or_not_yet_begun_is_not_the_standing_one() -> None:
    over = pause(Scope.DEVICE, MAC, id=1, minutes=5, ago=10)
    later = Pause(id=2, scope=Scope.DEVICE, target=MAC, since=NOW + timedelta(minutes=1), until=None, by="r")
    assert Controls(pauses=(over, later)).standing(PC_ALONE, MAC, NOW) is NO_STANDING


# --- grants: whose they are ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("made", "identity", "device", "holds"),
    [
        (grant(child=AMINA.id), AMINA_AT_PC, MAC, True),
        (grant(child=AMINA.id), AMINA_AT_PC, OTHER_MAC, True),  # the child's, on any device
        (grant(child=AMINA.id), BEN_AT_PC, MAC, False),
        (grant(child=AMINA.id), PC_ALONE, MAC, False),  # signed out
        (grant(device=MAC), PC_ALONE, MAC, True),
        (grant(device=MAC), AMINA_AT_PC, MAC, True),  # the device's, whoever is signed in
        (grant(device=MAC), TEEN_PC, OTHER_MAC, False),
        (grant(device="10.0.0.12"), GUEST_IDENTITY, "10.0.0.12", True),
        (grant(device="10.0.0.12"), GUEST_IDENTITY, "10.0.0.13", False),
    ],
)
def test_whose_grants_a_client_has(made: Grant, identity: Identity, device: str, holds: bool) -> None:
    assert Controls(grants=(made,)).standing(identity, device, NOW).grants == ((made,) if holds else ())


def test_a_grant_ends_exactly_at_until() -> None:
    made = grant(device=MAC)
    controls = Controls(grants=(made,))
    assert controls.standing(
        PC_ALONE,
        MAC,
        made.until - timedelta(seconds=1),
    ).grants == (made,)
    assert controls.standing(PC_ALONE, MAC, made.until) is NO_STANDING
    assert controls.standing(PC_ALONE, MAC, made.since - timedelta(seconds=1)) is NO_STANDING


def test_every_grant_of_the_child_and_of_the_device_comes_with_the_standing() -> None:
    mine = grant(child=AMINA.id, id=1)
    device = grant(device=MAC, host=None, id=2)
    other = grant(child=BEN.id, id=3)
    assert Controls(grants=(mine, device, other)).standing(AMINA_AT_PC, MAC, NOW).grants == (mine, device)


@pytest.mark.parametrize(
    ("host", "asked", "categories", "covers"),
    [
        ("games.example", "games.example", (), True),
        ("games.example", "play.games.example", (), True),
        ("games.example", "othergames.example", (), False),
        ("games.example", "example", (), False),
        (None, "anything.example", ("games",), True),
        (None, "anything.example", ("social", "games"), True),
        (None, "anything.example", ("social",), False),
        (None, "anything.example", (), False),
    ],
)
def test_what_a_grant_covers(host: str | None, asked: str, categories: tuple[str, ...], covers: bool) -> None:
    assert grant(device=MAC, host=host).covers(asked, categories) is covers


# --- budgets: by subject ------------------------------------------------------------------------------


def test_a_signed_in_child_gets_what_is_left_of_their_budget_and_nobody_else_does() -> None:
    amina = left(Budget(minutes=60, categories={"games": 30}), Usage(60, {"games": 10}), {})
    controls = Controls(left={"child:c-7f3a": amina}, counted={"child:c-7f3a": frozenset({"games"})})
    standing = controls.standing(AMINA_AT_PC, MAC, NOW)
    assert standing.left == amina
    assert standing.spent == frozenset({INTERNET})
    assert standing.counted == frozenset({"games"})
    assert controls.standing(BEN_AT_PC, MAC, NOW) is NO_STANDING
    assert controls.standing(PC_ALONE, MAC, NOW) is NO_STANDING  # devices and guests have no budget


def test_nothing_in_force_is_no_standing() -> None:
    assert NO_CONTROLS.standing(AMINA_AT_PC, MAC, NOW) is NO_STANDING
    assert NO_CONTROLS.standing(GUEST_IDENTITY, "10.0.0.99", NOW) is NO_STANDING


# --- left ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "used", "extra", "internet", "spent", "warned"),
    [
        (120, 0, 0, 120, False, False),
        (120, 100, 0, 20, False, False),
        (120, 114, 0, 6, False, False),
        (120, 115, 0, 5, False, True),  # WARN_MINUTES left: warned
        (120, 119, 0, 1, False, True),
        (120, 120, 0, 0, True, False),  # used up: spent, no longer warned
        (120, 150, 0, 0, True, False),  # floored at 0
        (120, 120, 15, 15, False, False),  # staff added time
        (120, 130, 15, 5, False, True),
        (120, 140, 15, 0, True, False),
    ],
)
def test_what_is_left_of_the_internet(
    minutes: int, used: int, extra: int, internet: int, spent: bool, warned: bool
) -> None:
    found = left(Budget(minutes=minutes), Usage(internet=used), {INTERNET: extra} if extra else {})
    assert found.internet == internet
    assert (INTERNET in found.spent) is spent
    assert (INTERNET in found.warned) is warned


def test_what_is_left_of_each_category_and_extra_time_for_one_of_them() -> None:
    budget = Budget(categories={"games": 30, "social-networks": 20, "video": 10})
    usage = Usage(internet=90, categories={"games": 30, "social-networks": 17})
    assert left(budget, usage, {"games": 10, INTERNET: 30}) == Left(
        internet=None,  # no internet budget: extra internet time changes nothing
        categories={"games": 10, "social-networks": 3, "video": 10},
        spent=frozenset(),
        warned=frozenset({"social-networks"}),
    )
    assert left(budget, usage, {}) == Left(
        internet=None,
        categories={"games": 0, "social-networks": 3, "video": 10},
        spent=frozenset({"games"}),
        warned=frozenset({"social-networks"}),
    )


def test_extra_time_for_a_category_without_a_budget_is_not_a_budget() -> None:
    found = left(Budget(minutes=60), Usage(internet=10, categories={"games": 50}), {"games": 20})
    assert found.categories == {}
    assert found.spent == frozenset()


def test_both_spent_at_once() -> None:
    found = left(Budget(minutes=60, categories={"games": 30}), Usage(60, {"games": 30}), {})
    assert found.spent == frozenset({INTERNET, "games"})
    assert found.internet == 0


@pytest.mark.parametrize(
    ("own", "profile", "held_to"),
    [
        (None, None, None),  # neither: no budget
        (None, Budget(minutes=60), Budget(minutes=60)),  # the profile's
        (Budget(categories={"games": 30}), Budget(minutes=60), Budget(categories={"games": 30})),  # whole
        (Budget(), Budget(minutes=60), None),  # staff's empty budget: no limit for this child
    ],
)
def test_a_childs_own_budget_replaces_the_profiles_whole(own, profile, held_to):
    assert budget_for(own, profile) == held_to


@pytest.mark.parametrize(
    ("ip", "mac", "key"),
    [
        ("10.0.1.5", "AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff"),
        ("10.0.1.5", None, "10.0.1.5"),
        ("10.0.1.5", "not a mac", "10.0.1.5"),
    ],
)
def test_a_device_is_keyed_by_its_mac_where_known_else_its_address(ip, mac, key):
    assert device_key(ip, mac) == key
