"""Our addons as one mitmproxy addon: each hook any of them has calls theirs, in the order listed.

mitmproxy asks every addon in its chain about every hook of every flow, and spends a few microseconds of
its own on each (a guard against the addon's errors, a coroutine, a walk of its children): ten addons of
ours in the chain would cost a fifth of a request's CPU more than one. `InOrder` looks the hooks up once,
so mitmproxy sees one addon, as it saw the one big addon before, and each hook costs a call per addon that
has it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mitmproxy import hooks
from mitmproxy.proxy import layers, server_hooks  # noqa: F401  (their hooks are defined by now)


class InOrder:
    """One mitmproxy addon calling `addons`' hooks in order. As in mitmproxy's own chain, an addon that
    raises is logged by mitmproxy; the ones after it are not called for that event (ours catch their
    own errors and fail closed)."""

    def __init__(self, *addons: object) -> None:
        self.steps = addons
        names = {name for addon in addons for name in dir(addon) if name in hooks.all_hooks}
        for name in sorted(names):
            calls = [getattr(addon, name) for addon in addons if callable(getattr(addon, name, None))]
            setattr(self, name, _chained(calls))


def _chained(calls: list[Callable[..., Any]]) -> Callable[..., Any]:
    if len(calls) == 1:
        return calls[0]
    if any(inspect.iscoroutinefunction(call) for call in calls):

        async def in_turn_async(*args: Any) -> None:
            for call in calls:
                result = call(*args)
                if inspect.isawaitable(result):
                    await result

        return in_turn_async

    def in_turn(*args: Any) -> None:
        for call in calls:
            call(*args)

    return in_turn
