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

from profiles.identity import Identity

INTERNET = ""  # the key of the whole internet among a budget's spent, warned and extra categories
WARN_MINUTES = 5  # a child is told when this many minutes or fewer are left


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

    def standing(self, identity: Identity, device: str, now: datetime) -> Standing:
        """What applies to `identity` asking from the device keyed `device` (normalised MAC, else the
        address) at `now`; NO_STANDING when nothing does."""
        raise NotImplementedError  # profiles-core: see /work/notes/issue21-spec.md


NO_CONTROLS = Controls()


def left(budget: Budget, usage: Usage, extra: Mapping[str, int]) -> Left:
    """What is left of `budget` after `usage`, with staff's `extra` minutes (by category, INTERNET for
    the internet) added; floored at 0."""
    raise NotImplementedError  # profiles-core: see /work/notes/issue21-spec.md
