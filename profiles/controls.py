"""Staff in control, in the moment: pauses, grants ("allow for a while") and time budgets, as values, and
what they mean for one client now (`Standing`, which `decide` takes).

Pure: the clock is an argument. Where they are kept (the event store), how staff set them (the
dashboard) and how the answering processes follow them (appliance.in_force) live elsewhere; the order in
which `decide` applies them is in its docstring and docs/profiles.md.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from profiles.identity import Identity, mac_key
from profiles.verdict import Step

INTERNET = ""  # the key of the whole internet among a budget's spent, warned and extra categories
WARN_MINUTES = 5  # a child is told when this many minutes or fewer are left
# The blocks a child may ask staff to lift for a while (a grant beats them): a blocked category,
# allowlist-only, a category's time used up. Any other blocking reason (blocked for everyone, a pause,
# closing time, the day's internet time used up, a way round the filter) never offers "ask to use".
GRANT_LIFTS = frozenset({Step.CATEGORY, Step.NOT_ALLOWLISTED, Step.BUDGET})


def device_key(ip: str, mac: str | None) -> str:
    """The key staff's controls name a device by: its normalised MAC where known, else its address."""
    return (mac_key(mac) if mac else None) or ip


def label_of(identity: Identity, ip: str) -> str:
    """Who a control or an ask is about, as staff read it: the signed-in person's name, else the
    device's, else its address."""
    if identity.child is not None:
        return identity.child.display_name
    return identity.device.name if identity.device is not None else ip


class Scope(StrEnum):
    """What a pause covers: one device, one child (every device they are signed in on), a profile (every
    device under it), or the whole centre (every child; staff and bypass profiles keep working)."""

    DEVICE = "device"
    CHILD = "child"
    PROFILE = "profile"
    CENTRE = "centre"


@dataclass(frozen=True)
class Pause:
    """Staff switched the internet off for `scope`'s `target` (device: its key, the normalised MAC or
    else the address; child: the child's id; profile: its name; centre: ""), from `since` until `until`
    (None: until resumed)."""

    id: int
    scope: Scope
    target: str
    since: datetime
    until: datetime | None
    by: str
    reason: str = ""

    def active(self, now: datetime) -> bool:
        return self.since <= now and (self.until is None or now < self.until)


@dataclass(frozen=True)
class Grant:
    """Staff let one child (`child`, their id) or one device (`device`, its key) use one site (`host`,
    with its subdomains) or one category (`category`) from `since` until `until`, for `reason`. Exactly
    one of child/device and one of host/category is set."""

    id: int
    child: str | None
    device: str | None
    host: str | None
    category: str | None
    since: datetime
    until: datetime
    by: str
    reason: str

    def active(self, now: datetime) -> bool:
        return self.since <= now < self.until

    def covers(self, host: str, categories: Collection[str]) -> bool:
        """Whether this grant is for `host` (the grant's site or a subdomain of it) or for one of
        `categories` (the categories the lists name the host under)."""
        if self.host is not None:
            return host == self.host or host.endswith("." + self.host)
        return self.category in categories


@dataclass(frozen=True)
class Budget:
    """Daily minutes of internet (`minutes`, None: no limit) and per category (`categories`: games 30,
    social-networks 30), for a profile (profiles.yaml) or one child (set by staff)."""

    minutes: int | None = None
    categories: Mapping[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.minutes is None and not self.categories


def budget_for(own: Budget | None, profile: Budget | None) -> Budget | None:
    """The budget a child is held to: their own (set by staff; an empty one means no limit) replaces
    their profile's whole; None where neither limits anything."""
    budget = own if own is not None else profile
    return None if budget is None or budget.empty else budget


@dataclass(frozen=True)
class Usage:
    """Active minutes today (docs/profiles.md, "Time budgets"): of the internet, and per budgeted
    category."""

    internet: int = 0
    categories: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Left:
    """What is left of one child's budget today: minutes of the internet (None: no limit) and per
    budgeted category; `spent` the ones used up and `warned` the ones with WARN_MINUTES or fewer left
    (INTERNET for the whole internet)."""

    internet: int | None
    categories: Mapping[str, int]
    spent: frozenset[str]
    warned: frozenset[str]


@dataclass(frozen=True)
class Standing:
    """One client's controls now, as `decide` takes them: the pause that covers it (if any), its grants,
    its budget's spent categories (INTERNET for the whole internet) and the budgeted categories whose
    minutes are counted (`decide` names them in the verdict, so the answering side can count them), and
    what is left (None: no budget). `NO_STANDING` for a client nothing applies to: the only one whose
    verdicts may be remembered."""

    pause: Pause | None = None
    grants: tuple[Grant, ...] = ()
    spent: frozenset[str] = frozenset()
    counted: frozenset[str] = frozenset()
    left: Left | None = None


NO_STANDING = Standing()


@dataclass(frozen=True)
class Controls:
    """Every control in force at the centre: the pauses and grants not ended, and what is left of the
    budgets of the children signed in (by `Identity.subject`, `child:<id>`)."""

    pauses: tuple[Pause, ...] = ()
    grants: tuple[Grant, ...] = ()
    left: Mapping[str, Left] = field(default_factory=dict)
    counted: Mapping[str, frozenset[str]] = field(default_factory=dict)  # by subject: budgeted categories

    def standing(self, identity: Identity, device: str, now: datetime, *, bypass: bool = False) -> Standing:
        """What applies to `identity` asking from the device keyed `device` (normalised MAC, else the
        address) at `now`; NO_STANDING when nothing does.

        The pause is the active one that covers the client (its device key, its child's id, its profile,
        or the centre) ending last, one until resumed first. A centre pause does not cover staff signed
        in at the portal, nor, with `bypass`, a client whose profile bypasses filtering (the caller knows
        the profile; `decide` checks both again, so a standing made without `bypass` still decides
        right). The grants are the active ones for the child's id or the device key; spent, counted and
        left are the child's (by `Identity.subject`: only signed-in children have a budget).
        """
        child = identity.child
        centre = not bypass and not (child is not None and child.staff)
        pause: Pause | None = None
        for candidate in self.pauses:
            if not candidate.active(now) or not _covers(candidate, identity, device, centre=centre):
                continue
            if pause is None or _ends_later(candidate, pause):
                pause = candidate
        grants = tuple(
            g
            for g in self.grants
            if g.active(now)
            and ((child is not None and g.child == child.id) or (g.device is not None and g.device == device))
        )
        subject = identity.subject
        lefts = self.left.get(subject)
        counted = self.counted.get(subject, frozenset())
        if pause is None and not grants and lefts is None and not counted:
            return NO_STANDING
        return Standing(
            pause=pause,
            grants=grants,
            spent=lefts.spent if lefts is not None else frozenset(),
            counted=counted,
            left=lefts,
        )


NO_CONTROLS = Controls()


def left(budget: Budget, usage: Usage, extra: Mapping[str, int]) -> Left:
    """What is left of `budget` after `usage`, with staff's `extra` minutes (by category, INTERNET for
    the internet) added; floored at 0. Extra time for something the budget does not limit changes
    nothing (it has no limit to add to)."""
    internet = (
        None if budget.minutes is None else max(0, budget.minutes + extra.get(INTERNET, 0) - usage.internet)
    )
    categories = {
        name: max(0, minutes + extra.get(name, 0) - usage.categories.get(name, 0))
        for name, minutes in budget.categories.items()
    }
    remaining = dict(categories)
    if internet is not None:
        remaining[INTERNET] = internet
    return Left(
        internet=internet,
        categories=categories,
        spent=frozenset(name for name, minutes in remaining.items() if minutes == 0),
        warned=frozenset(name for name, minutes in remaining.items() if 0 < minutes <= WARN_MINUTES),
    )


def _covers(pause: Pause, identity: Identity, device: str, *, centre: bool) -> bool:
    """Whether `pause` names this client: its device key, its child's id, its profile, or (where
    `centre` says a centre pause may cover it) the centre."""
    if pause.scope is Scope.DEVICE:
        return pause.target == device
    if pause.scope is Scope.CHILD:
        return identity.child is not None and pause.target == identity.child.id
    if pause.scope is Scope.PROFILE:
        return pause.target == identity.profile
    return centre


def _ends_later(pause: Pause, than: Pause) -> bool:
    """Whether `pause` lasts longer than `than` (until resumed is longest)."""
    if than.until is None:
        return False
    return pause.until is None or pause.until > than.until
