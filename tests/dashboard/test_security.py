"""Who reaches what: every route needs the right role, children's devices never reach staff pages, the
portal and block pages need no sign-in (a child's request through the appliance's own proxy is still a
child's), forms need their CSRF token, sign-in is throttled without locking staff out for others' guesses;
signing out and a new password end sign-ins; after sign-in the browser stays on the site; a set-up link
survives a mistake in its form."""

from __future__ import annotations

import time

import pytest

from appliance.forwarding import CLIENT_HEADER, forwarding_key, stamp
from appliance.store import people, staff
from appliance.store.staff import Role
from dashboard.security import is_open
from tests.dashboard.conftest import CHILD_IP, PASSWORD, Browser, add_child

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
        elif endpoint not in ("auth.sign_in", "auth.set_up", "auth.sign_out", "alerts.link"):
            assert isinstance(getattr(view, "required_role", None), Role), f"{endpoint} has no role check"


def test_signed_out_staff_are_sent_to_sign_in_and_children_get_403(app, browse):
    staff_browser, child = browse(), browse(CHILD_IP)
    for endpoint, method, url in _routes(app):
        if is_open(endpoint):
            continue
        if (
            endpoint not in ("auth.sign_in", "auth.set_up", "auth.sign_out", "alerts.link")
            and method == "GET"
        ):
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


def _header(value: str) -> dict[str, str]:
    return {f"HTTP_{CLIENT_HEADER.upper().replace('-', '_')}": value}


def test_a_childs_request_through_the_appliances_proxy_is_still_a_childs(app, accounts, db):
    """The proxy connects from the appliance's own address and names the device in a signed header: staff
    pages refuse it, and a portal sign-in binds the child's device, not the appliance."""
    proxied = Browser(app.test_client(), "127.0.0.1")
    key = forwarding_key(app.config["APPLIANCE"].data_dir)
    proxied.client.environ_base = {
        **proxied.client.environ_base,
        **_header(stamp(key, CHILD_IP, time.time())),
    }
    assert proxied.get("/people").status_code == 403
    assert proxied.get("/signin").status_code == 403
    amira = add_child(db, "Amira")
    proxied.get("/portal")
    response = proxied.post("/portal/signin", {"name": "Amira", "pin": "4826", "accept": "yes"})
    assert response.status_code == 302
    (session,) = people.open_sessions(db, time.time())
    assert (session.child, session.device, session.client) == (amira.id, CHILD_IP, CHILD_IP)


def test_signing_out_ends_the_sign_in_for_a_copied_cookie_too(browse, accounts):
    b = browse(as_user="admin")
    copied = b.client.get_cookie("appliance_session").value
    b.get("/review")  # the page with the sign-out button (and this sign-in's CSRF token)
    assert b.post("/signout", {}).status_code == 302
    thief = browse()
    thief.client.set_cookie("appliance_session", copied)
    response = thief.get("/staff")
    assert response.status_code == 302 and "/signin" in response.location


def test_a_new_password_ends_every_other_sign_in_of_the_account(browse, accounts):
    elsewhere = browse(as_user="staff")
    here = browse(as_user="staff")
    here.get("/account")
    new = "a different long passphrase"
    here.post("/account", {"current": PASSWORD, "password": new, "again": new})
    assert here.get("/review").status_code == 200
    assert elsewhere.get("/review").status_code == 302


@pytest.mark.parametrize(
    "target", ["/\t/evil.example", "//evil.example", "/\\evil.example", "https://evil.example/"]
)
def test_after_sign_in_the_browser_stays_on_the_site(browse, accounts, target):
    b = browse()
    b.get("/signin")
    response = b.client.post(
        "/signin",
        query_string={"next": target},
        data={"username": "admin", "password": PASSWORD, "csrf_token": b.token},
        environ_base={"REMOTE_ADDR": b.address},
    )
    assert response.status_code == 302
    assert response.location in ("/", "/review"), response.location


def test_someone_elses_wrong_guesses_do_not_lock_a_member_of_staff_out(browse, accounts):
    for n in range(3):
        attacker = browse(f"127.0.2.{n}")
        for _ in range(staff.MAX_FAILURES):
            attacker.sign_in("admin", "wrong wrong wrong")
    assert browse("127.0.0.1").sign_in("admin").status_code == 302


def test_a_mistake_in_the_set_up_form_does_not_spend_the_link(browse, db):
    token = staff.make_setup_link(db, time.time())
    b = browse()
    b.get(f"/setup/{token}")
    form = {"username": "maria m", "display_name": "Maria", "password": PASSWORD, "again": PASSWORD}
    assert "use letters" in b.post(f"/setup/{token}", form).get_data(as_text=True)
    assert b.post(f"/setup/{token}", {**form, "username": "maria"}).status_code == 302
