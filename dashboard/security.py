"""What every request passes through: the staff-network gate, CSRF, sign-in expiry, roles, headers.

- Staff pages answer only addresses in `dashboard.admin_networks`; a child's device gets a 403 page.
  The portal (and its static files) answer everyone.
- Every POST carries the session's CSRF token (a hidden `csrf_token` field), or is refused with 400.
- A staff sign-in ends after `idle_minutes` without a page (the alert banner's polls do not count), and
  after `session_hours` in any case.
- `requires(role)` guards each staff view; the role is kept on the view so a test can check them all.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, abort, current_app, g, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from appliance.forwarding import CLIENT_HEADER, forwarded_client, forwarding_key
from appliance.net import plain_ip, split_host_port
from appliance.store import audit, staff
from appliance.store.staff import Role, StaffUser
from dashboard import blocked
from dashboard.blocked import foreign_host
from dashboard.database import config, now, store

OPEN_BLUEPRINTS = frozenset({"portal"})
# Asked by the pages themselves, not by someone using them (the alert banner's poll, every second; the
# overview's, every few): they do not count as use, or an open page would keep its sign-in alive past the
# idle time for ever.
PASSIVE_ENDPOINTS = frozenset({"alerts.live", "overview.live"})
CSRF_FIELD = "csrf_token"
F = TypeVar("F", bound=Callable[..., Any])


def install(app: Flask) -> None:
    app.before_request(_gate)
    app.after_request(_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user
    app.register_error_handler(HTTPException, _error_page)
    app.context_processor(lambda: {"centre": config().proxy.centre})


def is_open(endpoint: str | None) -> bool:
    """Pages anyone on the network may see: the portal and static files."""
    if endpoint is None:
        return True
    return endpoint == "static" or endpoint.partition(".")[0] in OPEN_BLUEPRINTS


def from_staff_network(address: str) -> bool:
    ip = plain_ip(address)
    if ip is None:
        return False
    return any(ip in ipaddress.ip_network(net) for net in config().dashboard.admin_networks)


def on_staff_port() -> bool:
    """Did the request come in on the staff pages' port (any port, where they have none of their own)?"""
    staff_listen = config().dashboard.staff_listen
    if staff_listen is None:
        return True
    return request.environ.get("SERVER_PORT") == str(split_host_port(staff_listen, 8000)[1])


def client_address() -> str:
    """The device that asked: the address the request came from, or, for a request the appliance's own
    proxy forwarded, the device it names (appliance/forwarding.py)."""
    found = g.get("client")
    if found is None:
        found = g.client = forwarded_client(
            request.remote_addr or "", request.headers.get(CLIENT_HEADER), _forwarding_key(), time.time()
        )
    return str(found)


def _forwarding_key() -> bytes:
    key: bytes | None = current_app.extensions.get("forwarding_key")
    if key is None:
        key = current_app.extensions["forwarding_key"] = forwarding_key(config().data_dir)
    return key


def _gate() -> Response | None:
    blocked_site = foreign_host()
    if blocked_site is not None:  # the DNS filter sent a blocked name here: its block page, any path
        return blocked.page(blocked_site, client_address())
    if not is_open(request.endpoint) and not from_staff_network(client_address()):
        abort(403, "This page is for the centre's staff only.")
    if not is_open(request.endpoint) and not on_staff_port():
        # Router mode: this port is the children's (portal, block pages); staff pages have their own,
        # which the firewall opens to the staff networks only.
        staff_port = split_host_port(config().dashboard.staff_listen or "", 8000)[1]
        abort(403, f"The staff pages are on port {staff_port} of this appliance, from the staff network.")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        sent = request.form.get(CSRF_FIELD) or request.headers.get("X-CSRF-Token") or ""
        expected = session.get(CSRF_FIELD, "")
        if not expected or not hmac.compare_digest(sent, expected):
            abort(400, "This form is out of date. Go back, reload the page and try again.")
    if "uid" in session:
        settings = config().dashboard
        t = now()
        if t - session.get("seen", 0) > settings.idle_minutes * 60 or t - session.get("since", 0) > (
            settings.session_hours * 3600
        ):
            if session.get("sid"):
                staff.end_session(store(), str(session["sid"]), t)
            session.pop("uid", None)
            session.pop("sid", None)
        elif request.endpoint not in PASSIVE_ENDPOINTS:
            session["seen"] = t
    return None


def _headers(response: Response) -> Response:
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none';"
        " form-action 'self'; base-uri 'none'",
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"  # children's data is never left in a cache
    return response


def _error_page(error: HTTPException) -> tuple[str, int]:
    portal = is_open(request.endpoint) or not from_staff_network(client_address())
    template = "portal/error.html" if portal else "error.html"
    return render_template(template, error=error), error.code or 500


def csrf_token() -> str:
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(token)


def current_user() -> StaffUser | None:
    """The signed-in member of staff: the cookie's sign-in must still be open in the store (signing out,
    a new password or a new role ends it server-side)."""
    if "user" not in g:
        token = session.get("sid")
        uid = staff.session_user(store(), str(token)) if token else None
        user = staff.get_user(store(), uid) if uid is not None and uid == session.get("uid") else None
        g.user = user if user is not None and not user.disabled else None
    found: StaffUser | None = g.user
    return found


def sign_in_as(user: StaffUser) -> None:
    """Start a fresh staff session (a new CSRF token too: nothing from before the sign-in carries over)."""
    session.clear()
    session.permanent = True
    t = now()
    token = staff.start_session(store(), user.id, t, config().dashboard.session_hours * 3600)
    session.update(uid=user.id, sid=token, since=t, seen=t)
    g.pop("user", None)


def requires(role: Role) -> Callable[[F], F]:
    """The view needs a signed-in member of staff of at least `role`."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))
            if not user.role.may(role):
                abort(403, f"This page needs the {role.label} role.")
            return view(*args, **kwargs)

        guarded.required_role = role  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def log_action(action: str, subject: str, detail: str = "") -> None:
    """Record in the audit log that the signed-in member of staff did `action` to `subject`."""
    user = current_user()
    audit.record(
        store(), now(), user.id if user else None, user.username if user else "-", action, subject, detail
    )
