"""What an independent review found, as specifications: requests the appliance's own proxy forwards,
sign-outs that really end a sign-in, redirects that stay on the site, PIN guessing limited per child,
reports that survive retention, sessions kept alive from a new address, audited views, closed incidents,
closing times after midnight, set-up links, and lock-outs."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from appliance.config.store import StoreSettings
from appliance.events.values import Answer, Asker
from appliance.forwarding import CLIENT_HEADER, forwarded_client, forwarding_key, stamp
from appliance.net import is_own_address
from appliance.store import audit, people, reports, staff
from appliance.store.retention import purge
from profiles.identity import Child, Identity, Via
from profiles.verdict import Action
from tests.dashboard.conftest import CHILD_IP, PASSWORD, Browser, add_child, child_who, verdict


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


def test_the_client_header_is_believed_only_signed_and_only_from_the_appliance_itself(tmp_path):
    key, other = forwarding_key(tmp_path), forwarding_key(tmp_path / "elsewhere")
    now = time.time()
    signed = stamp(key, "192.168.50.23", now)
    assert forwarded_client("127.0.0.1", signed, key, now) == "192.168.50.23"
    assert forwarded_client("192.0.2.77", signed, key, now) == "192.0.2.77"  # only from the appliance
    assert forwarded_client("127.0.0.1", "192.168.50.23", key, now) == "127.0.0.1"  # unsigned: the remote
    assert forwarded_client("127.0.0.1", stamp(other, "192.168.50.23", now), key, now) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", signed, key, now + 600) == "127.0.0.1"  # too old
    assert forwarded_client("127.0.0.1", signed.replace("23", "24", 1), key, now) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", "x y z\u00e9", key, now) == "127.0.0.1"
    assert is_own_address("127.0.0.1") and not is_own_address("192.0.2.77")
    assert forwarding_key(tmp_path) == key and (tmp_path / "forwarding.key").stat().st_mode & 0o777 == 0o600


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


def test_pin_guesses_against_one_child_are_limited_from_any_number_of_devices(browse, db):
    add_child(db, "Amira", pin="4826")
    refused = 0
    for n in range(8):
        b = browse(f"127.0.1.{n}")
        for guess in range(3):
            b.get("/portal")
            response = b.post("/portal/signin", {"name": "Amira", "pin": f"{n}{guess:03d}", "accept": "yes"})
            refused += response.status_code == 429
    assert refused == 8 * 3 - 10  # ten wrong PINs for one name, then every device is told to ask staff


def test_the_yearly_report_keeps_counting_events_past_retention(db, events, config):
    zone = ZoneInfo(config.policy.timezone)
    amira = add_child(db)
    old = time.time() - 60 * 86400
    events.dns(old, child_who(amira.id), "www.pornhub.com", verdict(Action.BLOCK, "adult"))
    period = reports.parse_period(str(datetime.fromtimestamp(old, zone).year), zone)
    before = reports.summary(db, period, {})
    assert purge(db, StoreSettings(), time.time(), zone=zone).events == 1
    after = reports.summary(db, period, {})
    assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)
    assert (after.total.events, after.total.blocked, after.children) == (1, 1, 1)
    assert (before.total.events, before.children) == (after.total.events, after.children)


def test_a_session_in_use_from_a_renewed_address_does_not_idle_out(db, events):
    amira = add_child(db)
    t0 = time.time()
    people.start_session(db, amira.id, "aa:bb:cc:dd:ee:01", "192.168.50.20", t0, t0 + 8 * 3600, 1200.0)
    who = Asker.of("192.168.50.77", Identity("10-12", Via.SESSION, child=Child(amira.id, "x", "10-12")))
    what = Answer.of("dns", "ok.example", "A", verdict(Action.ALLOW, "news"))
    for minute in (5, 10, 15):
        ts = t0 + minute * 60
        events.writer.write(
            events._defs(who, what),
            ([ts], [who.key], [what.key], [0.001]),
            [],
            ts,
            seen={(amira.id, who.client)},
        )
    assert people.open_sessions(db, t0 + 21 * 60)


def test_looking_at_incidents_children_and_devices_is_audited(browse, accounts, db):
    b = browse(as_user="admin")
    for page in ("/incidents", "/people", "/people/devices"):
        assert b.get(page).status_code == 200
    done = {e.action for e in audit.entries(db, username="admin")}
    assert {"view-incidents", "view-children", "view-devices"} <= done


def test_only_the_lead_opens_a_closed_incident_again(browse, accounts, db, events):
    import re

    amira = add_child(db)
    events.dns(time.time(), child_who(amira.id), "tinder.com", verdict(Action.BLOCK, "dating"))
    lead = browse(as_user="lead")
    event_id = re.search(r"/review/event/([a-z]+:\d+)", lead.get("/review").get_data(as_text=True)).group(1)
    number = lead.post("/incidents/new", {"event": event_id, "title": "x"}).location.rsplit("/", 1)[1]
    lead.post(f"/incidents/{number}/change", {"change": "status", "status": "closed"})
    member = browse(as_user="staff")
    member.get(f"/incidents/{number}")
    assert (
        member.post(f"/incidents/{number}/change", {"change": "status", "status": "new"}).status_code == 403
    )
    assert (
        lead.post(f"/incidents/{number}/change", {"change": "status", "status": "reviewing"}).status_code
        == 302
    )


def test_a_club_closing_after_midnight_lets_children_sign_in_in_the_evening(make_config, db):
    from dashboard import create_app

    config = make_config('portal:\n  closing_time: "01:00"\n')
    evening = datetime.now(ZoneInfo(config.policy.timezone)).replace(hour=21, minute=0).timestamp()
    app = create_app(config, {"TESTING": True, "NOW": evening})
    add_child(db, "Amira")
    b = Browser(app.test_client(), CHILD_IP)
    b.get("/portal")
    assert b.post("/portal/signin", {"name": "Amira", "pin": "4826", "accept": "yes"}).status_code == 302
    (session,) = people.open_sessions(db, evening)
    assert session.expires - evening == pytest.approx(4 * 3600, abs=3600)  # 01:00 (a DST night: 3 or 5 h)


def test_a_mistake_in_the_set_up_form_does_not_spend_the_link(browse, db):
    token = staff.make_setup_link(db, time.time())
    b = browse()
    b.get(f"/setup/{token}")
    form = {"username": "maria m", "display_name": "Maria", "password": PASSWORD, "again": PASSWORD}
    assert "use letters" in b.post(f"/setup/{token}", form).get_data(as_text=True)
    assert b.post(f"/setup/{token}", {**form, "username": "maria"}).status_code == 302


def test_someone_elses_wrong_guesses_do_not_lock_a_member_of_staff_out(browse, accounts):
    for n in range(3):
        attacker = browse(f"127.0.2.{n}")
        for _ in range(staff.MAX_FAILURES):
            attacker.sign_in("admin", "wrong wrong wrong")
    assert browse("127.0.0.1").sign_in("admin").status_code == 302
