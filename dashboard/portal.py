"""The children's portal: sign in on a shared PC with a name and PIN, accept the centre's rules, see
that the connection is filtered and monitored, sign out. Open to every device.

Signing in binds the device (its MAC where the appliance can see it, else its address) to the child's
profile until sign-out, the idle time-out or closing time: the store's bindings counter tells the DNS
filter and the proxy, which take it in within a second.

Staff on a device of the children's network sign in here too (`/portal/staff`, with their staff name and
password: throttled as the staff sign-in is, and audited): the device gets `portal.staff_profile` the same
way, until sign-out, idle or closing time. It is the only way a device there is staff: never by its MAC or
its address. The password is only taken over HTTPS (the portal's HTTPS port, `dashboard.portal_tls_listen`)
or on a dashboard that listens on loopback alone (the demo).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from datetime import datetime, time, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.net import split_host_port
from appliance.store import audit, people, staff, throttle
from appliance.store.secrets import PepperError
from appliance.store.staff import MAX_FAILURES, SignInRefused
from dashboard.database import config, identity_of, mac_of, now, policy_files, store
from dashboard.security import client_address

log = logging.getLogger(__name__)
bp = Blueprint("portal", __name__)
NAME_PIN_FAILURES = 10  # wrong PINs for one name, from any devices, within FAILURE_WINDOW_S
EARLIEST_OPENING = 6  # o'clock: a closing time before this belongs to the night after the day


def rules_text() -> str:
    path = config().portal.rules or Path(str(resources.files("appliance") / "defaults" / "rules.txt"))
    return path.read_text(encoding="utf-8")


def rules_version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def closing_time(t: float) -> float:
    """Today's closing time (the centre's local time), as a timestamp."""
    zone = ZoneInfo(config().policy.timezone)
    local = datetime.fromtimestamp(t, zone)
    hour, minute = (int(x) for x in config().portal.closing_time.split(":"))
    # A closing time in the small hours (a late club closing at 01:00) is the next morning's.
    late = hour == 24 or (hour < EARLIEST_OPENING and local.hour >= EARLIEST_OPENING)
    day = local.date() + timedelta(days=1 if late else 0)
    return datetime.combine(day, time(hour % 24, minute), zone).timestamp()


def _device() -> tuple[str, str]:
    """(the device's key, its address): the MAC from the DHCP leases or the neighbour table where the
    appliance sees it (it stays the same when the address changes), else the address."""
    address = client_address()
    return mac_of(address) or address, address


def _shared_pc() -> bool:
    """Is the asking device one of the centre's own (managed) PCs? Only those list children's names:
    a visitor's phone on the Wi-Fi must not learn who comes to the centre."""
    return identity_of(client_address()).managed


def _form(error: str = "", name: str = "", status: int = 200) -> tuple[str, int]:
    text = rules_text()
    listed = config().portal.show_names and _shared_pc()
    names = [c.display_name for c in people.children(store())] if listed else []
    return (
        render_template(
            "portal/signin.html",
            error=error,
            name=name,
            names=sorted(set(names)),
            rules=text,
            closing=config().portal.closing_time,
        ),
        status,
    )


@bp.route("/portal")
def index() -> str | tuple[str, int]:
    device, _ = _device()
    session = people.session_on(store(), device, now())
    if session is not None:
        return render_template("portal/welcome.html", session=session, closing=config().portal.closing_time)
    return _form(name=request.args.get("name", ""))


def _secure_enough() -> bool:
    """May a staff password be sent in this request: over HTTPS, or to a dashboard on loopback alone."""
    if request.is_secure:
        return True
    host = split_host_port(config().dashboard.listen, 8000)[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secure_address() -> str | None:
    """This page on the portal's HTTPS port, if it has one."""
    listen = config().dashboard.portal_tls_listen
    if not listen:
        return None
    port = split_host_port(listen, 443)[1]
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    return f"https://{host}{'' if port == 443 else f':{port}'}{url_for('portal.staff_form')}"


def _staff_form(error: str = "", username: str = "", status: int = 200) -> tuple[str, int]:
    return (
        render_template(
            "portal/staff.html",
            error=error,
            username=username,
            secure=_secure_enough(),
            secure_address=_secure_address(),
            profile=config().portal.staff_profile,
        ),
        status,
    )


@bp.route("/portal/staff")
def staff_form() -> tuple[str, int]:
    return _staff_form()


@bp.route("/portal/staff/signin", methods=["POST"])
def staff_sign_in() -> Response | tuple[str, int]:
    """A member of staff signs in on this device: it gets the staff profile, as a child's session does."""
    if not _secure_enough():
        return _staff_form("Staff passwords are only taken over a secure connection.", status=403)
    form, t = request.form, now()
    device, address = _device()
    username = form.get("username", "").strip()
    expires = closing_time(t)
    if expires <= t:
        return _staff_form(
            f"The centre's day is over (it closes at {config().portal.closing_time}).", username, 403
        )
    if config().portal.staff_profile not in policy_files().profiles:
        return _staff_form("Staff sign-in is not set up on this appliance (no staff profile).", username, 404)
    try:
        user = staff.sign_in(store(), username, form.get("password", ""), address, t)
    except SignInRefused as e:
        audit.record(store(), t, None, username or "-", "portal-sign-in-refused", f"device:{device}", str(e))
        return _staff_form(str(e), username, 401)
    profile = config().portal.staff_profile
    people.start_staff_session(
        store(), user.id, profile, device, address, t, expires, config().portal.idle_minutes * 60.0
    )
    detail = f"profile {profile}, from {address}"
    audit.record(store(), t, user.id, user.username, "portal-sign-in", f"device:{device}", detail)
    return redirect(url_for("portal.index"))


@bp.route("/portal/signin", methods=["POST"])
def sign_in() -> Response | tuple[str, int]:
    form, t = request.form, now()
    device, address = _device()
    name = form.get("name", "").strip()
    if form.get("accept") != "yes":
        return _form("Please read the rules and tick the box to say you agree.", name, 400)
    expires = closing_time(t)
    if expires <= t:
        return _form(f"The centre's day is over (it closes at {config().portal.closing_time}).", name, 403)
    pin = form.get("pin", "")
    # Counted per device, and per name from any device (a child's name tried from many addresses).
    limits = (
        (f"pin:{address}", MAX_FAILURES),
        (f"pin-name:{' '.join(name.split()).casefold()}", NAME_PIN_FAILURES),
    )
    counted = throttle.attempt(store(), limits, t)
    if counted is None:
        return _form("Too many tries. Please ask a member of staff to help you.", name, 429)
    match, unverifiable = None, None
    for child in people.find_child(store(), name):
        try:
            if people.pin_matches(store(), child.id, pin):
                match = child
                break
        except PepperError as e:  # neither right nor wrong: the PIN cannot be checked at all
            unverifiable = e
    if match is None and unverifiable is not None:
        log.error("portal: sign-in refused: %s", unverifiable)
        return _form("Signing in is not working just now. Please ask a member of staff.", name, 503)
    if match is None:
        return _form("That name and PIN do not match. Try again, or ask a member of staff.", name, 401)
    throttle.succeeded(store(), counted, t)
    text = rules_text()
    people.start_session(
        store(),
        match.id,
        device,
        address,
        t,
        expires,
        config().portal.idle_minutes * 60.0,
        accepted_rules=rules_version(text),
    )
    return redirect(url_for("portal.index"))


@bp.route("/portal/signout", methods=["POST"])
def sign_out() -> Response:
    device, _ = _device()
    session = people.session_on(store(), device, now())
    if session is not None:
        people.end_session(store(), session.id, "logout", now())
        if session.staff is not None:
            audit.record(
                store(), now(), session.staff, session.display_name, "portal-sign-out", f"device:{device}", ""
            )
    return redirect(url_for("portal.index", signed_out=1))


@bp.route("/portal/guest")
def guest() -> str:
    return render_template("portal/guest.html")
