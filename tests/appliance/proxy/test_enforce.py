"""Enforce: each web request decided on its site and URL, with the block page in place of a blocked one,
safe search written in, what a child sends checked for personal information, and a switch to another
protocol refused; deciding that fails closes for a child and opens for staff."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mitmproxy.test import tutils

import appliance.proxy.enforce as enforce
import appliance.proxy.identify as identify
from appliance.proxy.enforce import Enforce
from appliance.proxy.identify import Identify
from appliance.proxy.own_pages import OwnPages
from appliance.proxy.shared import Shared
from profiles.verdict import Action, Verdict
from tests.appliance.proxy.world import CHILD, GUEST, STAFF, TEEN, flow, seen, shared, through


@pytest.fixture
def world(tmp_path: Path) -> Shared:
    return shared(tmp_path)


def _addons(world: Shared) -> list[Any]:
    return [Identify(world), OwnPages(world), Enforce(world)]


def _status(f: Any) -> int:
    return f.response.status_code if f.response is not None else 0  # 0: on to the site


@pytest.mark.parametrize(
    ("client", "url", "status", "action"),
    [
        (CHILD, "http://wiki.example/wiki/Rainbow", 0, Action.ALLOW),
        (CHILD, "http://adult.example/", 403, Action.BLOCK),
        (CHILD, "http://social.example/groups", 403, Action.BLOCK),
        (TEEN, "http://social.example/", 0, Action.FLAG),
        (TEEN, "http://social.example/groups", 403, Action.BLOCK),  # the profile's own block entry
        (TEEN, "http://adult.example/health/puberty", 0, Action.ALLOW),  # the profile's own allow entry
        (STAFF, "http://adult.example/", 0, Action.FLAG),
        (GUEST, "http://adult.example/", 403, Action.BLOCK),
        (GUEST, "http://malware.example/", 403, Action.BLOCK),
    ],
)
def test_a_request_is_decided_on_its_site_and_blocked_with_the_block_page(
    world: Shared, client: str, url: str, status: int, action: Action
) -> None:
    f = through(_addons(world), "requestheaders", f=flow(client, url))
    assert _status(f) == status
    verdict = seen(f).verdict
    assert verdict is not None and verdict.action is action
    if status == 403:
        assert "text/html" in f.response.headers["content-type"] and seen(f).ours


def test_a_request_addressed_to_two_sites_is_decided_on_both(world: Shared) -> None:
    f = flow(CHILD, "http://wiki.example/")
    f.request.headers["host"] = "adult.example"
    through(_addons(world), "requestheaders", f=f)
    assert _status(f) == 403
    f = flow(CHILD, "http://adult.example/")
    f.request.headers["host"] = "wiki.example"
    through(_addons(world), "requestheaders", f=f)
    assert _status(f) == 403


def test_a_request_naming_no_usable_site_is_refused_for_a_child(world: Shared) -> None:
    f = flow(CHILD, "http://wiki.example/")
    f.request.headers["host"] = "not a host!"
    through(_addons(world), "requestheaders", f=f)
    assert _status(f) == 403 and seen(f).host == ""


@pytest.mark.parametrize(
    ("client", "safe"),
    [(TEEN, ["active"]), (STAFF, [])],  # staff have safe search off
)
def test_safe_search_is_written_into_a_search(world: Shared, client: str, safe: list[str]) -> None:
    f = through(_addons(world), "requestheaders", f=flow(client, "http://www.google.com/search?q=rainbows"))
    assert _status(f) == 0
    assert f.request.query.get_all("safe") == safe


def _broken(*args: object, **kwargs: object) -> Verdict:
    raise RuntimeError("a scorer fell over")


def test_a_childs_request_fails_closed_when_deciding_raises(
    world: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enforce, "decide", _broken)
    f = through(_addons(world), "requestheaders", f=flow(CHILD, "http://wiki.example/wiki/Rainbow"))
    assert _status(f) == 503
    assert "cannot open just now" in f.response.get_text()


def test_a_staff_request_fails_open_when_deciding_raises(
    world: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enforce, "decide", _broken)
    f = through(_addons(world), "requestheaders", f=flow(STAFF, "http://wiki.example/wiki/Rainbow"))
    assert f.response is None  # let through: staff are not stopped by our fault
    assert world.errors == 1


@pytest.mark.parametrize(("client", "status"), [(CHILD, 503), (STAFF, 0)])
def test_a_step_that_fails_leaves_the_later_steps_nothing_to_do(
    world: Shared, monkeypatch: pytest.MonkeyPatch, client: str, status: int
) -> None:
    """Picking the site raises: a child gets the unavailable page, staff are let through, and either way
    the request is not decided on as if it named no site."""
    monkeypatch.setattr(identify, "request_target", _broken)
    f = through(_addons(world), "requestheaders", f=flow(client, "http://wiki.example/"))
    assert _status(f) == status
    assert seen(f).verdict is None


def test_an_upload_too_big_to_read_is_streamed_not_held(world: Shared) -> None:
    f = flow(TEEN, "http://uploads.example/photo", "POST")
    f.request.headers["content-type"] = "image/jpeg"
    f.request.headers["content-length"] = str(5 << 20)
    through(_addons(world), "requestheaders", f=f)
    assert f.request.stream and f.response is None and not seen(f).inspect


@pytest.mark.parametrize(
    ("client", "form", "status"),
    [
        (CHILD, b"message=see+you+at+the+park", 0),
        (CHILD, b"message=my+email+is+amira.khan%40gmail.com", 403),
        (STAFF, b"message=my+email+is+amira.khan%40gmail.com", 0),  # staff: not checked
    ],
)
def test_what_a_child_sends_is_checked_for_personal_information(
    world: Shared, client: str, form: bytes, status: int
) -> None:
    f = flow(client, "http://wiki.example/talk", "POST")
    f.request.headers["content-type"] = "application/x-www-form-urlencoded"
    f.request.content = form
    through(_addons(world), "requestheaders", "request", f=f)
    assert _status(f) == status


@pytest.mark.parametrize(
    ("client", "upgrade", "killed"),
    [(CHILD, "websocket", False), (CHILD, "h2c", True), (CHILD, "", True), (STAFF, "h2c", True)],
)
def test_a_switch_to_another_protocol_than_websockets_is_refused(
    world: Shared, client: str, upgrade: str, killed: bool
) -> None:
    f = (
        flow(client, "http://wiki.example/chat", Upgrade=upgrade)
        if upgrade
        else flow(client, "http://wiki.example/chat")
    )
    through(_addons(world), "requestheaders", f=f)
    f.response = tutils.tresp(status_code=101, content=b"")
    through(_addons(world), "responseheaders", f=f)
    assert (f.error is not None) is killed
