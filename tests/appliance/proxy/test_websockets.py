"""Websockets: each chat message a child sends is checked for personal information; a blocked one is
dropped (never reaches the site), and what the site sends is left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy import websocket
from mitmproxy.test import taddons, tflow
from wsproto.frame_protocol import Opcode

from appliance.proxy.identify import Identify
from appliance.proxy.shared import Shared
from appliance.proxy.websockets import Websockets
from tests.appliance.proxy.world import CHILD, STAFF, shared, through

EMAIL = b"my email is amira.khan@gmail.com"


@pytest.fixture
def world(tmp_path: Path) -> Shared:
    return shared(tmp_path)


@pytest.mark.parametrize(
    ("client", "from_client", "text", "dropped"),
    [
        (CHILD, True, b"see you at the park", False),
        (CHILD, True, EMAIL, True),
        (CHILD, False, EMAIL, False),  # the site's message: not the child's to give away
        (STAFF, True, EMAIL, False),  # staff: not checked
    ],
)
def test_a_message_giving_personal_information_away_is_dropped(
    world: Shared, client: str, from_client: bool, text: bytes, dropped: bool
) -> None:
    f = tflow.twebsocketflow()
    f.client_conn.peername = (client, 50000)
    f.request.headers["host"] = f.request.host
    through([Identify(world)], "requestheaders", f=f)
    assert f.websocket is not None
    f.websocket.messages.append(websocket.WebSocketMessage(Opcode.TEXT, from_client, text))
    addon = Websockets(world)
    with taddons.context(addon, loadcore=False):
        addon.websocket_message(f)
    assert len(f.websocket.messages) == 1  # only the message in hand is kept
    assert f.websocket.messages[-1].dropped is dropped
