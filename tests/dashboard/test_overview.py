"""The overview, staff's home page, as HTTP conversations: "/" is the overview and the flagged feed moved
to /flagged; it says "All is well" or how many things need staff now; who is signed in where, today's
notable events by severity, pending asks, pauses with until when, budgets nearly spent, the machine's
health in words; /overview/live gives the same as JSON (not audited, not counted as use)."""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from appliance.heartbeat import FOLDER
from appliance.lists import report_path
from appliance.store import audit, people
from appliance.store import controls as store_controls
from appliance.store.backup import back_up
from profiles.categories import Severity
from profiles.controls import Budget, Scope
from profiles.verdict import Action
from tests.dashboard.conftest import CHILD_IP, add_child, child_who, verdict

HOUR = 3600.0


@pytest.fixture(autouse=True)
def compile_report(config, compiled_index):
    """The compile's report beside the index, as `appliance lists compile` leaves it (the bench links
    the index alone): the overview reads the lists' age from it."""
    shutil.copyfile(compiled_index.parent / report_path(config).name, report_path(config))


def _signed_in(db, name: str, address: str, now: float) -> people.ChildRecord:
    child = add_child(db, name)
    people.start_session(db, child.id, address, address, now, now + 4 * HOUR, 1200)
    return child


def minutes_used(db, config, child: str, n: int, now: float, category: str = "") -> None:
    """`n` active minutes today (of the internet, or `category`) ending at `now`, as the event writer
    records them: by the centre's date."""
    day = datetime.fromtimestamp(now, ZoneInfo(config.policy.timezone)).date().isoformat()
    minute = int(now // 60)
    store_controls.record_activity(db, [(day, child, category, minute - k) for k in range(n)])


def _audit_actions(db) -> list[str]:
    return [e.action for e in audit.entries(db)]


def test_staff_land_on_the_overview_and_the_flagged_feed_is_at_flagged(browse, accounts):
    b = browse()
    assert b.sign_in("staff").location == "/"
    page = b.get("/").get_data(as_text=True)
    assert "<h1>Overview</h1>" in page
    nav = page.split("<nav>")[1].split("</nav>")[0]
    assert re.findall(r">([A-Z][a-z]+)</a>", nav)[:2] == ["Overview", "Flagged"]
    assert 'href="/flagged"' in nav
    for path in ("/flagged", "/review"):  # the old address keeps working for bookmarks
        response = b.get(path)
        assert response.status_code == 200 and "<h1>Flagged access</h1>" in response.get_data(as_text=True)


def test_the_overview_is_for_staff_only(browse, accounts):
    assert browse().get("/").status_code == 302  # to the sign-in page
    assert browse().get("/overview/live").status_code == 302
    assert browse(CHILD_IP).get("/").status_code == 403


def test_a_quiet_centre_is_all_well(browse, accounts):
    page = browse(as_user="staff").get("/").get_data(as_text=True)
    assert "All is well" in page
    assert "Nobody is signed in at the portal." in page
    assert "Nothing is paused." in page and "Nobody is waiting for an answer." in page
    assert "Nothing flagged or blocked today." in page
    live = browse(as_user="staff").get("/overview/live").get_json()
    assert live["summary"] == "All is well" and live["needs"] == []
    assert {h["what"]: h["ok"] for h in live["health"]} == {
        "Services": True,  # none has reported: the dashboard on its own, as here
        "Disk": True,
        "Lists": True,
        "Head office": True,
        "Alert messages": True,
        "Backup": True,  # none yet: the first is made at night
    }


def test_a_signed_in_child_a_pause_an_ask_and_a_budget_nearly_spent(browse, accounts, db, config):
    now = time.time()
    amira = _signed_in(db, "Amira", CHILD_IP, now)
    sam = _signed_in(db, "Sam", "127.0.0.32", now)
    store_controls.pause(
        db,
        scope=Scope.CHILD,
        target=sam.id,
        label="Sam",
        minutes=30,
        by="staff",
        reason="talk first",
        now=now,
    )
    store_controls.ask(
        db,
        subject=f"child:{amira.id}",
        child=amira.id,
        device=CHILD_IP,
        client=CHILD_IP,
        label="Amira",
        host="www.roblox.com",
        category="games",
        profile="10-12",
        note="for the club's game night",
        now=now,
    )
    store_controls.set_child_budget(db, amira.id, Budget(minutes=30), by="lead", now=now)
    minutes_used(db, config, amira.id, 27, now)

    live = browse(as_user="staff").get("/overview/live").get_json()
    assert live["summary"] == "1 thing needs you now"
    assert live["needs"] == ["1 ask to use a site"]
    assert sorted((s["name"], s["device"]) for s in live["signed_in"]) == [
        ("Amira", CHILD_IP),
        ("Sam", "127.0.0.32"),
    ]
    assert [(a["who"], a["host"]) for a in live["asks"]] == [("Amira", "www.roblox.com")]
    (pause,) = live["pauses"]
    assert pause["what"] == "Sam" and pause["until"].startswith("until ")
    assert live["budgets"] == [{"name": "Amira", "left": ["The internet: 3 minutes left"]}]

    page = browse(as_user="staff").get("/").get_data(as_text=True)
    assert "1 thing needs you now" in page
    assert "<strong>Amira</strong> asks to use <strong>www.roblox.com</strong>" in page
    assert "for the club's game night" in page.replace("&#39;", "'")
    assert 'href="/controls"' in page
    sams = re.search(r"Sam</a></strong>\s+on 127\.0\.0\.32(?:(?!</li>).)*</li>", page, re.S)
    # (a pause past midnight names its day: "paused until Tue 00:10")
    assert sams and re.search(r"paused until (?:\w{3} )?\d\d:\d\d", sams.group(0))
    assert "by Staff Person: talk first" in page  # who paused, by the name staff know them by
    amiras = re.search(r"Amira</a></strong>\s+on 127\.0\.0\.31(?:(?!</li>).)*</li>", page, re.S)
    assert amiras and "paused" not in amiras.group(0)
    assert "The internet: 3 minutes left" in page


def test_the_centre_pause_covers_children_not_staff_and_the_button_posts_the_controls_fields(
    browse, accounts, db
):
    now = time.time()
    _signed_in(db, "Amira", CHILD_IP, now)
    store_controls.pause(
        db, scope=Scope.CENTRE, target="", label="the centre", minutes=None, by="lead", reason="", now=now
    )
    b = browse(as_user="staff")
    live = b.get("/overview/live").get_json()
    assert live["pauses"] == [
        {"id": live["pauses"][0]["id"], "what": "the whole centre", "until": "until resumed"}
    ]
    page = b.get("/").get_data(as_text=True)
    assert "paused until resumed" in page
    form = page.split('action="/controls/pause"')[1].split("</form>")[0]
    names = set(re.findall(r'name="([a-z_]+)"', form))
    assert {"csrf_token", "scope", "minutes", "reason"} <= names
    assert 'name="scope" value="centre"' in form


def test_todays_notable_events_are_counted_by_severity_with_the_last_few(
    app, config, browse, accounts, db, events
):
    amira = add_child(db, "Amira")
    # The dashboard's clock at midday: a minute ago is today whatever the hour the suite runs at.
    now = datetime.now(ZoneInfo(config.policy.timezone)).replace(hour=12, minute=0).timestamp()
    app.config["NOW"] = now
    who = child_who(amira.id)
    events.dns(now - 60, who, "www.pornhub.com", verdict(Action.BLOCK, "porn", Severity.HIGH))
    events.dns(now - 50, who, "www.bet365.com", verdict(Action.BLOCK, "gambling", Severity.MEDIUM))
    events.dns(now - 40, who, "www.poker.com", verdict(Action.BLOCK, "gambling", Severity.MEDIUM))
    events.dns(now - 2 * 86400, who, "old.example", verdict(Action.BLOCK, "porn", Severity.CRITICAL))
    live = browse(as_user="staff").get("/overview/live").get_json()
    assert live["counts"] == {"critical": 0, "high": 1, "medium": 2, "low": 0}
    events_html = live["html"]["events"]
    assert events_html.index("www.poker.com") < events_html.index("www.pornhub.com")
    assert "old.example" not in events_html and "Amira" in events_html


def test_looking_at_the_overview_is_audited_its_polls_are_not_and_do_not_keep_a_sign_in(
    app, browse, accounts, db
):
    b = browse(as_user="staff")
    b.get("/")
    assert _audit_actions(db).count("view-overview") == 1
    for _ in range(3):
        assert b.get("/overview/live").status_code == 200
    assert _audit_actions(db).count("view-overview") == 1
    # An hour of polls alone ends the sign-in, as the alert banner's do.
    app.config["NOW"] = time.time() + HOUR
    assert b.get("/overview/live").status_code == 302


def test_the_machines_troubles_need_staff(browse, accounts, config):
    report_path(config).unlink()  # as if no compile ever finished
    live = browse(as_user="staff").get("/overview/live").get_json()
    assert live["summary"] == "1 thing needs you now"
    (lists,) = [h for h in live["health"] if h["what"] == "Lists"]
    assert not lists["ok"] and "No lists are compiled yet" in lists["words"]
    assert live["needs"] == ["lists: " + lists["words"]]


def test_the_live_sections_are_the_pages_own_and_the_page_has_no_inline_script(browse, accounts, db):
    b = browse(as_user="staff")
    response = b.get("/")
    page = response.get_data(as_text=True)
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'self' only
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert '<script src="/static/overview.js" defer>' in page
    live = b.get("/overview/live").get_json()
    for name in ("summary", "signed-in", "events", "asks", "pauses", "budgets", "health"):
        assert f'data-section="{name}"' in page
        assert live["html"][name].strip() in page


def _beat(config, role: str, at: float) -> None:
    alive = config.data_dir / FOLDER
    alive.mkdir(parents=True, exist_ok=True)
    (alive / role).touch()
    os.utime(alive / role, (at, at))


def _health(browse) -> dict[str, tuple[bool, str]]:
    live = browse(as_user="staff").get("/overview/live").get_json()
    return {h["what"]: (h["ok"], h["words"]) for h in live["health"]}


def test_a_service_that_stopped_beating_is_named_and_needs_staff(browse, accounts, config):
    now = time.time()
    for role in ("dns", "proxy", "alerts"):
        _beat(config, role, now)
    assert _health(browse)["Services"] == (True, "Running: the alerter, the DNS filter, the proxy.")
    _beat(config, "proxy", now - 600)
    ok, words = _health(browse)["Services"]
    assert not ok and words.startswith("Not running: the proxy (last heard less than an hour ago)")
    live = browse(as_user="staff").get("/overview/live").get_json()
    assert live["summary"] != "All is well" and any("the proxy" in need for need in map(str, live["needs"]))


def test_the_last_backup_is_said_and_a_missed_one_needs_staff(browse, accounts, config, db):
    back_up(config.events_path, config.data_dir / "backups", now=time.time() - 3 * HOUR)
    assert _health(browse)["Backup"] == (True, "Last made 3 hours ago.")
    back_up(config.events_path, config.data_dir / "backups", now=time.time() - 3 * 86400)
    ok, words = _health(browse)["Backup"]
    assert not ok and "3 days ago" in words


def test_a_signed_in_child_is_paused_in_one_click_from_the_overview(browse, accounts, db):
    now = time.time()
    amira = _signed_in(db, "Amira", CHILD_IP, now)
    b = browse(as_user="staff")
    page = b.get("/").get_data(as_text=True)
    forms = re.findall(r'<form method="post" action="/controls/pause"(?:(?!</form>).)*</form>', page, re.S)
    form = next((f for f in forms if 'name="scope" value="child"' in f), "")
    assert f'name="child" value="{amira.id}"' in form, "a Pause button beside the signed-in child"
    assert 'aria-label="pause the internet for Amira"' in form
    response = b.post("/controls/pause", {"scope": "child", "child": amira.id, "minutes": "15", "back": "/"})
    assert response.status_code == 302 and response.location == "/"
    (pause,) = store_controls.active_pauses(db, time.time())
    assert (pause.scope, pause.target, pause.by) == (Scope.CHILD, amira.id, "staff")
    page = b.get("/").get_data(as_text=True)
    amiras = re.search(r"Amira</a></strong>(?:(?!</li>).)*</li>", page, re.S)
    assert amiras and "paused until" in amiras.group(0) and "/controls/pause" not in amiras.group(0)
