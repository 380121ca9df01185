"""Staff's controls in force (pauses, grants, what is left of the children's budgets), followed from the
event store by the DNS filter and the proxy, and the active minutes they count back into it.

Staff's every change bumps the store's `controls` counter (appliance.store.controls); each answering
process reads the counter every POLL_S seconds (one tiny query) and, when it moved, loads the controls
anew: a pause takes effect within a second. They are also loaded every REFRESH_S seconds anyway, so the
budgets of children whose minutes are counted by the other service follow too.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.store import controls as stored
from appliance.store.schema import StoreError, connect
from profiles.controls import (
    INTERNET,
    NO_CONTROLS,
    Budget,
    Controls,
    Left,
    Standing,
    Usage,
    budget_for,
    left,
)
from profiles.identity import Identity, Sessions
from profiles.profile import Profile
from profiles.verdict import Action, Step, Verdict

log = logging.getLogger(__name__)

POLL_S = 0.25
REFRESH_S = 15.0


def load_controls(
    db: sqlite3.Connection,
    now: float,
    zone: ZoneInfo,
    profiles: Mapping[str, Profile],
    sessions: Sessions,
) -> Controls:
    """The pauses and grants active at `now` (epoch seconds), and for each child with a session in
    `sessions` what is left of their budget today (the centre's date in `zone`): their own budget (set by
    staff), else their profile's; a child without either has none."""
    day = datetime.fromtimestamp(now, zone).date().isoformat()
    own = stored.child_budgets(db)
    usage = stored.usage(db, day)
    extra = stored.extra(db, day)
    lefts: dict[str, Left] = {}
    counted: dict[str, frozenset[str]] = {}
    for session in sessions.all:
        child = session.child
        if child.staff:
            continue  # staff signed in at the portal are never budgeted
        budget = budget_for(own.get(child.id), _profile_budget(profiles.get(child.profile)))
        if budget is None:
            continue
        subject = f"child:{child.id}"
        lefts[subject] = left(budget, usage.get(child.id, Usage()), extra.get(child.id, {}))
        counted[subject] = frozenset(budget.categories)
    return stored.as_controls(
        stored.active_pauses(db, now), stored.active_grants(db, now), lefts, counted, zone
    )


def _profile_budget(profile: Profile | None) -> Budget | None:
    return profile.budget if profile is not None else None


class ControlsFollower:
    """Follows the controls in the store at `path` for an answering process."""

    def __init__(self, path: Path, zone: ZoneInfo) -> None:
        self.path = path
        self.zone = zone
        self._db: sqlite3.Connection | None = None
        self._version = -1
        self._loaded_at = float("-inf")
        self._last: Controls | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = connect(self.path, timeout=0.2)
        return self._db

    def poll(
        self, now: float, profiles: Mapping[str, Profile], sessions: Sessions, *, again: bool = False
    ) -> Controls | None:
        """The controls if they changed since the last poll (read when the store's counter moved, every
        REFRESH_S seconds, or `again`: the sign-ins or the profiles changed), else None. Never raises:
        a store that cannot be read leaves the last controls in force (and is logged)."""
        try:
            db = self._connection()
            version = stored.controls_version(db)
            if not again and version == self._version and now - self._loaded_at < REFRESH_S:
                return None
            controls = load_controls(db, now, self.zone, profiles, sessions)
        except (sqlite3.Error, StoreError) as e:
            log.warning("controls: cannot read the event store %s: %s", self.path, e)
            return None
        self._version, self._loaded_at = version, now
        if controls == NO_CONTROLS:
            controls = NO_CONTROLS  # the one the answering side knows for "nothing" (no work per client)
        if controls == self._last:
            return None
        self._last = controls
        return controls

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def activity(
    identity: Identity, standing: Standing, verdict: Verdict, wall: float
) -> Iterable[tuple[str, str, int]]:
    """The active minutes one answer counts (child id, category or INTERNET, minute of `wall`): for a
    signed-in child with a budget, the internet, and each budgeted category the verdict names as counted
    (`Step.BUDGET` allow reasons). Nothing for help services and the portal (they leave no trace and
    cost no time), nor for what a pause or a spent budget refused: a device's background questions
    while it is refused would use up the time staff add."""
    child = identity.child
    if child is None or standing.left is None:
        return ()
    reasons = verdict.reasons
    if reasons and reasons[0].step in _UNCOUNTED:
        return ()
    if verdict.action is Action.BLOCK and any(
        r.effect is Action.BLOCK and r.step in _REFUSALS for r in reasons
    ):
        return ()
    minute = int(wall // 60)
    rows = [(child.id, INTERNET, minute)]
    rows += [
        (child.id, r.rule, minute) for r in reasons if r.step is Step.BUDGET and r.effect is Action.ALLOW
    ]
    return rows


_UNCOUNTED = frozenset({Step.HELP_SERVICE, Step.PORTAL})
_REFUSALS = frozenset({Step.PAUSED, Step.BUDGET})
