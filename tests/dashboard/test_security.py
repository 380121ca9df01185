"""Who reaches what: every route needs the right role, children's devices never reach staff pages, the
portal and block pages need no sign-in, forms need their CSRF token, sign-in is throttled."""

from __future__ import annotations

import time

import pytest

from appliance.store import staff
from appliance.store.staff import Role
from dashboard.security import is_open
from tests.dashboard.conftest import CHILD_IP, PASSWORD

SAMPLE_VALUES = {"number": "1", "event_id": "dns:1", "token": "x" * 20, "period": "2026", "name": "x"}


def _routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = url.replace(f"<int:{arg}>", SAMPLE_VALUES.get(arg, "1")).replace(
                f"<{arg}>", SAMPLE_VALUES.get(arg, "x")
            )
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, url


def test_every_staff_route_declares_the_role_it_needs(app):
    for endpoint, _, _ in _routes(app):
        view = app.view_functions[endpoint]
        if is_open(endpoint):
            assert not hasattr(view, "required_role"), endpoint
        elif endpoint not in ("auth.sign_in", "auth.set_up", "auth.sign_out"):
            assert isinstance(getattr(view, "required_role", None), Role), f"{endpoint} has no role check"


def test_signed_out_staff_are_sent_to_sign_in_and_children_get_403(app, browse):
    staff_browser, child = browse(), browse(CHILD_IP)
    for endpoint, method, url in _routes(app):
        if is_open(endpoint):
            continue
        if endpoint not in ("auth.sign_in", "auth.set_up", "auth.sign_out") and method == "GET":
            response = staff_browser.get(url)
            assert response.status_code == 302 and "/signin" in response.location, (endpoint, url)
        response = child.get(url) if method == "GET" else child.post(url, {}, token=False)
        assert response.status_code == 403, (endpoint, method, url)
        if method == "GET":
            assert "staff only" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", [Role.STAFF, Role.LEAD])
def test_each_role_is_refused_the_pages_of_higher_roles(app, browse, accounts, role):
    b = browse(as_user=role.value)
    checked = 0
    for endpoint, method, url in _routes(app):
        needed = getattr(app.view_functions[endpoint], "required_role", None)
        if needed is None or role.may(needed) or method != "GET":
            continue
        assert b.get(url).status_code == 403, (role, endpoint)
        checked += 1
    assert checked > 0


def test_every_staff_page_forbids_referrers_and_indexing(app, browse, accounts):
    """A link followed from a staff page must not hand the page's address (a child's name, an incident
    number) to the next site, and no staff page may be indexed."""
    b = browse(as_user="admin")
    checked = 0
    for endpoint, method, url in _routes(app):
        if is_open(endpoint) or method != "GET":
            continue
        response = b.get(url)
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        page = response.get_data(as_text=True)
        assert '<meta name="referrer" content="no-referrer">' in page, endpoint
        assert '<meta name="robots" content="noindex, nofollow">' in page, endpoint
        checked += 1
    assert checked > 10


def test_the_portal_answers_every_device_without_sign_in(browse):
    for address in (CHILD_IP, "127.0.0.1"):
        page = browse(address).get("/portal")
        assert page.status_code == 200
        assert "filtered and monitored" in page.get_data(as_text=True)
    assert browse(CHILD_IP).get("/portal/guest").status_code == 200


def test_a_form_without_its_csrf_token_is_refused(browse, accounts):
    b = browse()
    b.get("/signin")
    refused = b.post("/signin", {"username": "admin", "password": PASSWORD}, token=False)
    assert refused.status_code == 400 and "out of date" in refused.get_data(as_text=True)
    forged = b.post("/signin", {"username": "admin", "password": PASSWORD, "csrf_token": "forged"})
    assert forged.status_code == 400
    signed_in = browse(as_user="admin")
    response = signed_in.post(
        "/staff", {"action": "add", "username": "eve", "password": "x" * 12}, token=False
    )
    assert response.status_code == 400


def test_sign_in_is_throttled_after_five_failures_even_with_the_right_password(browse, accounts):
    b = browse()
    for _ in range(staff.MAX_FAILURES):
        assert b.sign_in("staff", "wrong password!").status_code == 401
    refused = b.sign_in("staff", PASSWORD)
    assert refused.status_code == 401 and "Too many attempts" in refused.get_data(as_text=True)
    # Another member of staff from another address is not locked out by it.
    assert browse("127.0.0.1").sign_in("lead").status_code in (302, 401)


def test_a_wrong_user_name_and_a_wrong_password_read_the_same(browse, accounts):
    a = browse().sign_in("nobody", "whatever password").get_data(as_text=True)
    b = browse().sign_in("staff", "whatever password").get_data(as_text=True)
    assert "do not match an account" in a and "do not match an account" in b


def test_passwords_are_stored_as_scrypt_hashes_never_as_text(db, accounts):
    stored = [p for (p,) in db.execute("SELECT password FROM staff")]
    assert stored and all(p.startswith("$scrypt$16384$8$1$") and PASSWORD not in p for p in stored)


def test_a_staff_sign_in_expires_after_the_idle_time(app, browse, accounts):
    b = browse(as_user="staff")
    assert b.get("/review").status_code == 200
    app.config["NOW"] = time.time() + 31 * 60
    response = b.get("/review")
    assert response.status_code == 302 and "/signin" in response.location


def test_the_first_administrator_comes_from_a_one_time_link(app, browse, db):
    token = staff.make_setup_link(db, time.time())
    b = browse()
    b.get(f"/setup/{token}")
    form = {"username": "maria", "display_name": "Maria", "password": PASSWORD, "again": PASSWORD}
    assert b.post(f"/setup/{token}", form).status_code == 302
    assert staff.has_admin(db)
    assert browse().get(f"/setup/{token}").status_code == 404  # used once
    weak = staff.make_setup_link(db, time.time())
    assert browse().get(f"/setup/{weak}").status_code == 404  # an administrator exists now


def test_staff_pages_are_never_cached_and_cannot_be_framed(browse, accounts):
    response = browse(as_user="staff").get("/review")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    cookie = response.headers.get("Set-Cookie", "")
    assert not cookie or ("HttpOnly" in cookie and "SameSite=Strict" in cookie)
