"""The addon that keeps the policy in force: it runs the worker's follower (hand-over of events and
sign-ins every HAND_OVER_S, a watch of the files every WATCH_S, reload on change or SIGHUP) and makes every
device be identified anew when what identifies it changed."""

from __future__ import annotations

import asyncio
import time

from appliance.in_force.follower import HAND_OVER_S, WATCH_S
from appliance.in_force.live import Live
from appliance.net import is_own_address
from appliance.proxy.shared import Shared, log

OWN_ADDRESSES_EVERY = 30  # watch ticks between fresh looks at the appliance's own addresses


class Follow:
    """Follows the policy in force for the worker's other addons (through `Shared`)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self._tasks: list[asyncio.Task[None]] = []
        self._ticks = 0

    @property
    def reloads(self) -> int:
        return self.shared.follower.reloads

    def running(self) -> None:
        follower = self.shared.follower
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(follower.hand_over_every(HAND_OVER_S, self._bound)))
        self._tasks.append(loop.create_task(follower.watch(WATCH_S, self._tick, self._reloaded)))

    def done(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.shared.follower.close()

    def follow_bindings(self) -> None:
        """Hand the events over and take in a sign-in, sign-out or device change from the store (as the
        follower does every HAND_OVER_S)."""
        bound = self.shared.follower.hand_over(time.time())
        if bound is not None:
            self._bound(bound)

    def _bound(self, _: object) -> None:
        self.shared.forget()

    def _tick(self) -> None:
        """Every WATCH_S, before the follower looks at the files."""
        self._ticks += 1
        if self._ticks % OWN_ADDRESSES_EVERY == 0:
            is_own_address.cache_clear()  # the WAN address may change (a new DHCP lease)
        if self.shared.neighbours.refresh():
            self.shared.forget()

    async def reload(self) -> bool:
        """Load configuration, lists and policy anew and swap them in; on error keep the running ones
        (and record why, in `follower.reload_errors`)."""
        new = await self.shared.follower.reload()
        if new is None:
            return False
        self._reloaded(new)
        return True

    def _reloaded(self, new: Live) -> None:
        self.shared.forget(answers=True)
        log.info("reloaded: %d profiles", len(new.policy.profiles))
