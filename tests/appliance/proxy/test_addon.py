"""The addon on mitmproxy's own fake flows: failure choices, and what the log keeps of an address."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy.test import tflow, tutils

import appliance.proxy.addon as addon
from appliance.config import load_config
from appliance.forwarding import forwarded_client, forwarding_key
from appliance.in_force.live import load_live
from appliance.lists import compile_lists
from appliance.proxy.addon import Monitor
from appliance.proxy.ca import ensure_authority
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict
from tests.appliance.proxy.conftest import KIDS, STAFF, TEENS, Origin, write_config


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    folder = tmp_path_factory.mktemp("addon")
    origin = Origin(ca_pem=folder / "none.pem")
    (folder / "none.pem").write_text("")
    config_path = write_config(folder, origin, 18080)  # never listened on: no proxy runs here
    config = load_config(config_path)
    compile_lists(config, now=dt.datetime.now(dt.UTC))
    live = load_live(config_path)
    yield Monitor(live, ensure_authority(folder / "ca"), None, config_path)


def _flow(client: str, url: str, **request: object) -> tflow.HTTPFlow:
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    flow = tflow.tflow(req=tutils.treq(scheme=scheme.encode(), host=host, port=80, path=f"/{path}".encode()))
    flow.request.headers["host"] = host
    for name, value in request.items():
        setattr(flow.request, name, value)
    flow.client_conn.peername = (client, 50000)
    return flow


def _broken(*args: object, **kwargs: object) -> Verdict:
    raise RuntimeError("a scorer fell over")


def test_a_childs_request_fails_closed_when_deciding_raises(
    monitor: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(addon, "decide", _broken)
    flow = _flow(KIDS, "http://en.wikipedia.org/wiki/Rainbow")
    monitor.requestheaders(flow)
    assert flow.response is not None and flow.response.status_code == 503
    assert "cannot open just now" in flow.response.get_text()


def test_a_staff_request_fails_open_when_deciding_raises(
    monitor: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(addon, "decide", _broken)
    flow = _flow(STAFF, "http://en.wikipedia.org/wiki/Rainbow")
    monitor.requestheaders(flow)
    assert flow.response is None  # let through: staff are not stopped by our fault


def test_a_page_scorer_error_replaces_the_page_for_a_child(
    monitor: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = _flow(KIDS, "http://en.wikipedia.org/wiki/Rainbow")
    monitor.requestheaders(flow)
    assert flow.response is None
    flow.response = tutils.tresp(content=b"<html>a page</html>")
    flow.response.headers["content-type"] = "text/html"
    monitor.responseheaders(flow)
    monkeypatch.setattr(addon, "judge_text", _broken)
    monitor.response(flow)
    assert flow.response.status_code == 503 and b"a page" not in (flow.response.content or b"")


def test_pages_are_held_for_scoring_only_when_the_profile_scores_them(monitor: Monitor) -> None:
    for client, html, held in [
        (KIDS, "text/html", True),
        (KIDS, "video/mp4", False),
        (STAFF, "text/html", False),
    ]:
        flow = _flow(client, "http://en.wikipedia.org/")
        monitor.requestheaders(flow)
        flow.response = tutils.tresp(content=b"x")
        flow.response.headers["content-type"] = html
        monitor.responseheaders(flow)
        assert (flow.response.stream is False or flow.response.stream is None) is held, (client, html)


def test_an_upload_too_big_to_read_is_streamed_not_held(monitor: Monitor) -> None:
    flow = _flow(TEENS, "http://uploads.example/photo")
    flow.request.method = "POST"
    flow.request.headers["content-type"] = "image/jpeg"
    flow.request.headers["content-length"] = str(5 << 20)
    monitor.requestheaders(flow)
    assert flow.request.stream and flow.response is None


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
    assert addon._kept_url("http://a.example/p?q=secret", verdict) == kept


def test_the_authority_is_made_once_per_appliance_with_a_private_key(tmp_path: Path) -> None:
    first = ensure_authority(tmp_path / "ca", "Riverside")
    again = ensure_authority(tmp_path / "ca", "Riverside")
    other = ensure_authority(tmp_path / "other", "Riverside")
    assert first.fingerprint == again.fingerprint != other.fingerprint
    assert (tmp_path / "ca" / "mitmproxy-ca.pem").stat().st_mode & 0o077 == 0
    assert b"PRIVATE KEY" not in first.cert_pem


def test_a_portal_sign_in_puts_the_device_under_the_childs_profile(tmp_path: Path) -> None:
    """The proxy follows the store's sessions as the DNS filter does: a guest device signed in on the
    portal is answered under the child's profile (under-10: only the allowlist), and after sign-out as a
    guest again."""
    import time

    from appliance.store import people
    from appliance.store.schema import connect

    origin = Origin(ca_pem=tmp_path / "none.pem")
    (tmp_path / "none.pem").write_text("")
    config_path = write_config(tmp_path, origin, 18080)
    config = load_config(config_path)
    compile_lists(config, now=dt.datetime.now(dt.UTC))
    m = Monitor(load_live(config_path), ensure_authority(tmp_path / "ca"), None, config_path)
    device = "127.0.0.60"  # unknown to the configuration: a guest

    def answer() -> int:
        flow = _flow(device, "http://www.example.org/")
        m.requestheaders(flow)
        return flow.response.status_code if flow.response is not None else 0

    assert answer() == 0  # a guest may go on to the site
    store = connect(config.events_path)
    child = people.add_child(store, "Amira", "under-10", "4826", time.time())
    session = people.start_session(store, child.id, device, device, time.time(), time.time() + 3600, 1200)
    m.follow_bindings()
    assert answer() == 403  # the block page
    people.end_session(store, session, "logout", time.time())
    m.follow_bindings()
    assert answer() == 0


def test_the_proxy_names_the_asking_device_to_the_appliances_own_pages_only(monitor: Monitor) -> None:
    """Requests to the appliance's own pages carry the device's address in X-Appliance-Client, signed by the
    proxy: a value the device sent itself (to pass for a staff PC at the dashboard) is replaced, and no
    other site is ever sent the header (nor a device's address)."""
    key = forwarding_key(monitor.live.config.data_dir)
    flow = _flow(KIDS, "http://appliance.lan/portal")
    flow.request.headers["X-Appliance-Client"] = "127.0.0.1"
    monitor.requestheaders(flow)
    (value,) = flow.request.headers.get_all("X-Appliance-Client")
    assert forwarded_client("127.0.0.1", value, key, time.time()) == KIDS
    elsewhere = _flow(KIDS, "http://en.wikipedia.org/wiki/Rainbow")
    elsewhere.request.headers["X-Appliance-Client"] = "127.0.0.1"
    monitor.requestheaders(elsewhere)
    assert "X-Appliance-Client" not in elsewhere.request.headers
