"""Signing staff in and out, the first administrator's set-up link, passwords, and staff accounts."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from appliance.store import people, staff
from appliance.store.schema import StoreError
from appliance.store.staff import Role, SignInRefused
from dashboard.database import now, store
from dashboard.security import client_address, current_user, log_action, requires, sign_in_as

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to somewhere else (browsers drop tabs and
    newlines from addresses: a slash, a tab, then /evil.example would lead off the site)."""
    if target:
        cleaned = "".join(c for c in target if c.isprintable() and not c.isspace())
        parts = urlsplit(cleaned)
        if (
            cleaned == target
            and not parts.scheme
            and not parts.netloc
            and cleaned.startswith("/")
            and not cleaned.startswith("//")
            and "\\" not in cleaned
        ):
            return cleaned
    return url_for("overview.index")


@bp.route("/signin", methods=["GET", "POST"])
def sign_in() -> str | Response | tuple[str, int]:
    if request.method == "POST":
        try:
            user = staff.sign_in(
                store(),
                request.form.get("username", ""),
                request.form.get("password", ""),
                client_address(),
                now(),
            )
        except SignInRefused as e:
            return render_template(
                "signin.html", error=str(e), username=request.form.get("username", "")
            ), 401
        sign_in_as(user)
        log_action("sign-in", f"staff:{user.username}")
        return redirect(_safe_next(request.args.get("next")))
    if current_user() is not None:
        return redirect(url_for("overview.index"))
    return render_template("signin.html", error="", username="")


@bp.route("/signout", methods=["POST"])
def sign_out() -> Response:
    user = current_user()
    if user is not None:
        log_action("sign-out", f"staff:{user.username}")
    if session.get("sid"):
        staff.end_session(store(), str(session["sid"]), now())
    session.clear()
    return redirect(url_for("auth.sign_in"))


@bp.route("/setup/<token>", methods=["GET", "POST"])
def set_up(token: str) -> str | Response:
    """The one-time link printed at first start: make the first administrator."""
    db = store()
    if not staff.setup_link_valid(db, token, now()):
        abort(
            404, "This set-up link has been used or has expired. Use `appliance users add` on the appliance."
        )
    error = ""
    if request.method == "POST":
        form = request.form
        if form.get("password", "") != form.get("again", ""):
            error = "The two passwords differ."
        else:
            try:
                staff.check_password(form.get("password", ""))
                staff.check_username(form.get("username", ""))
                if not staff.use_setup_link(db, token, now()):
                    abort(404, "This set-up link has been used or has expired.")
                user = staff.add_user(
                    db,
                    form.get("username", ""),
                    form.get("display_name", ""),
                    Role.ADMIN,
                    form.get("password", ""),
                    now(),
                )
            except StoreError as e:
                error = str(e)
            else:
                sign_in_as(user)
                log_action("add-staff", f"staff:{user.username}", "first administrator, by set-up link")
                flash("Welcome. Next: add your colleagues, the children and the centre's devices.")
                return redirect(url_for("overview.index"))
    return render_template("setup.html", error=error)


@bp.route("/account", methods=["GET", "POST"])
@requires(Role.STAFF)
def account() -> str | Response:
    user = current_user()
    assert user is not None
    error = ""
    if request.method == "POST":
        form = request.form
        try:
            staff.sign_in(store(), user.username, form.get("current", ""), client_address(), now())
            if form.get("password", "") != form.get("again", ""):
                raise StoreError("The two new passwords differ.")
            staff.set_password(store(), user.id, form.get("password", ""))
            # Every other sign-in of this account ends (a forgotten PC, a copied cookie).
            staff.end_sessions(store(), user.id, now(), keep=str(session.get("sid", "")))
            people.end_staff_sessions(store(), user.id, "new-password", now())  # on devices, at the portal
        except StoreError as e:
            error = str(e)
        else:
            log_action("change-password", f"staff:{user.username}")
            flash("Your password is changed.")
            return redirect(url_for("auth.account"))
    return render_template("account.html", error=error)


@bp.route("/staff", methods=["GET", "POST"])
@requires(Role.ADMIN)
def staff_accounts() -> str | Response:
    db = store()
    error = ""
    if request.method == "POST":
        form = request.form
        try:
            if form.get("action") == "add":
                user = staff.add_user(
                    db,
                    form.get("username", ""),
                    form.get("display_name", ""),
                    Role(form.get("role", "staff")),
                    form.get("password", ""),
                    now(),
                )
                log_action("add-staff", f"staff:{user.username}", f"role {user.role}")
                flash(f"Added {user.display_name}.")
            else:
                target = staff.get_user(db, int(form.get("id", "0")))
                if target is None:
                    abort(404)
                if target.id == current_user().id:  # type: ignore[union-attr]
                    raise StoreError("You cannot change your own role or disable yourself.")
                role, disabled = Role(form.get("role", str(target.role))), form.get("disabled") == "1"
                staff.set_role(db, target.id, role, disabled=disabled)
                staff.end_sessions(db, target.id, now())  # they sign in again, under the new role
                if disabled:
                    people.end_staff_sessions(db, target.id, "disabled", now())
                log_action("change-staff", f"staff:{target.username}", f"role {role}, disabled {disabled}")
                flash(f"Changed {target.display_name}.")
        except (StoreError, ValueError) as e:
            error = str(e)
        else:
            return redirect(url_for("auth.staff_accounts"))
    return render_template("staff.html", users=staff.all_users(db), roles=list(Role), error=error)
