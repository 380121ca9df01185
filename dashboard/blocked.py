"""The block page for names the DNS filter answered with the appliance's address (`blocked_answer:
block-page`): a browser that is not sent through the proxy then asks the dashboard's web server for the
blocked site. It gets the proxy's block page (appliance/pages.py), with the reasons the policy gives
for that device now, instead of the dashboard."""

from __future__ import annotations

import ipaddress
import socket

from flask import Response, request

from appliance.pages import block_page
from dashboard.database import config, identity_of, local_time, now, policy
from filters.errors import ApplianceError
from filters.names import BadName, normalise_host
from profiles.decide import decide
from profiles.policy import Policy
from profiles.request import Channel, Request
from profiles.verdict import Action, Verdict


def foreign_host() -> str | None:
    """The site a request names when it is not the appliance: not one of its portal names
    (`policy.portal_hosts`), not the machine's own name, not an address, not `localhost`; None for the
    appliance's own pages."""
    host = request.host.rsplit(":", 1)[0] if not request.host.startswith("[") else request.host
    host = host.strip("[]").rstrip(".").lower()
    if not host or host == "localhost":
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    portal = config().policy.portal_hosts
    if any(host == p or host.endswith("." + p) for p in portal):
        return None
    if host.split(".", 1)[0] == socket.gethostname().split(".", 1)[0].lower():  # raspberrypi(.local)
        return None
    try:
        return normalise_host(host)
    except BadName:
        return host


def _verdict(host: str, address: str) -> tuple[Verdict, Policy | None]:
    """The policy's verdict on `host` for the device at `address` now (a plain block when the policy
    cannot be loaded: the DNS filter already decided)."""
    try:
        in_force = policy()
    except (ApplianceError, OSError):
        return Verdict(Action.BLOCK, ""), None
    verdict = decide(Request(host, None, Channel.DNS), in_force, identity_of(address), local_time(now()))
    return verdict, in_force


def page(host: str, address: str) -> Response:
    verdict, policy = _verdict(host, address)
    settings = config().proxy
    categories = policy.categories.categories if policy is not None else {}
    html = block_page(
        verdict, categories, host, report=None, helpline=settings.helpline, centre=settings.centre
    )
    return Response(html, status=403, content_type="text/html; charset=utf-8")
