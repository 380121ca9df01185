"""Record: each web request goes into the event log once it is answered, with the verdict the other
addons left; the log keeps a query only where staff must see it (a block or a flag)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy.test import tutils

from appliance.events.recording import EventLog
from appliance.proxy.enforce import Enforce
from appliance.proxy.identify import Identify
from appliance.proxy.record import Record
from appliance.proxy.shared import Shared, kept_url
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict
from tests.appliance.proxy.world import CHILD, TEEN, flow, shared, through


@pytest.mark.parametrize(
    ("action", "flagged", "kept"),
    [
        (Action.BLOCK, False, "http://a.example/p?q=secret"),
        (Action.ALLOW, True, "http://a.example/p?q=secret"),
        (Action.ALLOW, False, "http://a.example/p"),
        (Action.REWRITE, False, "http://a.example/p"),
    ],
)
def test_the_log_keeps_a_query_only_for_blocks_and_flags(action: Action, flagged: bool, kept: str) -> None:
    reasons = (Reason(Step.FLAG_CATEGORY, Action.FLAG, "x"),) if flagged else ()
    verdict = Verdict(action, "p", reasons, log=LogDetail.EVENT)
    assert kept_url("http://a.example/p?q=secret", verdict) == kept


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[tuple[Shared, EventLog]]:
    world = shared(tmp_path)
    events = EventLog(tmp_path / "events.sqlite", world.live.zone)
    world.events = events
    yield world, events
    events.close()


def _answered(world: Shared, client: str, url: str) -> Any:
    addons = [Identify(world), Enforce(world), Record(world)]
    f = through(addons, "requestheaders", f=flow(client, url))
    if f.response is None:
        f.response = tutils.tresp(content=b"<p>the page</p>")
    return through(addons, "response", f=f)


def test_each_block_and_flag_is_recorded_once_with_what_staff_must_see(
    logged: tuple[Shared, EventLog],
) -> None:
    world, events = logged
    _answered(world, CHILD, "http://adult.example/videos?q=secret")
    _answered(world, TEEN, "http://social.example/chat?with=sam")
    _answered(world, CHILD, "http://wiki.example/wiki/Rainbow?from=home")  # log_allowed: event
    _answered(world, TEEN, "http://wiki.example/wiki/Rainbow?from=home")  # log_allowed: count
    rows = [(method, url, status) for _, _, _, _, method, url, status, _, _ in events.requests]
    assert rows == [
        ("GET", "http://adult.example/videos?q=secret", 403),
        ("GET", "http://social.example/chat?with=sam", 200),
        ("GET", "http://wiki.example/wiki/Rainbow", 200),  # allowed: kept without its query
    ]
    assert len(events.counted) == 1
