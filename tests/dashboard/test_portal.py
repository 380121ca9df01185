"""The children's portal as HTTP conversations: sign in with a name and PIN after accepting the rules,
see the monitoring notice, sign out; wrong PINs are throttled, per child from any number of devices; a
sign-in lasts to closing time (after midnight too) and while in use from a renewed address; everything is
recorded in the store."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from appliance.events.values import Answer, Asker
from appliance.store import audit, people
from profiles.identity import Child, Identity, Via
from profiles.verdict import Action
from tests.dashboard.conftest import CHILD_IP, Browser, add_child, verdict


def _sign_in(b, name="Amira", pin="4826", accept=True):
    b.get("/portal")
    form = {"name": name, "pin": pin}
    if accept:
        form["accept"] = "yes"
    return b.post("/portal/signin", form)


def test_a_child_signs_in_accepts_the_rules_and_sees_the_monitoring_notice(browse, db):
    amira = add_child(db, "Amira")
    b = browse(CHILD_IP)
    page = b.get("/portal").get_data(as_text=True)
    assert "Our rules" in page and "filtered and monitored" in page and ">Amira</button>" not in page
    response = _sign_in(b)
    assert response.status_code == 302
    page = b.get("/portal").get_data(as_text=True)
    assert "You are signed in as Amira" in page and "filtered and monitored" in page
    (session,) = people.open_sessions(db, time.time())
    assert (session.child, session.device, session.client) == (amira.id, CHILD_IP, CHILD_IP)
    assert db.execute("SELECT count(*) FROM acceptances WHERE child = ?", (amira.id,)).fetchone() == (1,)


def test_no_sign_in_without_accepting_the_rules_or_with_a_wrong_pin(browse, db):
    add_child(db, "Amira")
    b = browse(CHILD_IP)
    refused = _sign_in(b, accept=False)
    assert refused.status_code == 400 and "tick the box" in refused.get_data(as_text=True)
    wrong = _sign_in(b, pin="0000")
    assert wrong.status_code == 401 and "do not match" in wrong.get_data(as_text=True)
    assert _sign_in(b, name="Nobody").status_code == 401
    assert people.open_sessions(db, time.time()) == []


def test_two_children_with_one_name_are_told_apart_by_their_pin(browse, db):
    add_child(db, "Sam", pin="1111")
    second = add_child(db, "Sam B", pin="2222")
    # Names are unique among active children now; a store from before version 6 may still hold two.
    db.execute("UPDATE children SET display_name = 'Sam' WHERE id = ?", (second.id,))
    b = browse(CHILD_IP)
    assert _sign_in(b, "sam", "2222").status_code == 302
    (session,) = people.open_sessions(db, time.time())
    assert session.child == second.id


def test_wrong_pins_lock_that_child_only_and_say_how_long(app, browse, db):
    t0 = app.config["NOW"] = time.time()
    add_child(db, "Amira")
    add_child(db, "Ben", pin="5555")
    b = browse(CHILD_IP)
    for _ in range(5):
        assert _sign_in(b, pin="9999").status_code == 401
    locked = _sign_in(b)  # even the right PIN, for a while, from this device or any other
    assert locked.status_code == 429 and locked.headers["Retry-After"] == str(15 * 60)
    assert "Too many wrong PINs for Amira. Try again in 15 minutes" in locked.get_data(as_text=True)
    assert _sign_in(browse("127.0.0.32")).status_code == 429
    # Nobody else is locked out: Ben signs in on another device, and on this one once it is no longer slowed.
    assert _sign_in(browse("127.0.0.33"), "Ben", "5555").status_code == 302
    app.config["NOW"] = t0 + 10 * 60
    assert _sign_in(b, "Ben", "5555").status_code == 302
    later = _sign_in(browse("127.0.0.34"))
    assert later.status_code == 429 and "Try again in 5 minutes" in later.get_data(as_text=True)
    app.config["NOW"] = t0 + 15 * 60 + 1
    assert _sign_in(browse("127.0.0.34")).status_code == 302


def test_a_device_trying_many_names_is_slowed_not_locked(app, browse, db):
    t0 = app.config["NOW"] = time.time()
    add_child(db, "Amira")
    b = browse(CHILD_IP)
    for name in ("Ann", "Bob", "Cat", "Dan", "Eve"):  # one wrong try each: no child is locked
        assert _sign_in(b, name, "1234").status_code == 401
    slowed = _sign_in(b)
    page = slowed.get_data(as_text=True)
    assert slowed.status_code == 429 and slowed.headers["Retry-After"] == "5"
    assert "Too many wrong PINs on this device. Please wait 5 seconds, then try again." in page
    assert _sign_in(browse("127.0.0.32")).status_code == 302  # another device is not slowed
    app.config["NOW"] = t0 + 5
    assert _sign_in(b, "Fay", "1234").status_code == 401  # tried, and the next wait is twice as long
    again = _sign_in(b)
    assert again.status_code == 429 and "wait 10 seconds" in again.get_data(as_text=True)
    app.config["NOW"] = t0 + 15
    assert _sign_in(b).status_code == 302


def test_staff_unlock_a_locked_child_from_the_childrens_page_and_it_is_audited(app, browse, accounts, db):
    app.config["NOW"] = time.time()
    amira = add_child(db, "Amira")
    child = browse(CHILD_IP)
    for _ in range(5):
        _sign_in(child, pin="9999")
    assert _sign_in(child).status_code == 429
    # Only staff may lift it: not a child's device, not a staff form without its token.
    browse(CHILD_IP).post(f"/people/children/{amira.id}/unlock", {})
    desk = browse(as_user="staff")
    assert desk.post(f"/people/children/{amira.id}/unlock", {}, token=False).status_code == 400
    assert people.pin_locked_until(db, amira.id, app.config["NOW"]) is not None
    page = desk.get("/people").get_data(as_text=True)
    assert f'id="locked-{amira.id}"' in page and "Locked after wrong PINs until" in page
    assert desk.post(f"/people/children/{amira.id}/unlock", {}).status_code == 302
    assert "Locked after wrong PINs" not in desk.get("/people").get_data(as_text=True)
    (entry,) = [e for e in audit.entries(db) if e.action == "unlock-pin"]
    assert entry.subject == f"child:{amira.id}" and entry.detail.startswith("locked until ")
    assert _sign_in(browse("127.0.0.32")).status_code == 302


def test_a_pin_reset_lifts_the_lock(app, browse, accounts, db):
    app.config["NOW"] = time.time()
    amira = add_child(db, "Amira")
    for _ in range(5):
        _sign_in(browse(CHILD_IP), pin="9999")
    assert _sign_in(browse("127.0.0.32")).status_code == 429
    desk = browse(as_user="staff")
    desk.get("/people")
    assert desk.post(f"/people/children/{amira.id}/pin", {"pin": "7294"}).status_code == 302
    assert _sign_in(browse("127.0.0.32"), pin="7294").status_code == 302


def test_a_name_longer_than_the_field_is_refused_not_cut(browse, db):
    add_child(db, "Amira")
    b = browse(CHILD_IP)
    response = _sign_in(b, name="Amira" + "x" * 70)
    assert response.status_code == 400 and "at most 64 letters" in response.get_data(as_text=True)
    assert 'id="name" name="name" value="Amira' in response.get_data(as_text=True)  # what they typed stays
    assert people.open_sessions(db, time.time()) == []


# Tuesday 1 December 2026, in the demo's time zone (Europe/London): the 10-12 profile opens mon-fri
# 15:00-19:30 and sat 10:00-17:00 (allowlist only outside).
LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("local", "said"),
    [
        (
            datetime(2026, 12, 1, 12, 0, tzinfo=LONDON),
            "The internet is closed for you now. It opens today at 15:00.",
        ),
        (datetime(2026, 12, 1, 20, 0, tzinfo=LONDON), "It opens tomorrow at 15:00."),
        (datetime(2026, 12, 5, 18, 0, tzinfo=LONDON), "It opens on Monday 7 December at 15:00."),
        (datetime(2026, 12, 1, 16, 0, tzinfo=LONDON), None),
    ],
)
def test_the_welcome_page_says_when_the_internet_opens_if_it_is_closed(app, browse, db, local, said):
    app.config["NOW"] = local.timestamp()
    add_child(db, "Amira")
    b = browse(CHILD_IP)
    assert _sign_in(b).status_code == 302
    page = b.get("/portal").get_data(as_text=True)
    assert "You are signed in as Amira" in page
    if said is None:
        assert "closed for you" not in page
    else:
        assert said in page and "only the sites chosen for you work" in page


def test_the_guest_page_knows_who_is_signed_in_on_this_device(browse, db):
    add_child(db, "Amira")
    b = browse(CHILD_IP)
    page = b.get("/portal/guest").get_data(as_text=True)
    assert "This device is not signed in" in page
    _sign_in(b)
    page = b.get("/portal/guest").get_data(as_text=True)
    assert "This device is signed in as Amira" in page and "not signed in" not in page
    assert 'id="sign-out"' in page
    assert b.post("/portal/signout", {}).status_code == 302
    assert people.open_sessions(db, time.time()) == []
    assert "This device is not signed in" in b.get("/portal/guest").get_data(as_text=True)


def test_sign_out_ends_the_session_and_a_new_sign_in_replaces_the_old(browse, db):
    add_child(db, "Amira")
    ben = add_child(db, "Ben", pin="5555")
    b = browse(CHILD_IP)
    _sign_in(b)
    _sign_in(b, "Ben", "5555")  # on the same device: Amira's session ends
    (session,) = people.open_sessions(db, time.time())
    assert session.child == ben.id
    b.post("/portal/signout", {})
    assert people.open_sessions(db, time.time()) == []
    assert "signed out" in b.get("/portal?signed_out=1").get_data(as_text=True)


def test_no_sign_in_after_closing_time(make_config, db):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from dashboard import create_app
    from tests.dashboard.conftest import Browser

    config = make_config('portal:\n  closing_time: "11:00"\n')
    noon = datetime.now(ZoneInfo(config.policy.timezone)).replace(hour=12, minute=0).timestamp()
    app = create_app(config, {"TESTING": True, "NOW": noon})
    add_child(db, "Amira")
    response = _sign_in(Browser(app.test_client(), CHILD_IP))
    assert response.status_code == 403 and "day is over" in response.get_data(as_text=True)


def test_only_the_centres_own_pcs_list_the_childrens_names(browse, db):
    add_child(db, "Amira")
    people.save_device(db, people.DeviceRecord("room1-pc1", None, CHILD_IP, "10-12", True), time.time())
    people.save_device(db, people.DeviceRecord("visitor", None, "127.0.0.33", "10-12", False), time.time())
    assert ">Amira</button>" in browse(CHILD_IP).get("/portal").get_data(as_text=True)
    for other in ("127.0.0.33", "127.0.0.34"):  # named but not managed; unknown
        assert ">Amira</button>" not in browse(other).get("/portal").get_data(as_text=True)


def test_a_name_the_dns_filter_sent_here_gets_the_block_page_not_the_dashboard(browse, db):
    """`blocked_answer: block-page` points a blocked name at the appliance: a browser not sent through
    the proxy then asks this web server for it, and a child must see why, not a staff page."""
    b = browse(CHILD_IP)
    for path in ("/", "/videos/123", "/signin"):
        response = b.client.get(
            path, base_url="http://www.pornhub.com", environ_base={"REMOTE_ADDR": CHILD_IP}
        )
        page = response.get_data(as_text=True)
        assert response.status_code == 403
        assert "This page is blocked" in page and "www.pornhub.com" in page and "staff only" not in page
        assert "demo-adult" in page  # the list that blocks it, for the member of staff who helps
    # The appliance's own names still give the portal and the dashboard.
    for own in ("http://appliance.lan", "http://127.0.0.1:8000", "http://localhost"):
        assert (
            b.client.get("/portal", base_url=own, environ_base={"REMOTE_ADDR": CHILD_IP}).status_code == 200
        )


def test_the_portal_and_the_block_page_are_one_look(browse):
    """A child moving between the portal and a block page sees one design: the same document head and
    the same style sheet (the portal adds a few rules of its own after it)."""
    b = browse(CHILD_IP)
    portal = b.get("/portal").get_data(as_text=True)
    blocked = b.client.get("/", base_url="http://www.pornhub.com", environ_base={"REMOTE_ADDR": CHILD_IP})
    page = blocked.get_data(as_text=True)

    def head(html: str) -> str:
        return html.split("<title>", 1)[0]

    def style(html: str) -> str:
        return html.split("<style>", 1)[1].split("</style>", 1)[0]

    assert head(portal) == head(page)
    assert style(portal).startswith(style(page))
    assert ".names{" in style(portal) and ".names{" not in style(page)
    footer = "<footer>This connection is filtered and monitored to keep everyone safe.</footer>"
    assert footer in portal and footer in page


def test_pin_guesses_against_one_child_are_limited_from_any_number_of_devices(browse, db):
    add_child(db, "Amira", pin="4826")
    refused = 0
    for n in range(8):
        b = browse(f"127.0.1.{n}")
        for guess in range(3):
            b.get("/portal")
            response = b.post("/portal/signin", {"name": "Amira", "pin": f"{n}{guess:03d}", "accept": "yes"})
            refused += response.status_code == 429
    assert refused == 8 * 3 - 5  # five wrong PINs for one child, then every device is told to wait


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


def test_the_welcome_and_guest_pages_offer_the_certificate_for_own_devices(browse, db):
    add_child(db, "Amira")
    b = browse(CHILD_IP)
    link = '<a href="/ca/own">See why a site is blocked, on your own phone</a>'
    assert link in b.get("/portal/guest").get_data(as_text=True)
    _sign_in(b)
    assert link in b.get("/portal").get_data(as_text=True)
    assert link in b.get("/portal/guest").get_data(as_text=True)
