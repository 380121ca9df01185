"""Staff in control on the dashboard, as HTTP conversations: pause and resume a child or a device from
their pages, grant a site for a while, answer a child's ask from the banner; every form's CSRF token,
every route's role, children's devices kept out, and the audit log saying who did what."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from appliance.pages import ASK_PATH
from appliance.store import audit, controls, people
from appliance.store.staff import Role
from dashboard.controls import closing_time
from profiles.controls import Scope
from profiles.schedule import Schedule, ScheduleRule, Window, parse_days
from tests.dashboard.conftest import CHILD_IP, add_child

CONTROL_ROUTES = (
    "controls.index",
    "controls.pause",
    "controls.resume",
    "controls.grant",
    "controls.end_grant",
    "controls.grant_ask",
    "controls.refuse_ask",
)


def actions(db: Any) -> list[tuple[str, str, str]]:
    """The audit log's (actor, action, subject), oldest first."""
    return [(e.username, e.action, e.subject) for e in reversed(audit.entries(db))]


def ask_for(db: Any, child: people.ChildRecord, host: str = "games.example", note: str = "") -> int:
    return controls.ask(
        db,
        subject=f"child:{child.id}",
        child=child.id,
        device="aa:bb:cc:dd:ee:01",
        client=CHILD_IP,
        label=child.display_name,
        host=host,
        category="games",
        profile=child.profile,
        note=note,
        now=time.time(),
    )


def staff_on(browse: Any, user: str = "staff") -> Any:
    """A member of staff signed in, on the controls page (its forms' CSRF token in hand)."""
    b = browse(as_user=user)
    b.get("/controls")
    return b


def test_every_control_is_for_any_member_of_staff(app):
    """Pausing and granting act on children: every staff role may (dashboard/auth.py's roles)."""
    for endpoint in CONTROL_ROUTES:
        assert app.view_functions[endpoint].required_role is Role.STAFF, endpoint


def test_staff_pause_a_child_from_the_childrens_page_and_resume(browse, db, accounts):
    amira = add_child(db)
    b = staff_on(browse, "staff")
    page = b.get("/people").get_data(as_text=True)
    assert f'aria-label="pause the internet for {amira.display_name}"' in page

    response = b.post(
        "/controls/pause",
        {"scope": "child", "child": amira.id, "minutes": "30", "reason": "shouting", "back": "/people"},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/people"
    [paused] = controls.active_pauses(db, time.time())
    assert (paused.scope, paused.target, paused.label, paused.by) == (Scope.CHILD, amira.id, "Amira", "staff")
    assert paused.until is not None and 29 * 60 < paused.until - paused.since <= 30 * 60
    page = b.get("/people").get_data(as_text=True)
    assert "Internet paused until" in page and "The internet is paused for Amira until" in page
    assert f'aria-label="resume the internet for {amira.display_name}"' in page

    assert b.post(f"/controls/resume/{paused.id}", {"back": "/people"}).status_code == 302
    assert controls.active_pauses(db, time.time()) == []
    assert "The internet is back on for Amira." in b.get("/people").get_data(as_text=True)
    assert ("staff", "pause", f"child:{amira.id}") in actions(db)
    assert ("staff", "resume", f"child:{amira.id}") in actions(db)


def test_a_pause_until_resumed_has_no_end(browse, db, accounts):
    amira = add_child(db)
    staff_on(browse, "lead").post("/controls/pause", {"scope": "child", "child": amira.id, "minutes": ""})
    [paused] = controls.active_pauses(db, time.time())
    assert paused.until is None and paused.by == "lead"


def test_staff_pause_a_device_from_the_devices_page_by_its_mac(browse, db, accounts):
    people.save_device(db, people.DeviceRecord("room1-pc1", "aa:bb:cc:dd:ee:01", None, "10-12", True), 0.0)
    b = staff_on(browse, "staff")
    assert 'aria-label="pause the internet for room1-pc1"' in b.get("/people/devices").get_data(as_text=True)
    b.post("/controls/pause", {"scope": "device", "mac": "AA-BB-CC-DD-EE-01", "minutes": "15"})
    [paused] = controls.active_pauses(db, time.time())
    assert (paused.scope, paused.target, paused.label) == (Scope.DEVICE, "aa:bb:cc:dd:ee:01", "room1-pc1")
    assert "Internet paused until" in b.get("/people/devices").get_data(as_text=True)


def test_the_whole_centre_and_a_profile_can_be_paused(browse, db, accounts):
    b = staff_on(browse, "staff")
    b.post("/controls/pause", {"scope": "centre", "minutes": "60"})
    b.post("/controls/pause", {"scope": "profile", "profile": "13-17", "minutes": "15"})
    b.post("/controls/pause", {"scope": "profile", "profile": "no-such-profile", "minutes": "15"})
    found = {(p.scope, p.target, p.label) for p in controls.active_pauses(db, time.time())}
    assert found == {(Scope.CENTRE, "", "the whole centre"), (Scope.PROFILE, "13-17", "13-17")}
    page = b.get("/controls").get_data(as_text=True)
    assert "the whole centre" in page and "There is no such profile." in page


def test_every_control_form_needs_the_csrf_token(browse, db, accounts):
    amira = add_child(db)
    b = staff_on(browse, "staff")
    b.get("/controls")
    ask = ask_for(db, amira)
    for url, form in (
        ("/controls/pause", {"scope": "child", "child": amira.id, "minutes": "15"}),
        ("/controls/grant", {"child": amira.id, "host": "a.example", "minutes": "15", "reason": "x"}),
        (f"/controls/asks/{ask}/grant", {"minutes": "15"}),
        (f"/controls/asks/{ask}/refuse", {}),
    ):
        assert b.post(url, form, token=False).status_code == 400, url
        assert b.post(url, {**form, "csrf_token": "forged"}, token=False).status_code == 400, url
    assert controls.active_pauses(db, time.time()) == [] and controls.active_grants(db, time.time()) == []
    assert [a.id for a in controls.pending_asks(db, time.time())] == [ask]


def test_childrens_devices_never_reach_the_controls(browse, db, accounts):
    amira = add_child(db)
    child = browse(CHILD_IP)
    assert child.get("/controls").status_code == 403
    response = child.post("/controls/pause", {"scope": "centre", "minutes": ""}, token=False)
    assert response.status_code == 403
    assert child.get("/alerts/live").status_code == 403
    assert controls.active_pauses(db, time.time()) == []
    # Not signed in, on the staff network: to the sign-in page.
    response = browse().get("/controls")
    assert response.status_code == 302 and "/signin" in response.headers["Location"]
    del amira


def test_staff_grant_a_child_a_site_for_a_while_with_a_reason(browse, db, accounts):
    amira = add_child(db)
    b = staff_on(browse, "staff")
    refused = b.post("/controls/grant", {"child": amira.id, "host": "games.example", "minutes": "15"})
    assert refused.status_code == 302 and controls.active_grants(db, time.time()) == []
    assert "Say why" in b.get("/controls").get_data(as_text=True)

    b.post(
        "/controls/grant",
        {"child": amira.id, "host": "https://Games.Example/play", "minutes": "15", "reason": "project"},
    )
    [granted] = controls.active_grants(db, time.time())
    assert (granted.child, granted.host, granted.category, granted.reason) == (
        amira.id,
        "games.example",
        None,
        "project",
    )
    assert 14 * 60 < granted.until - granted.since <= 15 * 60
    page = b.get("/controls").get_data(as_text=True)
    assert "Amira may use games.example until" in page
    assert "End now Amira's grant for games.example" in page

    b.post(f"/controls/grants/{granted.id}/end", {})
    assert controls.active_grants(db, time.time()) == []
    assert "Amira may no longer use games.example." in b.get("/controls").get_data(as_text=True)
    assert ("staff", "grant", f"child:{amira.id}") in actions(db)
    assert ("staff", "end-grant", f"child:{amira.id}") in actions(db)


def test_a_grant_of_a_category_to_a_device(browse, db, accounts):
    people.save_device(db, people.DeviceRecord("room1-pc1", "aa:bb:cc:dd:ee:01", None, "10-12", True), 0.0)
    b = staff_on(browse, "staff")
    b.post(
        "/controls/grant",
        {"mac": "aa:bb:cc:dd:ee:01", "category": "games", "minutes": "30", "reason": "club"},
    )
    [granted] = controls.active_grants(db, time.time())
    assert (granted.device, granted.category, granted.label) == ("aa:bb:cc:dd:ee:01", "games", "room1-pc1")


def test_an_ask_reaches_the_banner_and_staff_grant_it_for_15_minutes(browse, db, accounts):
    amira = add_child(db)
    b = staff_on(browse, "staff")
    assert b.get("/alerts/live").get_json()["asks"] == []
    number = ask_for(db, amira, note="for my homework")
    live = b.get("/alerts/live").get_json()
    [shown] = live["asks"]
    assert (shown["who"], shown["host"], shown["note"]) == ("Amira", "games.example", "for my homework")
    assert shown["grant_url"] == f"/controls/asks/{number}/grant"

    response = b.post(shown["grant_url"], {"minutes": "15"}, headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.get_json()["done"] is True
    [granted] = controls.active_grants(db, time.time())
    assert (granted.child, granted.host, granted.by) == (amira.id, "games.example", "staff")
    assert 14 * 60 < granted.until - time.time() <= 15 * 60
    assert b.get("/alerts/live").get_json()["asks"] == []
    # A second click (another tab) finds it answered.
    again = b.post(shown["grant_url"], {"minutes": "15"}, headers={"Accept": "application/json"})
    assert again.status_code == 404 and len(controls.active_grants(db, time.time())) == 1
    assert ("staff", "grant", f"child:{amira.id}") in actions(db)


def test_an_ask_granted_until_closing_ends_when_the_profile_closes(browse, app, db, accounts):
    amira = add_child(db)  # 10-12: opening hours, mon-fri 15:00-19:30
    monday_4pm = 1796601600.0 + 16 * 3600  # Mon 7 Dec 2026 16:00 UTC = 16:00 London
    app.config["NOW"] = monday_4pm
    number = controls.ask(
        db,
        subject=f"child:{amira.id}",
        child=amira.id,
        device="d",
        client=CHILD_IP,
        label="Amira",
        host="games.example",
        category="",
        profile="10-12",
        note="",
        now=monday_4pm,
    )
    b = staff_on(browse, "staff")
    b.post(f"/controls/asks/{number}/grant", {"minutes": "closing"})
    [granted] = controls.active_grants(db, monday_4pm)
    assert granted.until == monday_4pm + 3.5 * 3600  # 19:30


def test_staff_refuse_an_ask(browse, db, accounts):
    amira = add_child(db)
    number = ask_for(db, amira)
    b = staff_on(browse, "staff")
    response = b.post(f"/controls/asks/{number}/refuse", {}, headers={"Accept": "application/json"})
    assert response.get_json() == {
        "done": True,
        "said": "Refused: Amira may not use games.example.",
        "id": number,
    }
    assert controls.pending_asks(db, time.time()) == [] and controls.active_grants(db, time.time()) == []
    assert ("staff", "refuse-ask", f"child:{amira.id}") in actions(db)


def test_the_controls_page_lists_asks_pauses_and_grants(browse, db, accounts):
    amira = add_child(db)
    ask_for(db, amira, note="homework")
    b = staff_on(browse, "staff")
    b.post("/controls/pause", {"scope": "centre", "minutes": "15", "reason": "fire drill"})
    page = b.get("/controls").get_data(as_text=True)
    assert "games.example" in page and "homework" in page and "fire drill" in page
    assert len(re.findall(r'name="csrf_token"', page)) >= 5


def test_the_audit_log_says_each_control_in_words(browse, db, accounts):
    amira = add_child(db)
    b = staff_on(browse, "lead")
    b.post("/controls/pause", {"scope": "child", "child": amira.id, "minutes": "15"})
    b.post("/controls/pause", {"scope": "centre", "minutes": "15"})
    page = b.get("/audit").get_data(as_text=True)
    assert "paused the internet for Amira" in page
    assert "paused the internet for the whole centre" in page


# ---- the block page of a browser the DNS filter sent to the appliance ----


def blocked_site(b: Any, method: str, host: str, path: str = "/", **kw: Any) -> Any:
    call = b.client.get if method == "GET" else b.client.post
    return call(path, base_url=f"http://{host}", environ_base={"REMOTE_ADDR": CHILD_IP}, **kw)


def test_a_dns_blocked_browser_asks_to_use_the_site_from_its_block_page(browse, db, accounts):
    b = browse(CHILD_IP)
    page = blocked_site(b, "GET", "www.facebook.com").get_data(as_text=True)  # the guest: social networks
    assert "Ask to use this site" in page and f'action="{ASK_PATH}"' in page
    token = re.search(r'name="token" value="([^"]+)"', page)
    assert token is not None
    response = blocked_site(
        b, "POST", "www.facebook.com", ASK_PATH, data={"token": token.group(1), "note": " for  school "}
    )
    assert response.status_code == 200 and "Staff have been asked" in response.get_data(as_text=True)
    [ask] = controls.pending_asks(db, time.time())
    assert (ask.host, ask.client, ask.subject, ask.note, ask.category) == (
        "www.facebook.com",
        CHILD_IP,
        "guest",
        "for school",
        "social-networks",
    )
    staff = staff_on(browse, "staff")
    assert [a["host"] for a in staff.get("/alerts/live").get_json()["asks"]] == ["www.facebook.com"]


def test_an_ask_without_the_block_pages_token_is_not_sent(browse, db):
    b = browse(CHILD_IP)
    page = blocked_site(b, "GET", "www.facebook.com").get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    for host, sent in (("www.facebook.com", "forged"), ("www.instagram.com", token)):
        response = blocked_site(b, "POST", host, ASK_PATH, data={"token": sent})
        assert response.status_code == 400, host
    assert controls.pending_asks(db, time.time()) == []


def test_no_ask_is_offered_for_a_site_blocked_for_everyone(browse, db):
    b = browse(CHILD_IP)
    page = blocked_site(b, "GET", "malware.testcategory.com").get_data(as_text=True)
    assert "This page is blocked" in page and "Ask to use this site" not in page


def test_until_closing_is_the_end_of_the_open_window_else_midnight():
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/London")
    rule = ScheduleRule((Schedule("opening", (Window(parse_days("mon-fri"), 15 * 60, 19 * 60 + 30),)),))
    monday_4pm = 1796601600.0 + 16 * 3600
    assert closing_time(rule, monday_4pm, zone) == monday_4pm + 3.5 * 3600
    assert closing_time(None, monday_4pm, zone) == 1796601600.0 + 24 * 3600
    sunday_noon = 1796601600.0 - 12 * 3600
    assert closing_time(rule, sunday_noon, zone) == 1796601600.0  # closed now: to midnight


@pytest.mark.parametrize("minutes", ["0", "abc", "100000"])
def test_a_pause_of_no_sensible_length_is_refused(browse, db, accounts, minutes):
    amira = add_child(db)
    staff_on(browse, "staff").post(
        "/controls/pause", {"scope": "child", "child": amira.id, "minutes": minutes}
    )
    assert controls.active_pauses(db, time.time()) == []
