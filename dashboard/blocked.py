"""The block page for names the DNS filter answered with the appliance's address (`blocked_answer:
block-page`): a browser that is not sent through the proxy then asks the dashboard's web server for the
blocked site. It gets the proxy's block page (appliance/pages.py), with the reasons the policy gives
for that device now, instead of the dashboard.

Its "ask to use this site" posts back to the same host (pages.ASK_PATH), as on the proxy's block page:
the form carries a token signed with the dashboard's key naming the host and the device's address (so
another site cannot ask for a child), and the ask goes to the store (`appliance.store.controls.ask`)
for the device at that address, as it is identified now."""

from __future__ import annotations

import ipaddress
import socket

from flask import Response, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from appliance.pages import ASK_NOTE_MAX, ASK_PATH, ReportForm, ask_offered, asked_page, block_page
from appliance.store import controls
from appliance.store.schema import StoreError
from dashboard.database import config, identity_of, local_time, mac_of, now, policy, store
from filters.errors import ApplianceError
from filters.names import BadName, normalise_host
from profiles.controls import device_key, label_of
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


ASK_TOKEN_TTL_S = 24 * 3600
_ASK_SALT = "childsafe-ask"
_NOT_SENT = (
    "<!doctype html><title>Not sent</title>"
    "<p>Staff could not be asked from here. Please ask a member of staff.</p>"
)


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or b"", salt=_ASK_SALT)


def page(host: str, address: str) -> Response:
    """The block page for `host` (any path), or, for a POST to ASK_PATH, the ask taken."""
    if request.method == "POST" and request.path == ASK_PATH:
        return _ask(host, address)
    verdict, policy = _verdict(host, address)
    settings = config().proxy
    categories = policy.categories.categories if policy is not None else {}
    ask = None
    if ask_offered(verdict):
        ask = ReportForm(ASK_PATH, _signer().dumps([host, address]))
    html = block_page(
        verdict, categories, host, report=None, helpline=settings.helpline, centre=settings.centre, ask=ask
    )
    return Response(html, status=403, content_type="text/html; charset=utf-8")


def _ask(host: str, address: str) -> Response:
    """A block page's ask posted back: taken once its token names this host and this device, and the
    block is still one staff may lift; else "not sent"."""
    try:
        named = _signer().loads(request.form.get("token", ""), max_age=ASK_TOKEN_TTL_S)
    except BadSignature:
        named = None
    verdict, policy = _verdict(host, address)
    if named != [host, address] or policy is None or not ask_offered(verdict):
        return Response(_NOT_SENT, status=400, content_type="text/html; charset=utf-8")
    identity = identity_of(address)
    device = device_key(address, mac_of(address))
    label = label_of(identity, address)
    child = identity.child
    category = next((r.category for r in verdict.reasons if r.category and r.effect is Action.BLOCK), "")
    try:
        controls.ask(
            store(),
            subject=identity.subject,
            child=child.id if child is not None and not child.staff else None,
            device=device,
            client=address,
            label=label,
            host=host,
            category=category,
            profile=identity.profile,
            note=" ".join(request.form.get("note", "").split())[:ASK_NOTE_MAX],
            now=now(),
        )
    except StoreError:
        return Response(_NOT_SENT, status=503, content_type="text/html; charset=utf-8")
    settings = config().proxy
    html = asked_page(helpline=settings.helpline, centre=settings.centre)
    return Response(html, content_type="text/html; charset=utf-8")
