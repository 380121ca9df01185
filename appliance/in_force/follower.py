"""The one follower of the policy in force, for each answering process (the DNS filter, each proxy worker).

Every HAND_OVER_S it hands the gathered events to the writer and takes in the store's sign-ins and named
devices and staff's controls (pauses, grants, budgets: appliance/in_force/controls.py); every WATCH_S it
lets its service look after itself (`tick`); every CHECK_S it looks at the watched files (a few stat
calls) and, when one changed, loads the policy anew beside the running one (in a worker thread) and swaps
it in whole, so a profile saved from the dashboard is in force within a second.
A reload that fails keeps the running policy, is logged and recorded in `reload_errors`, and is not tried
again until the files change once more. A reload that succeeds is counted and, where head office's sets
arrive, reported (`bundles.sets.report_loaded`), so `appliance sync` sees which set each service runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from appliance.bundles.sets import report_loaded
from appliance.events.recording import EventLog
from appliance.in_force.bindings import Bindings, Bound
from appliance.in_force.controls import ControlsFollower
from appliance.in_force.live import Live, changed, load_live, stamp_of
from filters.errors import ApplianceError
from profiles.controls import Controls

HAND_OVER_S = 0.25
WATCH_S = 2.0
CHECK_S = 0.25


class Follower:
    """Holds the policy in force (`live`) for one service named `role` ("dns", "proxy"), and follows its
    files and the store. `log` is the service's own logger: its lines read as they always have."""

    def __init__(
        self,
        live: Live,
        *,
        role: str,
        config_path: Path | None,
        events: EventLog | None,
        log: logging.Logger,
    ) -> None:
        self.live = live
        self.role = role
        self.config_path = config_path
        self.events = events
        self.log = log
        self.bindings = Bindings(live.config.events_path, live.zone)
        self.bound: Bound | None = None
        self.controls = ControlsFollower(live.config.events_path, live.zone)
        self._controls_again = True  # the sign-ins or the policy changed: the budgets are read anew
        self.reloads = 0
        self.reload_errors: list[str] = []  # why each refused reload was refused, oldest first

    # ---- every quarter second ----

    def hand_over(self, now: float) -> Bound | Controls | None:
        """Hand the events gathered so far to the writer, and take in a change of sign-ins or named
        devices, or of staff's controls, from the store (returned: the controls when they changed, else
        the bindings when they did, else None). `now` is the wall clock (the store's)."""
        if self.events is not None:
            self.events.hand_over()
        live = self.live
        bound = self.bindings.poll(now)
        if bound is not None:
            self.bound = bound
            live.bind(bound)
            self._controls_again = True
        again, self._controls_again = self._controls_again, False
        controls = self.controls.poll(now, live.policy.profiles, live.sessions, again=again)
        if controls is not None:
            live.control(controls)
            return controls
        return bound

    async def hand_over_every(self, every: float, taken: Callable[[Bound | Controls], None]) -> None:
        """`hand_over` every `every` seconds until cancelled; `taken` hears of each change taken in."""
        while True:
            await asyncio.sleep(every)
            bound = self.hand_over(time.time())
            if bound is not None:
                taken(bound)

    # ---- reloads ----

    async def reload(self) -> Live | None:
        """Load the configuration, lists and policy anew and swap them in (the new `Live`); on any error
        keep the running policy, log and record why, and return None."""
        loop = asyncio.get_running_loop()
        try:
            new = await loop.run_in_executor(None, load_live, self.config_path)
        except ApplianceError as e:
            self.refuse(e)
            return None
        return self.take(new)

    def refuse(self, error: ApplianceError) -> None:
        """A reload failed: the running policy stays, and these files are not tried again until they
        change once more (not every few seconds)."""
        self.log.error("reload refused, the running policy stays: %s", error)
        self.reload_errors.append(str(error))
        self.live.stamp = stamp_of(self.live.config)

    def take(self, new: Live) -> Live:
        """Swap `new` in, with the sign-ins and named devices in force, count it and report its set."""
        if self.bound is not None:
            new.bind(self.bound)
        new.control(self.live.controls)
        self._controls_again = True  # a profile's budget may have changed
        self.live = new
        self.reloads += 1
        self.report()
        return new

    def report(self) -> None:
        """Say which head-office set this service runs (only where sets arrive)."""
        config = self.live.config
        if config.sync:
            report_loaded(config.data_dir, self.role, config.set_dir)

    async def watch(
        self,
        every: float,
        tick: Callable[[], None],
        reloaded: Callable[[Live], None],
        *,
        check: float = CHECK_S,
    ) -> None:
        """Until cancelled: every `every` seconds `tick`; every `check` seconds, reload if a watched file
        changed (`reloaded` hears of each new policy swapped in). Any error is logged and the watch goes
        on."""
        next_tick = time.monotonic() + every
        while True:
            await asyncio.sleep(check)
            try:
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + every
                    tick()
                if changed(self.live):
                    new = await self.reload()
                    if new is not None:
                        reloaded(new)
            except Exception:  # the watch must outlive any one bad reload
                self.log.exception("watching for changes failed")

    def close(self) -> None:
        self.bindings.close()
        self.controls.close()
