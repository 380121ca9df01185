"""The worker's addons together, as the worker gives them to mitmproxy (one `InOrder` over the list):
each request goes through every step that applies to it and no other (the real worker runs in
tests/appliance/proxy/test_live.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy.test import tutils

from appliance.events.recording import EventLog
from appliance.proxy.in_order import InOrder
from appliance.proxy.shared import Shared
from appliance.proxy.worker import monitoring_addons
from tests.appliance.proxy.world import CHILD, PORTAL, TEEN, flow, seen, shared, through


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Shared]:
    found = shared(tmp_path)
    found.events = EventLog(tmp_path / "events.sqlite", found.live.zone)
    yield found
    found.events.close()


@pytest.mark.parametrize(
    ("client", "url", "status", "logged"),
    [
        (CHILD, "http://adult.example/", 403, "block"),  # decided, the block page, logged
        (CHILD, f"http://{PORTAL}/ca.pem", 200, ""),  # the appliance's own: never decided as a site
        (TEEN, "http://social.example/", 200, "flag"),  # on to the site, flagged for staff
        (TEEN, "http://wiki.example/", 200, ""),  # allowed: only counted
    ],
)
def test_each_request_goes_through_the_steps_that_apply_to_it(
    world: Shared, client: str, url: str, status: int, logged: str
) -> None:
    addons = [InOrder(*monitoring_addons(world))]
    f = through(addons, "requestheaders", "request", f=flow(client, url))
    if f.response is None:
        f.response = tutils.tresp(content=b"<p>the page</p>")
        through(addons, "responseheaders", f=f)
    through(addons, "response", f=f)
    assert f.response.status_code == status
    assert world.events is not None
    verdict = seen(f).verdict
    assert len(world.events.requests) == (1 if logged else 0)
    if logged:
        assert verdict is not None and verdict.action.value == logged


def test_every_hook_of_every_addon_is_called_in_the_listed_order(world: Shared) -> None:
    calls: list[tuple[str, str]] = []

    class Step:
        def __init__(self, name: str) -> None:
            self.name = name

        def requestheaders(self, flow: object) -> None:
            calls.append((self.name, "requestheaders"))

    class Last(Step):
        async def server_connect(self, data: object) -> None:
            calls.append((self.name, "server_connect"))

    together = InOrder(Step("first"), Step("second"), Last("third"))
    together.requestheaders(None)  # type: ignore[attr-defined]
    asyncio.run(together.server_connect(None))  # type: ignore[attr-defined]
    assert calls == [
        ("first", "requestheaders"),
        ("second", "requestheaders"),
        ("third", "requestheaders"),
        ("third", "server_connect"),
    ]
    hooks = {"requestheaders", "request", "responseheaders", "response", "error", "http_connect"}
    hooks |= {"next_layer", "server_connect", "websocket_message", "running", "done"}
    assert all(callable(getattr(InOrder(*monitoring_addons(world)), hook, None)) for hook in hooks)
