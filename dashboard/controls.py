"""Staff in control, in the moment: switch the internet off (pause) and on again (resume), allow a child
or a device one site or category for a while (grant), and answer the block page's "ask to use this site".

Any member of staff may (each role acts on children). The store keeps every pause, grant and answer and
writes the audit log (`appliance.store.controls`); the DNS filter and the proxy follow it within a
second. The alert banner (dashboard/alerts.py, static/alerts.js) shows the asks live and posts to the
same routes with fetch (JSON back); the pages' forms are sent back where they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.store import controls, people
from appliance.store.schema import StoreError
from appliance.store.staff import Role
from dashboard.database import config, local_time, now, policy_files, store, vocabulary
from dashboard.portal import closing_time as centre_closes
from dashboard.security import current_user, requires
from dashboard.wording import category_label, centre_time
from filters.errors import ApplianceError
from filters.names import BadName, normalise_host
from profiles.controls import Scope, device_key
from profiles.identity import mac_key
from profiles.schedule import ScheduleRule

bp = Blueprint("controls", __name__)

MINUTES = (15, 30, 60)  # the choices offered for a pause or a grant
CLOSING = "closing"  # a grant "until closing": the profile's windows close (else midnight)
MAX_MINUTES = 12 * 60  # a pause or grant typed by hand: at most half a day
MAX_REASON = 200
ASK_REASON = "asked from the block page"  # a grant from the banner's buttons, where no reason is typed


class Refused(Exception):
    """A form that cannot be acted on as it is; the message tells staff what to change."""


def _zone() -> ZoneInfo:
    try:
        return ZoneInfo(config().policy.timezone)
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


def clock(ts: float) -> str:
    """A time today in the centre's zone, `17:45`."""
    return datetime.fromtimestamp(ts, _zone()).strftime("%H:%M")


def closing_time(schedule: ScheduleRule | None, t: float, zone: ZoneInfo) -> float:
    """When "until closing" ends for a profile with `schedule` at `t`: the first minute its windows are
    closed after `t` (within a day), else the centre's next midnight (no schedule, or open all day)."""
    moment = datetime.fromtimestamp(t, zone)
    midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if schedule is not None and schedule.is_open(moment, zone):
        minute = moment.replace(second=0, microsecond=0)
        for _ in range(24 * 60):
            minute += timedelta(minutes=1)
            if not schedule.is_open(minute, zone):
                return minute.timestamp()
    return midnight.timestamp()


def _schedule_of(profile: str) -> ScheduleRule | None:
    try:
        found = policy_files().profiles.get(profile)
    except ApplianceError:
        return None
    return found.schedule if found is not None else None


def _until(choice: str, profile: str, t: float) -> float:
    """The end of a grant chosen as `choice`: minutes (15, 30, 60, or typed), or "closing": when the
    profile's windows close or the centre does (the portal's closing time), whichever comes first."""
    if choice == CLOSING:
        ends = closing_time(_schedule_of(profile), t, _zone())
        centre = centre_closes(t)
        return min(ends, centre) if centre > t else ends
    return t + _minutes(choice) * 60


def _minutes(choice: str) -> int:
    try:
        minutes = int(choice)
    except ValueError:
        raise Refused("Choose how long: 15, 30 or 60 minutes, or until closing.") from None
    if not 1 <= minutes <= MAX_MINUTES:
        raise Refused(f"Choose between 1 and {MAX_MINUTES} minutes.")
    return minutes


def _reason(required: bool = False) -> str:
    reason = " ".join(request.form.get("reason", "").split())[:MAX_REASON]
    if required and not reason:
        raise Refused("Say why (for example: homework on this site). Every grant keeps its reason.")
    return reason


def _by() -> str:
    user = current_user()
    assert user is not None  # every route here requires a member of staff
    return user.username


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def _back(default: str) -> Response:
    """Back to the page the form was on (only a path of this dashboard), else `default`."""
    back = request.form.get("back", "")
    if back.startswith("/") and not back.startswith("//") and "\\" not in back and back.isprintable():
        return redirect(back)
    return redirect(default)


def _done(message: str, **answer: Any) -> Response | tuple[Response, int]:
    if _wants_json():
        return jsonify(done=True, said=message, **answer), 200
    flash(message)
    return _back(url_for("controls.index"))


def _refused(message: str, status: int = 400) -> Response | tuple[Response, int]:
    if _wants_json():
        return jsonify(done=False, said=message), status
    flash(message, "error")
    return _back(url_for("controls.index"))


# ---- what staff can name: a device key, a child, a profile ----


@dataclass(frozen=True)
class Target:
    """What a pause names: its scope, the store's target (device key, child id, profile, "") and the
    label staff read; `profile` is the profile whose schedule "until closing" follows."""

    scope: Scope
    target: str
    label: str
    profile: str = ""


def _device_named(mac: str, address: str) -> str:
    """The key (profiles.controls.device_key) of the device a form names by `mac` or `address`; Refused
    for a MAC that is not one, or neither given."""
    if mac and mac_key(mac) is None:
        raise Refused(f"{mac!r} is not a MAC address.")
    if not mac and not address:
        raise Refused("Name the device by its MAC or its address.")
    return device_key(address, mac or None)


def _device_label(key: str) -> tuple[str, str]:
    """The device's name and profile where staff named it (store or appliance.yaml), else its key."""
    for record in people.devices(store()):
        if key in (record.mac, record.address):
            return record.name, record.profile
    for device in config().devices:
        if key in (device.mac, device.network):
            return device.name, device.profile
    return key, config().policy.guest_profile


def target_of(form: Any) -> Target:
    """The pause's target as a form names it (`scope` and `child`, `mac`/`address`, or `profile`)."""
    try:
        scope = Scope(form.get("scope", ""))
    except ValueError:
        raise Refused("Choose what to pause: a device, a child, a profile or the whole centre.") from None
    if scope is Scope.CHILD:
        child = people.get_child(store(), form.get("child", ""))
        if child is None or child.archived:
            raise Refused("There is no such child.")
        return Target(scope, child.id, child.display_name, child.profile)
    if scope is Scope.DEVICE:
        key = _device_named(form.get("mac", "").strip(), form.get("address", "").strip())
        label, profile = _device_label(key)
        return Target(scope, key, label, profile)
    if scope is Scope.PROFILE:
        name = form.get("profile", "")
        try:
            known = name in policy_files().profiles
        except ApplianceError:
            known = False
        if not known:
            raise Refused("There is no such profile.")
        return Target(scope, name, name, name)
    return Target(scope, "", "the whole centre")


# ---- pages ----


@dataclass(frozen=True)
class ChildChoice:
    id: str
    name: str
    profile: str


def _category_choices() -> list[tuple[str, str]]:
    try:
        categories = policy_files().categories.categories
    except ApplianceError:
        return []
    words = vocabulary()
    return sorted(((name, category_label(name, words)) for name in categories), key=lambda c: c[1].lower())


def _what(host: str | None, category: str | None) -> str:
    if host:
        return host
    return category_label(category or "", vocabulary())


@bp.route("/controls")
@requires(Role.STAFF)
def index() -> str:
    db, t = store(), now()
    try:
        profiles = sorted(policy_files().profiles)
    except ApplianceError:
        profiles = []
    children = [ChildChoice(c.id, c.display_name, c.profile) for c in people.children(db)]
    return render_template(
        "controls/index.html",
        asks=controls.pending_asks(db, t),
        grants=controls.active_grants(db, t),
        pauses=controls.active_pauses(db, t),
        children=children,
        devices=people.devices(db) + list(_configured_devices()),
        profiles=profiles,
        categories=_category_choices(),
        minutes=MINUTES,
        clock=clock,
        when=lambda ts: centre_time(local_time(ts)),
        what=_what,
        category_label=lambda name: category_label(name, vocabulary()) if name else "",
    )


def _configured_devices() -> list[people.DeviceRecord]:
    return [people.DeviceRecord(d.name, d.mac, d.network, d.profile, d.managed) for d in config().devices]


# ---- pause and resume ----


@bp.route("/controls/pause", methods=["POST"])
@requires(Role.STAFF)
def pause() -> Response | tuple[Response, int]:
    """Switch the internet off for a device, a child, a profile or the centre, for 15/30/60 minutes or
    until resumed (`minutes` empty)."""
    t = now()
    try:
        target = target_of(request.form)
        choice = request.form.get("minutes", "")
        minutes = None if choice in ("", "resumed") else _minutes(choice)
        reason = _reason()
        number = controls.pause(
            store(),
            scope=target.scope,
            target=target.target,
            label=target.label,
            minutes=minutes,
            by=_by(),
            reason=reason,
            now=t,
        )
    except (Refused, StoreError, ValueError) as e:
        return _refused(str(e))
    until = f" until {clock(t + minutes * 60)}" if minutes else " until someone resumes it"
    return _done(f"The internet is paused for {target.label}{until}.", id=number)


@bp.route("/controls/resume/<int:pause_id>", methods=["POST"])
@requires(Role.STAFF)
def resume(pause_id: int) -> Response | tuple[Response, int]:
    found = [p for p in controls.active_pauses(store(), now()) if p.id == pause_id]
    if not controls.resume(store(), pause_id, by=_by(), now=now()):
        return _refused("That pause had already ended.", 404)
    label = found[0].label if found else "them"
    return _done(f"The internet is back on for {label}.", id=pause_id)


# ---- grants ----


@bp.route("/controls/grant", methods=["POST"])
@requires(Role.STAFF)
def grant() -> Response | tuple[Response, int]:
    """Allow one child (`child`) or device (`mac`/`address`) one site (`host`) or category (`category`)
    for a while (`minutes`: 15/30/60 or "closing"), with a reason."""
    db, t, form = store(), now(), request.form
    try:
        child_id, device, label, profile = _grantee(form)
        host, category = _granted(form)
        until = _until(form.get("minutes", ""), profile, t)
        number = controls.grant(
            db,
            child=child_id,
            device=device,
            label=label,
            host=host,
            category=category,
            until=until,
            by=_by(),
            reason=_reason(required=True),
            now=t,
        )
    except (Refused, StoreError, ValueError) as e:
        return _refused(str(e))
    return _done(f"{label} may use {_what(host, category)} until {clock(until)}.", id=number)


def _grantee(form: Any) -> tuple[str | None, str | None, str, str]:
    """(child id, device key, label, profile) of the grant's form: a child, else a device."""
    if form.get("child"):
        child = people.get_child(store(), form.get("child", ""))
        if child is None or child.archived:
            raise Refused("There is no such child.")
        return child.id, None, child.display_name, child.profile
    if form.get("mac") or form.get("address"):
        key = _device_named(form.get("mac", "").strip(), form.get("address", "").strip())
        label, profile = _device_label(key)
        return None, key, label, profile
    raise Refused("Choose the child (or the device) to allow.")


def _granted(form: Any) -> tuple[str | None, str | None]:
    """(host, category) of the grant's form: a site, else a category."""
    text = form.get("host", "").strip()
    if text:
        text = text.split("://", 1)[-1].split("/", 1)[0]
        try:
            return normalise_host(text), None
        except BadName:
            raise Refused(f"{text!r} is not a site's name, like homework.example.org.") from None
    category = form.get("category", "")
    if category:
        if category not in dict(_category_choices()):
            raise Refused("There is no such category.")
        return None, category
    raise Refused("Name the site (or choose the category) to allow.")


@bp.route("/controls/grants/<int:grant_id>/end", methods=["POST"])
@requires(Role.STAFF)
def end_grant(grant_id: int) -> Response | tuple[Response, int]:
    found = [g for g in controls.active_grants(store(), now()) if g.id == grant_id]
    if not controls.end_grant(store(), grant_id, by=_by(), now=now()):
        return _refused("That grant had already ended.", 404)
    said = f"{found[0].label} may no longer use {_what(found[0].host, found[0].category)}." if found else ""
    return _done(said or "The grant has ended.", id=grant_id)


# ---- the block page's asks ----


_ANSWERED = "That ask has been answered already, or has expired."


def _pending(ask_id: int) -> Any:
    """The pending ask `ask_id`, or None (answered, expired, never made)."""
    return next((a for a in controls.pending_asks(store(), now()) if a.id == ask_id), None)


@bp.route("/controls/asks/<int:ask_id>/grant", methods=["POST"])
@requires(Role.STAFF)
def grant_ask(ask_id: int) -> Response | tuple[Response, int]:
    """Allow what a child asked for from the block page, for 15/30/60 minutes or until closing."""
    t = now()
    ask = _pending(ask_id)
    if ask is None:
        return _refused(_ANSWERED, 404)
    try:
        choice = request.form.get("minutes", "")
        until = _until(choice, ask.profile, t)
        number = controls.answer_ask(
            store(),
            ask_id,
            grant_minutes=None,
            until=until,
            by=_by(),
            reason=_reason() or ASK_REASON,
            now=t,
        )
    except (Refused, StoreError, ValueError) as e:
        return _refused(str(e))
    if number is None:
        return _refused(_ANSWERED, 404)
    return _done(f"{ask.label} may use {ask.host} until {clock(until)}.", id=ask_id, grant=number)


@bp.route("/controls/asks/<int:ask_id>/refuse", methods=["POST"])
@requires(Role.STAFF)
def refuse_ask(ask_id: int) -> Response | tuple[Response, int]:
    ask = _pending(ask_id)
    if ask is None:
        return _refused(_ANSWERED, 404)
    controls.refuse_ask(store(), ask_id, by=_by(), reason=_reason(), now=now())
    return _done(f"Refused: {ask.label} may not use {ask.host}.", id=ask_id)
