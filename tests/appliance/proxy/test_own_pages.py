"""OwnPages: the appliance's own pages are told who asks (signed, by the proxy alone), its CA is offered
on the portal's hosts only, and a report form posted back is accepted once, from the device that was
shown the block, on the blocked host."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from appliance.forwarding import forwarded_client, forwarding_key
from appliance.proxy.identify import Identify
from appliance.proxy.own_pages import REPORT_MAX_BYTES, OwnPages
from appliance.proxy.report import REPORT_PATH, Blocked, make_token
from appliance.proxy.shared import Shared
from tests.appliance.proxy.world import CHILD, GUEST, PORTAL, TEEN, flow, seen, shared, through


@pytest.fixture
def world(tmp_path: Path) -> Shared:
    return shared(tmp_path)


def _addons(world: Shared) -> list[Any]:
    return [Identify(world), OwnPages(world)]


def test_the_proxy_names_the_asking_device_to_the_appliances_own_pages_only(world: Shared) -> None:
    """Requests to the appliance's own pages carry the device's address in X-Appliance-Client, signed by
    the proxy: a value the device sent itself (to pass for a staff PC at the dashboard) is replaced, and
    no other site is ever sent the header (nor a device's address)."""
    key = forwarding_key(world.live.config.data_dir)
    own = flow(CHILD, f"http://{PORTAL}/portal", X_Appliance_Client="127.0.0.1")
    through(_addons(world), "requestheaders", f=own)
    (value,) = own.request.headers.get_all("X-Appliance-Client")
    assert forwarded_client("127.0.0.1", value, key, time.time()) == CHILD
    elsewhere = flow(CHILD, "http://wiki.example/wiki/Rainbow", X_Appliance_Client="127.0.0.1")
    through(_addons(world), "requestheaders", f=elsewhere)
    assert "X-Appliance-Client" not in elsewhere.request.headers


@pytest.mark.parametrize(
    ("url", "status", "kind"),
    [
        (f"http://{PORTAL}/ca", 200, "text/html; charset=utf-8"),
        (f"http://{PORTAL}/ca/own", 200, "text/html; charset=utf-8"),
        (f"http://{PORTAL}/ca.pem", 200, "application/x-pem-file"),
        (f"http://{PORTAL}/ca.crt", 200, "application/x-pem-file"),
        (f"http://{PORTAL}/ca.der", 200, "application/x-x509-ca-cert"),
        (f"http://{PORTAL}/ca.cer?x=1", 200, "application/x-x509-ca-cert"),
        (f"http://{PORTAL}/portal", 0, ""),  # the portal's own page: on to the portal
        ("http://wiki.example/ca.pem", 0, ""),  # another site's path of that name: not ours
    ],
)
def test_the_ca_is_offered_on_the_portals_hosts(world: Shared, url: str, status: int, kind: str) -> None:
    f = through(_addons(world), "requestheaders", f=flow(CHILD, url))
    assert (f.response.status_code if f.response else 0) == status
    if f.response is not None:
        assert f.response.headers["content-type"] == kind and seen(f).ours


def test_the_own_devices_page_is_for_children_and_the_staff_page_for_staff(world: Shared) -> None:
    own = through(_addons(world), "requestheaders", f=flow(GUEST, f"http://{PORTAL}/ca/own"))
    staff = through(_addons(world), "requestheaders", f=flow(GUEST, f"http://{PORTAL}/ca"))
    assert own.response is not None and staff.response is not None
    assert "See why a site is blocked, on your own phone" in (own.response.get_text() or "")
    assert "Installing this appliance's certificate" in (staff.response.get_text() or "")


def test_a_device_that_downloads_the_certificate_is_asked_again_whether_it_trusts_it(world: Shared) -> None:
    now = time.monotonic()
    world.trust.may_show_certificate(GUEST, "conn-1", now)
    world.trust.ended("conn-1", trusted=False, now=now)
    through(_addons(world), "requestheaders", f=flow(GUEST, f"http://{PORTAL}/ca/own"))
    assert world.trust.trusts(GUEST, now) is False  # reading the page changes nothing
    through(_addons(world), "requestheaders", f=flow(GUEST, f"http://{PORTAL}/ca.der"))
    assert world.trust.trusts(GUEST, now) is None


def _report(world: Shared, client: str, host: str, token: str, size: int | None = None) -> Any:
    """The form posted: its head (`requestheaders`), then, unless the flow was closed, its body."""
    form = f"token={token}&note=it+is+a+school+site".encode()
    f = flow(client, f"http://{host}{REPORT_PATH}", "POST")
    f.request.headers["content-type"] = "application/x-www-form-urlencoded"
    f.request.content = form
    f.request.headers["content-length"] = str(len(form) if size is None else size)
    through(_addons(world), "requestheaders", f=f)
    return f if f.error is not None else through(_addons(world), "request", f=f)


def test_a_report_is_accepted_once_from_the_blocked_device_for_the_blocked_host(world: Shared) -> None:
    blocked = Blocked("social.example", "Social networks", time.time(), CHILD)
    token = make_token(world.authority.report_key, blocked)
    other_device = _report(world, TEEN, "social.example", token)
    other_host = _report(world, CHILD, "wiki.example", token)
    accepted = _report(world, CHILD, "social.example", token)
    again = _report(world, CHILD, "social.example", token)
    forged = _report(world, CHILD, "social.example", token[:-2] + "xx")
    statuses = [f.response.status_code for f in (other_device, other_host, accepted, again, forged)]
    assert statuses == [400, 400, 200, 400, 400]
    assert seen(accepted).verdict is not None and seen(other_device).verdict is None


def test_a_report_form_too_big_to_be_one_is_not_read(world: Shared) -> None:
    blocked = Blocked("social.example", "Social networks", time.time(), CHILD)
    f = _report(
        world, CHILD, "social.example", make_token(world.authority.report_key, blocked), REPORT_MAX_BYTES + 1
    )
    assert f.error is not None and seen(f).ours  # the connection is closed, the site never asked
