"""Route: a connection goes to the decided name as the appliance resolves it for the device; the
appliance itself is reached only on its open ports, and the centre's own networks not at all for a
child."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mitmproxy.proxy import server_hooks
from mitmproxy.test import taddons, tflow

from appliance.proxy.route import Route
from appliance.proxy.shared import Shared
from tests.appliance.proxy.world import CHILD, shared


@pytest.fixture
def world(tmp_path: Path) -> Shared:
    return shared(tmp_path)


def _connect(world: Shared, client: str, host: str, port: int) -> tuple[object, str | None]:
    server = tflow.tserver_conn()
    server.address = (host, port)
    server.error = None
    client_conn = tflow.tclient_conn()
    client_conn.peername = (client, 50000)
    route = Route(world)
    with taddons.context(route, loadcore=False):
        asyncio.run(route.server_connect(server_hooks.ServerConnectionHookData(server, client_conn)))
    return server.address, server.error


@pytest.mark.parametrize(
    ("host", "port", "refused"),
    [
        ("93.184.216.34", 443, ""),  # the web, by address: decided on it elsewhere, connected to
        ("127.0.0.1", 8000, ""),  # the appliance's own pages (dashboard.listen), by its own address
        ("127.0.0.1", 22, "is the appliance itself"),
        ("192.168.1.10", 80, "is on the centre's own network"),
        ("10.0.0.1", 443, "is on the centre's own network"),
        ("adult.example", 443, "is blocked for this device"),  # never looked up
    ],
)
def test_a_connection_goes_only_where_the_device_may_go(
    world: Shared, host: str, port: int, refused: str
) -> None:
    address, error = _connect(world, CHILD, host, port)
    if refused:
        assert error is not None and refused in error
    else:
        assert error is None and address == (host, port)
