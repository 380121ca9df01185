"""A proxy world in memory for the addons' unit tests: the shared policy of tests/profiles/sample_policy.py
over its in-memory index, with three devices on loopback, and mitmproxy's fake flows (`tflow`). Only the
configuration file and the CA are written (to a temporary folder); nothing is compiled."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mitmproxy.proxy.layers import http
from mitmproxy.test import taddons, tflow, tutils

from appliance.config import load_config
from appliance.in_force.live import Live
from appliance.proxy.ca import ensure_authority
from appliance.proxy.shared import KEY, Seen, Shared
from profiles.identity import Devices
from profiles.policy import Policy
from profiles.profile import OnError, PersonalInfoRule, PhraseRule
from profiles.verdict import Action, LogDetail
from tests.profiles.sample_policy import (
    CATEGORIES,
    LONDON,
    PROFILES,
    SAFE_SEARCH,
    WATCH,
    build_index,
    profile,
)

# Devices by their loopback address, as tests/appliance/proxy/conftest.py tells them apart.
CHILD, TEEN, STAFF, GUEST = "127.0.0.31", "127.0.0.32", "127.0.0.33", "127.0.0.34"
PORTAL = "appliance.lan"


def policy() -> Policy:
    """The sample policy, with a child's profile that scores pages, checks what is sent and logs every
    request, and a staff profile that fails open."""
    profiles = dict(PROFILES)
    profiles["child"] = profile(
        "child",
        blocked_categories=frozenset({"adult", "social"}),
        personal_info=PersonalInfoRule(Action.BLOCK),
        phrases=PhraseRule({"adult": 5}),
        blocked_downloads=frozenset({"exe"}),
        intercept_tls=True,
        log_allowed=LogDetail.EVENT,
    )
    profiles["staff"] = replace(PROFILES["staff"], on_error=OnError.ALLOW)
    return Policy(
        CATEGORIES,
        profiles,
        build_index(),
        LONDON,
        SAFE_SEARCH,
        WATCH,
        help_services=frozenset({"childline.org.uk"}),
        portal_hosts=frozenset({PORTAL}),
    )


def shared(folder: Path) -> Shared:
    """One worker's shared state over the in-memory policy (no event log)."""
    config_path = folder / "appliance.yaml"
    config_path.write_text(
        f"""data_dir: {folder / "var"}
policy:
  timezone: Europe/London
  portal_hosts: [{PORTAL}]
devices:
  - {{name: kids-pc, network: {CHILD}, profile: child, managed: true}}
  - {{name: teen-laptop, network: {TEEN}, profile: teen, managed: true}}
  - {{name: staff-laptop, network: {STAFF}, profile: staff}}
dns:
  upstreams: ["127.0.0.1:9"]
""",
        encoding="utf-8",
    )
    config = load_config(config_path)
    live = Live(config, policy(), Devices(config.devices), ZoneInfo("Europe/London"))
    return Shared(live, ensure_authority(folder / "ca"), None, config_path)


def flow(client: str, url: str, method: str = "GET", **headers: str) -> tflow.HTTPFlow:
    """A request from the device at `client` for `url`, as mitmproxy hands it to the addons."""
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    port = 443 if scheme == "https" else 80
    request = tutils.treq(scheme=scheme.encode(), host=host, port=port, path=f"/{path}".encode())
    request.method = method
    f = tflow.tflow(req=request)
    f.request.headers["host"] = host
    for name, value in headers.items():
        f.request.headers[name.replace("_", "-")] = value
    f.client_conn.peername = (client, 50000)
    return f


def seen(f: tflow.HTTPFlow) -> Seen:
    found = f.metadata[KEY]
    assert isinstance(found, Seen)
    return found


def through(addons: list[Any], *steps: str, f: tflow.HTTPFlow) -> tflow.HTTPFlow:
    """`f` through `addons` (in their order, as mitmproxy calls them: taddons' master) for each hook in
    `steps` ("requestheaders", "request", "responseheaders", "response"); a response for the last two
    is the test's to set."""
    events = {
        "requestheaders": http.HttpRequestHeadersHook,
        "request": http.HttpRequestHook,
        "responseheaders": http.HttpResponseHeadersHook,
        "response": http.HttpResponseHook,
    }
    with taddons.context(*addons, loadcore=False) as tctx:
        for step in steps:
            tctx.master.addons.trigger(events[step](f))
    return f
