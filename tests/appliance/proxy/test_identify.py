"""Identify: each web request gets who asks (the device's profile) and the site it is decided on; a
device's own claim to be someone else (X-Appliance-Client) never goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.proxy.identify import Identify
from appliance.proxy.shared import Shared
from tests.appliance.proxy.world import CHILD, GUEST, STAFF, TEEN, flow, seen, shared, through


@pytest.fixture
def world(tmp_path: Path) -> Shared:
    return shared(tmp_path)


@pytest.mark.parametrize(
    ("client", "profile"),
    [(CHILD, "child"), (TEEN, "teen"), (STAFF, "staff"), (GUEST, "guest"), ("::ffff:127.0.0.31", "child")],
)
def test_each_request_is_identified_by_the_device_that_sent_it(
    world: Shared, client: str, profile: str
) -> None:
    f = through([Identify(world)], "requestheaders", f=flow(client, "http://wiki.example/"))
    assert seen(f).identity.profile == profile
    assert seen(f).who.client == client.removeprefix("::ffff:")


@pytest.mark.parametrize(
    ("address", "host_header", "decided", "sent"),
    [
        ("wiki.example", "wiki.example", "wiki.example", ""),
        ("WIKI.example.", "wiki.example", "wiki.example", ""),  # one site, however it is written
        ("wiki.example", "adult.example", "adult.example", "wiki.example"),  # addressed to two: both decided
        ("wiki.example", "not a host!", "", ""),  # names no usable site: decided as such
    ],
)
def test_the_site_decided_on_is_the_one_the_request_names(
    world: Shared, address: str, host_header: str, decided: str, sent: str
) -> None:
    f = flow(CHILD, f"http://{address}/page")
    f.request.headers["host"] = host_header
    through([Identify(world)], "requestheaders", f=f)
    assert (seen(f).host, seen(f).sent_host) == (decided, sent)
    if decided:
        assert f.request.host == decided  # connected to the decided name


def test_a_client_header_the_device_sent_itself_is_dropped(world: Shared) -> None:
    f = flow(CHILD, "http://wiki.example/", X_Appliance_Client="127.0.0.1")
    through([Identify(world)], "requestheaders", f=f)
    assert "X-Appliance-Client" not in f.request.headers


def test_a_request_whose_device_cannot_be_identified_gets_the_unavailable_page(
    world: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ip: str, mac: str | None) -> None:
        raise RuntimeError("the sessions fell over")

    monkeypatch.setattr(world.live, "identify", broken)
    f = through([Identify(world)], "requestheaders", f=flow(STAFF, "http://wiki.example/"))
    assert f.response is not None and f.response.status_code == 503  # not known to be staff: closed
    assert world.errors == 1
