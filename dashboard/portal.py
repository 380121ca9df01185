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
import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.net import split_host_port
from appliance.store import audit, people, staff
from appliance.store.secrets import PepperError
from appliance.store.staff import SignInRefused
from dashboard import budgets
from dashboard.database import config, identity_of, mac_of, now, policy_files, store
from dashboard.people import MAX_NAME
from dashboard.security import client_address
from profiles.schedule import Outside

log = logging.getLogger(__name__)
bp = Blueprint("portal", __name__)
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


def _wait_text(seconds: float) -> str:
    """A wait in words a child reads: seconds under a minute, else whole minutes (rounded up)."""
    if seconds < 60:
        whole = max(1, math.ceil(seconds))
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _wait_form(wait: people.PinWait, name: str, t: float) -> tuple[str, int, dict[str, str]]:
    """The sign-in page refusing a try unchecked: who or what must wait, and for how long."""
    seconds = max(1.0, wait.until - t)
    if wait.child_locked:
        said = " ".join(name.split())
        error = (
            f"Too many wrong PINs for {said}. Try again in {_wait_text(seconds)}, "
            "or ask a member of staff to unlock it."
        )
    else:
        error = f"Too many wrong PINs on this device. Please wait {_wait_text(seconds)}, then try again."
    page, status = _form(error, name, 429)
    return page, status, {"Retry-After": str(math.ceil(seconds))}


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


@dataclass(frozen=True)
class Closed:
    """A profile's internet closed now (outside its opening hours): when it opens again, in words
    ("today at 15:00", "tomorrow at 15:00", "on Monday 7 December at 15:00"; "" if it never does),
    and whether its allowlist still works meanwhile."""

    opens: str
    allowlist: bool


def closed_now(profile: str, t: float) -> Closed | None:
    """Whether `profile`'s internet is closed at `t` (by its opening hours, in the centre's time zone):
    when it opens, or None if it is open (or flagged only, or has no opening hours)."""
    found = policy_files().profiles.get(profile)
    if found is None or found.schedule is None or found.schedule.outside is Outside.FLAG:
        return None
    zone = ZoneInfo(config().policy.timezone)
    local = datetime.fromtimestamp(t, zone)
    if found.schedule.is_open(local, zone):
        return None
    at = found.schedule.next_opening(local, zone)
    allowlist = found.schedule.outside is Outside.ALLOWLIST
    if at is None:
        return Closed("", allowlist)
    days = (at.date() - local.date()).days
    day = "today" if days == 0 else "tomorrow" if days == 1 else f"on {at:%A} {at.day} {at:%B}"
    return Closed(f"{day} at {at:%H:%M}", allowlist)


@bp.route("/portal")
def index() -> str | tuple[str, int]:
    device, _ = _device()
    t = now()
    session = people.session_on(store(), device, t)
    if session is not None:
        lines = _time_left(session, t)
        return render_template(
            "portal/welcome.html",
            session=session,
            closing=config().portal.closing_time,
            closed=closed_now(session.profile, t),
            time_left=lines,
            nearly=[line for line in lines if line.state == "warned"],
        )
    return _form(name=request.args.get("name", ""))


def _time_left(session: people.SessionRecord, t: float) -> list[budgets.LeftLine]:
    """What is left today of a signed-in child's time budget, in lines; [] for staff or no budget."""
    child = people.get_child(store(), session.child) if session.staff is None else None
    found = budgets.today(store(), t).of(child) if child is not None else None
    return budgets.left_lines(found.left) if found is not None else []


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
def sign_in() -> Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    form, t = request.form, now()
    device, address = _device()
    name = form.get("name", "").strip()
    if form.get("accept") != "yes":
        return _form("Please read the rules and tick the box to say you agree.", name, 400)
    expires = closing_time(t)
    if expires <= t:
        return _form(f"The centre's day is over (it closes at {config().portal.closing_time}).", name, 403)
    if len(" ".join(name.split())) > MAX_NAME:
        return _form(f"A name here is at most {MAX_NAME} letters: check the name you typed.", name, 400)
    pin = form.get("pin", "")
    # Counted per child (from any device: only that child is locked) and per device (slowed).
    found = people.find_child(store(), name)
    keys = people.pin_keys(found, name)
    wait = people.try_pin(store(), keys, device, t)
    if wait is not None:
        return _wait_form(wait, name, t)
    match, unverifiable = None, None
    for child in found:
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
    people.right_pin(store(), keys, device, t, match.id)
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
    """What browsing as a guest means; on a device someone is signed in on, who it is, to sign out."""
    device, _ = _device()
    return render_template("portal/guest.html", session=people.session_on(store(), device, now()))
