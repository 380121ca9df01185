"""Children and devices: add a child, reset a PIN, see who is signed in, name the devices on the network.

Staff at the desk add children, reset PINs and sign a child out; administrators change or archive a
child and name devices (a device's profile decides what it may reach when nobody is signed in on it).
Every change goes to the audit log. PINs are never shown, logged or kept in the clear.
"""

from __future__ import annotations

import ipaddress
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.config import staff_device_problem
from appliance.devices_seen import SeenDevice, SweepError, arp_sweep, merge_seen, seen_devices, sweep_settings
from appliance.net import ARP_TABLE
from appliance.policy_files import PolicyFileErrors, read_policy_files
from appliance.store import controls as store_controls
from appliance.store import incidents, people
from appliance.store.people import ChildRecord, DeviceRecord
from appliance.store.schema import StoreError
from appliance.store.staff import Role
from dashboard import budgets
from dashboard.database import config, now, policy_files, store
from dashboard.security import current_user, log_action, requires
from profiles.controls import INTERNET, Budget
from profiles.identity import Device, normalise_mac

bp = Blueprint("people", __name__)

MAX_NAME = 64
SWEEP_TIMEOUT_S = 2.0


class Refused(Exception):
    """A form that cannot be saved as it is; the message tells staff what to change."""


def profile_names() -> tuple[list[str], str]:
    """The policy's profiles, and an error if the policy files cannot be read (then there are none)."""
    try:
        return list(read_policy_files(config().policy).profiles), ""
    except PolicyFileErrors as e:
        return [], f"The policy files have mistakes, so no profile can be chosen: {e.errors[0]}"


def child_profile_names(profiles: list[str]) -> list[str]:
    """Of `profiles`, those a child may be given: not the guest profile, not the staff profile
    (`portal.staff_profile`), not a profile that bypasses filtering."""
    try:
        policy = read_policy_files(config().policy).profiles
    except PolicyFileErrors:
        return []
    grown = {config().policy.guest_profile, config().portal.staff_profile}
    return [p for p in profiles if p not in grown and not (p in policy and policy[p].bypass)]


def _zone() -> ZoneInfo:
    try:
        return ZoneInfo(config().policy.timezone)
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, _zone()).strftime("%H:%M")


def _chosen_profile(profiles: list[str]) -> str:
    profile = request.form.get("profile", "").strip()
    if profile not in profiles:
        known = ", ".join(profiles) or "none: the policy files need fixing first"
        raise Refused(f"Choose one of the profiles ({known}).")
    return profile


def _is_admin() -> bool:
    user = current_user()
    return user is not None and user.role.may(Role.ADMIN)


# ---- children and sessions ----


def _children_page(error: str = "", form: dict[str, str] | None = None, status: int = 200) -> tuple[str, int]:
    db = store()
    profiles, policy_error = profile_names()
    show_archived = request.args.get("archived") == "1"
    t = now()
    sessions = people.open_sessions(db, t)
    children = people.children(db, archived=show_archived)
    locked = {
        c.id: _clock(until)
        for c in children
        if not c.archived and (until := people.pin_locked_until(db, c.id, t)) is not None
    }
    flags = {f.target[6:]: f for f in incidents.flags(db) if f.target.startswith("child:")}
    user = current_user()
    page = render_template(
        "people/index.html",
        paused=paused_now("child"),
        flags=flags,
        lead=user is not None and user.role.may(Role.LEAD),
        children=children,
        locked=locked,
        show_archived=show_archived,
        sessions=[(s, _clock(s.started), _clock(s.expires)) for s in sessions],
        profiles=profiles,
        child_profiles=child_profile_names(profiles),
        error=error or policy_error,
        form=form or {},
        admin=_is_admin(),
    )
    return page, status


@bp.route("/people")
@requires(Role.STAFF)
def index() -> tuple[str, int]:
    log_action("view-children", "children", "the children and who is signed in where")
    return _children_page()


@bp.route("/people/children", methods=["POST"])
@requires(Role.STAFF)
def add_child() -> tuple[str, int] | Response:
    profiles, _ = profile_names()
    form = request.form
    try:
        name = " ".join(form.get("display_name", "").split())
        if len(name) > MAX_NAME:
            raise Refused(f"A display name is at most {MAX_NAME} letters (a first name is enough).")
        profile = _chosen_profile(child_profile_names(profiles))
        if form.get("pin", "") != form.get("again", ""):
            raise Refused("The two PINs differ.")
        child = people.add_child(store(), name, profile, form.get("pin", ""), now())
    except (Refused, StoreError) as e:
        kept = {"display_name": form.get("display_name", ""), "profile": form.get("profile", "")}
        return _children_page(_sentence(e), kept, 400)
    log_action("add-child", f"child:{child.id}", f"profile {child.profile}")
    flash(f"Added {child.display_name} ({child.profile}). They sign in with their name and PIN.")
    return redirect(url_for("people.index"))


@bp.route("/people/children/<child_id>/pin", methods=["POST"])
@requires(Role.STAFF)
def reset_pin(child_id: str) -> tuple[str, int] | Response:
    child = people.get_child(store(), child_id)
    if child is None:
        abort(404, "There is no such child.")
    form = request.form
    try:
        if form.get("pin", "") != form.get("again", form.get("pin", "")):
            raise Refused("The two PINs differ.")
        people.reset_pin(store(), child.id, form.get("pin", ""))
    except (Refused, StoreError) as e:
        return _children_page(f"{child.display_name}: {_sentence(e)}", status=400)
    log_action("reset-pin", f"child:{child.id}")
    flash(f"{child.display_name}'s PIN is changed. Tell them the new one, away from other children.")
    return redirect(url_for("people.index"))


@bp.route("/people/children/<child_id>/unlock", methods=["POST"])
@requires(Role.STAFF)
def unlock(child_id: str) -> Response:
    """Lift a child's lock after wrong PINs: they may sign in again at once."""
    child = people.get_child(store(), child_id)
    if child is None:
        abort(404, "There is no such child.")
    until = people.pin_locked_until(store(), child.id, now())
    people.lift_pin_lock(store(), child.id)
    detail = f"locked until {_clock(until)}" if until is not None else "not locked"
    log_action("unlock-pin", f"child:{child.id}", detail)
    flash(f"{child.display_name} can sign in again. Check it is really them asking.")
    return redirect(url_for("people.index"))


@bp.route("/people/children/<child_id>", methods=["POST"])
@requires(Role.ADMIN)
def change_child(child_id: str) -> tuple[str, int] | Response:
    child = people.get_child(store(), child_id)
    if child is None:
        abort(404, "There is no such child.")
    profiles, _ = profile_names()
    archived = request.form.get("archived") == "1"
    name = " ".join(request.form.get("display_name", child.display_name).split())
    try:
        # A child is given a child's profile only (never the guest's, the staff's or one that bypasses
        # filtering), as when added; a profile an older store gave them may stay.
        allowed = [*child_profile_names(profiles), child.profile]
        profile = _chosen_profile(allowed) if request.form.get("profile") else child.profile
        if len(name) > MAX_NAME:
            raise Refused(f"A display name is at most {MAX_NAME} letters (a first name is enough).")
        people.update_child(store(), child.id, profile, archived=archived, now=now(), display_name=name)
    except (Refused, StoreError) as e:
        return _children_page(f"{child.display_name}: {_sentence(e)}", status=400)
    renamed = f"renamed {child.display_name} -> {name}, " if name != child.display_name else ""
    if archived and not child.archived:
        log_action("archive-child", f"child:{child.id}", f"{renamed}profile {profile}")
        flash(f"{name} is archived: they can no longer sign in.")
    else:
        what = "restored, " if child.archived and not archived else ""
        log_action(
            "change-child", f"child:{child.id}", f"{renamed}{what}profile {child.profile} -> {profile}"
        )
        flash(f"{name}: {what}profile {profile}.")
    return redirect(url_for("people.index"))


@bp.route("/people/sessions/<int:session_id>/end", methods=["POST"])
@requires(Role.STAFF)
def end_session(session_id: int) -> Response:
    found = [s for s in people.open_sessions(store(), now()) if s.id == session_id]
    if not found:
        abort(404, "That session has already ended.")
    people.end_session(store(), found[0].id, "staff", now())
    who = f"staff:{found[0].display_name}" if found[0].staff is not None else f"child:{found[0].child}"
    log_action("end-session", who, f"device {found[0].device}")
    flash(f"{found[0].display_name} is signed out.")
    return redirect(url_for("people.index"))


def paused_now(scope: str) -> dict[str, tuple[store_controls.PauseRecord, str]]:
    """The pauses of `scope` ("child", "device") active now, by target: (the pause, "until 17:45" or
    "until resumed"), for the pages' Pause and Resume buttons."""
    return {
        p.target: (p, f"until {_clock(p.until)}" if p.until is not None else "until resumed")
        for p in store_controls.active_pauses(store(), now())
        if p.scope == scope
    }


def _sentence(error: Exception) -> str:
    text = str(error)
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?", ")")) else text + "."


# ---- devices ----


@dataclass(frozen=True)
class DeviceRow:
    """A line of the devices page: a named device (in the store or the configuration file) and where it
    is seen now, or a device seen that nobody has named yet."""

    name: str
    mac: str
    address: str
    profile: str
    managed: bool
    seen: SeenDevice | None
    origin: str  # "store", "config", or "" (seen only)


def _arp_table() -> Path:
    return Path(current_app.config.get("ARP_TABLE") or ARP_TABLE)


def _sweep_settings() -> tuple[str, str] | None:
    found: tuple[str, str] | None = (
        current_app.config.get("ARP_SWEEP") or config().dashboard.arp_sweep or sweep_settings(os.environ)
    )
    return found


def device_rows(extra: list[SeenDevice] | None = None) -> list[DeviceRow]:
    """Named devices first (each with where it is seen now), then the devices seen but not named."""
    seen = merge_seen(seen_devices(config().dns.leases, _arp_table()), extra or [])
    by_mac = {d.mac: d for d in seen}
    by_ip = {d.ip: d for d in seen}
    rows, claimed = [], set()
    named = [(r, "store") for r in people.devices(store())]
    named += [
        (DeviceRecord(d.name, d.mac, d.network, d.profile, d.managed), "config") for d in config().devices
    ]
    for record, origin in named:
        match = by_mac.get(record.mac) if record.mac else by_ip.get(record.address or "")
        if match is not None:
            claimed.add(match.mac)
        rows.append(
            DeviceRow(
                record.name,
                record.mac or "",
                record.address or "",
                record.profile,
                record.managed,
                match,
                origin,
            )
        )
    rows += [DeviceRow("", d.mac, d.ip, "", False, d, "") for d in seen if d.mac not in claimed]
    return rows


def _devices_page(
    error: str = "",
    status: int = 200,
    extra: list[SeenDevice] | None = None,
    form: dict[str, Any] | None = None,
) -> tuple[str, int]:
    profiles, policy_error = profile_names()
    page = render_template(
        "people/devices.html",
        paused=paused_now("device"),
        rows=device_rows(extra),
        profiles=profiles,
        error=error or policy_error,
        admin=_is_admin(),
        sweep=_sweep_settings(),
        swept=extra,
        leases=config().dns.leases,
        form=form or {},
    )
    return page, status


@bp.route("/people/devices")
@requires(Role.STAFF)
def devices() -> tuple[str, int]:
    log_action("view-devices", "devices", "")
    return _devices_page()


def _device_from_form(profiles: list[str]) -> DeviceRecord:
    form = request.form
    name = " ".join(form.get("name", "").split())
    if not name:
        raise Refused("Give the device a name staff will recognise, like 'Laptop 3' or 'Amira's tablet'.")
    if len(name) > MAX_NAME:
        raise Refused(f"A device name is at most {MAX_NAME} letters.")
    mac_text = form.get("mac", "").strip()
    mac = None
    if mac_text:
        try:
            mac = normalise_mac(mac_text)
        except ValueError:
            raise Refused(
                f"{mac_text!r} is not a MAC address: write it as six pairs of hex digits, "
                "like 3c:22:fb:12:34:56 (the device's Wi-Fi settings show it)."
            ) from None
    address_text = form.get("address", "").strip()
    address = None
    if address_text and mac is None:
        try:
            address = str(ipaddress.ip_address(address_text))
        except ValueError:
            raise Refused(f"{address_text!r} is not an IP address like 192.168.50.20.") from None
    if mac is None and address is None:
        raise Refused(f"Device {name!r}: give its MAC address (or, failing that, its IP address).")
    return DeviceRecord(name, mac, address, _chosen_profile(profiles), form.get("managed") in ("1", "on"))


@bp.route("/people/devices/save", methods=["POST"])
@requires(Role.ADMIN)
def save_device() -> tuple[str, int] | Response:
    profiles, _ = profile_names()
    db = store()
    try:
        device = _device_from_form(profiles)
        existing = {d.name: d for d in people.devices(db)}
        if request.form.get("new") == "1" and device.name in existing:
            raise Refused(f"There is already a device named {device.name!r}: choose another name.")
        if device.name in {d.name for d in config().devices}:
            raise Refused(
                f"{device.name!r} is named in appliance.yaml: change it there, or choose another name."
            )
        chosen = read_policy_files(config().policy).profiles.get(device.profile)
        as_named = Device(device.name, device.profile, device.mac, device.address, device.managed)
        problem = staff_device_problem(as_named, chosen, config()) if chosen else None
        if problem:
            raise Refused(problem)
        people.save_device(db, device, now())
    except (Refused, StoreError, PolicyFileErrors) as e:
        return _devices_page(_sentence(e), 400, form=dict(request.form))
    detail = f"mac {device.mac or '-'}, address {device.address or '-'}, profile {device.profile}"
    log_action(
        "save-device", f"device:{device.name}", f"{detail}, managed {'yes' if device.managed else 'no'}"
    )
    flash(f"Saved {device.name}: profile {device.profile}{', centre-managed' if device.managed else ''}.")
    return redirect(url_for("people.devices"))


@bp.route("/people/devices/remove", methods=["POST"])
@requires(Role.ADMIN)
def remove_device() -> Response:
    name = request.form.get("name", "")
    if name not in {d.name for d in people.devices(store())}:
        abort(404, "There is no such device.")
    people.remove_device(store(), name)
    log_action("remove-device", f"device:{name}")
    flash(f"{name} is forgotten: it gets the guest profile unless a child signs in on it.")
    return redirect(url_for("people.devices"))


@bp.route("/people/devices/sweep", methods=["POST"])
@requires(Role.ADMIN)
def sweep() -> tuple[str, int]:
    settings = _sweep_settings()
    if settings is None:
        return _devices_page(
            "No network is set for an ARP sweep (APPLIANCE_ARP_SWEEP_INTERFACE and "
            "APPLIANCE_ARP_SWEEP_NETWORK in the dashboard's environment).",
            400,
        )
    interface, network = settings
    try:
        found = arp_sweep(interface, network, SWEEP_TIMEOUT_S)
    except SweepError as e:
        return _devices_page(f"The sweep did not run: {e}", 400)
    log_action("arp-sweep", f"network:{network}", f"{len(found)} answered on {interface}")
    return _devices_page(extra=found)


# ---- one child: their page, and their time budget ----

MAX_DAILY_MINUTES = 24 * 60
MAX_EXTRA_MINUTES = 240  # added at once: more is a mistake (a whole afternoon is 240)


def _child_or_404(child_id: str) -> ChildRecord:
    child = people.get_child(store(), child_id)
    if child is None:
        abort(404, "There is no such child.")
    return child


def _budget_categories(child: ChildRecord, time_today: budgets.ChildTime | None) -> list[tuple[str, str]]:
    """(name, title) of the categories a budget may limit: every category but the always-blocked ones,
    those this child's budget already limits first."""
    files = policy_files()
    limited = set(time_today.budget.categories) if time_today else set()
    named = [
        (c.name, c.title)
        for c in files.categories.categories.values()
        if not c.always_blocked and c.area is not None  # allowlist categories have no area
    ]
    return sorted(named, key=lambda nc: (nc[0] not in limited, nc[1].lower()))


def device_names(db: sqlite3.Connection) -> dict[str, str]:
    """Device key (normalised MAC, else address) -> the name staff gave it or appliance.yaml does."""
    named = [(d.mac, d.address, d.name) for d in people.devices(db)]
    named += [(d.mac, d.network, d.name) for d in config().devices]
    return {key: name for mac, address, name in named for key in (mac, address) if key}


def _child_page(child: ChildRecord, error: str = "", status: int = 200) -> tuple[str, int]:
    db = store()
    t = now()
    user = current_user()
    time_today = budgets.today(db, t).of(child)
    own = store_controls.child_budgets(db).get(child.id)
    profile_budget = budgets.profile_budget(child.profile)
    names = device_names(db)
    page = render_template(
        "people/child.html",
        child=child,
        device_name=lambda s: names.get(s.device) or names.get(s.client) or s.device,
        sessions=[
            (s, _clock(s.started), _clock(s.expires))
            for s in people.open_sessions(db, t)
            if s.child == child.id
        ],
        time_today=time_today,
        lines=budgets.left_lines(time_today.left) if time_today else [],
        own=own,
        profile_budget=profile_budget,
        budget_words=budget_words,
        categories=_budget_categories(child, time_today),
        may_set_budget=user is not None and user.role.may(Role.LEAD),
        max_extra=MAX_EXTRA_MINUTES,
        error=error,
    )
    return page, status


def budget_words(budget: Budget | None) -> str:
    """A budget in a line: "120 minutes of internet a day; Games 30, Social networks 30"."""
    if budget is None or budget.empty:
        return "no limit"
    parts = []
    if budget.minutes is not None:
        parts.append(f"{budgets.minutes(budget.minutes)} of internet a day")
    if budget.categories:
        each = ", ".join(f"{budgets.title(c)} {n}" for c, n in sorted(budget.categories.items()))
        parts.append(f"minutes a day for {each}")
    return "; ".join(parts)


@bp.route("/people/children/<child_id>")
@requires(Role.STAFF)
def child(child_id: str) -> tuple[str, int]:
    """One child: who they are, where they are signed in, and their time today (what is left; the
    lead sets their budget, staff add time)."""
    found = _child_or_404(child_id)
    log_action("view-child", f"child:{found.id}", "their page and time today")
    return _child_page(found)


def _minutes(text: str, what: str, *, most: int, least: int = 1, blank: bool = False) -> int | None:
    text = text.strip()
    if not text and blank:
        return None
    try:
        n = int(text)
    except ValueError:
        raise Refused(f"{what}: write a number of minutes, like 30.") from None
    if not least <= n <= most:
        raise Refused(f"{what}: between {least} and {most} minutes.")
    return n


def _budget_from_form(categories: list[tuple[str, str]]) -> Budget:
    form = request.form
    internet = _minutes(
        form.get("minutes", ""), "Internet a day", most=MAX_DAILY_MINUTES, least=0, blank=True
    )
    limits: dict[str, int] = {}
    for name, title in categories:
        n = _minutes(form.get(f"category-{name}", ""), title, most=MAX_DAILY_MINUTES, least=0, blank=True)
        if n is not None:
            limits[name] = n
    return Budget(minutes=internet, categories=limits)


@bp.route("/people/children/<child_id>/budget", methods=["POST"])
@requires(Role.LEAD)
def set_budget(child_id: str) -> tuple[str, int] | Response:
    """The lead's (or the administrator's) daily budget for one child, replacing their profile's whole;
    `use_profile` goes back to the profile's. The store audits it (`set-budget`)."""
    found = _child_or_404(child_id)
    user = current_user()
    assert user is not None  # requires() let a signed-in member of staff in
    db = store()
    if request.form.get("use_profile"):
        store_controls.set_child_budget(db, found.id, None, by=user.username, now=now())
        flash(f"{found.display_name} has the {found.profile} profile's time budget again.")
        return redirect(url_for("people.child", child_id=found.id))
    try:
        budget = _budget_from_form(_budget_categories(found, budgets.today(db, now()).of(found)))
    except Refused as e:
        return _child_page(found, f"{found.display_name}'s budget is unchanged. {_sentence(e)}", 400)
    store_controls.set_child_budget(db, found.id, budget, by=user.username, now=now())
    flash(f"{found.display_name}'s time budget: {budget_words(budget)}.")
    return redirect(url_for("people.child", child_id=found.id))


@bp.route("/people/children/<child_id>/time", methods=["POST"])
@requires(Role.STAFF)
def add_time(child_id: str) -> tuple[str, int] | Response:
    """Staff give a child extra minutes today, of the internet or of one budgeted category, with a
    reason. The store audits it (`add-time`); the services count it within seconds."""
    found = _child_or_404(child_id)
    user = current_user()
    assert user is not None
    db = store()
    t = now()
    time_today = budgets.today(db, t).of(found)
    try:
        if time_today is None:
            raise Refused("They have no time budget: there is nothing to add time to.")
        n = _minutes(request.form.get("minutes", ""), "Extra time", most=MAX_EXTRA_MINUTES)
        assert n is not None
        category = request.form.get("category", INTERNET)
        limited = set(time_today.budget.categories) | (
            {INTERNET} if time_today.budget.minutes is not None else set()
        )
        if category not in limited:
            raise Refused("Choose something their budget limits: the internet or one of its categories.")
        reason = " ".join(request.form.get("reason", "").split())[:200]
    except Refused as e:
        return _child_page(found, f"No time added. {_sentence(e)}", 400)
    store_controls.add_time(
        db,
        child=found.id,
        category=category,
        minutes=n,
        by=user.username,
        reason=reason,
        now=t,
        day=budgets.day_of(t),
    )
    flash(f"Added {budgets.minutes(n)} of {budgets.title(category)} for {found.display_name} today.")
    return redirect(url_for("people.child", child_id=found.id))
