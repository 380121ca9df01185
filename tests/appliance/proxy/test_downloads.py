"""Downloads: a file a child would save is judged by its name, and a blocked type gets the block page."""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy.test import tutils

from appliance.proxy.downloads import Downloads
from appliance.proxy.enforce import Enforce
from appliance.proxy.identify import Identify
from appliance.proxy.shared import Shared
from tests.appliance.proxy.world import CHILD, STAFF, flow, seen, shared, through


@pytest.fixture
def world(tmp_path: Path) -> Shared:
    return shared(tmp_path)


@pytest.mark.parametrize(
    ("client", "disposition", "blocked"),
    [
        (CHILD, 'attachment; filename="setup.exe"', True),
        (CHILD, "attachment; filename*=UTF-8''setup.exe", True),
        (CHILD, 'attachment; filename="games/setup.exe"', True),  # judged by the name, not its folder
        (CHILD, 'attachment; filename="homework.pdf"', False),
        (CHILD, "inline", False),  # no name: nothing to judge
        (STAFF, 'attachment; filename="setup.exe"', False),  # not a blocked type for staff
    ],
)
def test_a_download_is_judged_by_its_name(
    world: Shared, client: str, disposition: str, blocked: bool
) -> None:
    addons = [Identify(world), Enforce(world), Downloads(world)]
    f = through(addons, "requestheaders", f=flow(client, "http://wiki.example/files/get?id=7"))
    f.response = tutils.tresp(content=b"MZ...")
    f.response.headers["content-disposition"] = disposition
    through(addons, "responseheaders", f=f)
    assert (f.response.status_code == 403) is blocked
    assert seen(f).ours is blocked
