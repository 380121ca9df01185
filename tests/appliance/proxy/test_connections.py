"""Connections: a CONNECT target is decided like any request and a blocked one refused before anything
is contacted; a device whose TLS the appliance decrypts has each request inside decided instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy.test import taddons, tflow, tutils

from appliance.proxy.connections import Connections
from appliance.proxy.shared import Shared
from tests.appliance.proxy.world import CHILD, GUEST, STAFF, TEEN, shared


@pytest.fixture
def world(tmp_path: Path) -> Shared:
    return shared(tmp_path)


@pytest.mark.parametrize(
    ("client", "host", "status"),
    [
        (TEEN, "wiki.example", 0),
        (TEEN, "adult.example", 403),
        (TEEN, "ADULT.example.", 403),  # however it is written
        (GUEST, "social.example", 0),  # its own device, which may trust the centre: decided on its TLS
        (STAFF, "adult.example", 0),  # flagged, not blocked
        (CHILD, "adult.example", 0),  # decrypted: the block page is shown inside the tunnel
    ],
)
def test_a_connect_to_a_blocked_site_is_refused_before_anything_is_contacted(
    world: Shared, client: str, host: str, status: int
) -> None:
    f = tflow.tflow(req=tutils.treq(method=b"CONNECT", host=host, port=443, path=b"", authority=b""))
    f.client_conn.peername = (client, 50000)
    addon = Connections(world)
    with taddons.context(addon, loadcore=False):
        addon.http_connect(f)
    assert (f.response.status_code if f.response is not None else 0) == status
    assert f.request.host == host.lower().rstrip(".")  # the tunnel goes to the decided name
