"""Time budgets on the child's page and in the portal, as HTTP conversations: the lead (or the
administrator) sets a child's own daily budget, staff may not; staff add time with a reason and what is
left grows; every form needs its CSRF token; every change is in the audit log; the signed-in child reads
what is left in the portal and is told at five minutes left."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from appliance.store import audit, people
from appliance.store import controls as store_controls
from profiles.controls import Budget
from tests.dashboard.conftest import CHILD_IP, add_child


def _day(config, now: float) -> str:
    return datetime.fromtimestamp(now, ZoneInfo(config.policy.timezone)).date().isoformat()


def _used(db, config, child: str, n: int, category: str = "") -> None:
    """`n` active minutes today (the internet, or `category`), as the event writer records them."""
    now = time.time()
    minute = int(now // 60)
    store_controls.record_activity(db, [(_day(config, now), child, category, minute - k) for k in range(n)])


def _audit(db, action: str) -> list[audit.AuditEntry]:
    return [e for e in audit.entries(db) if e.action == action]


def _time_left(page: str) -> str:
    return page.split('id="time-left"')[1].split("</ul>")[0]


@pytest.fixture
def amira(db) -> people.ChildRecord:
    return add_child(db, "Amira", "10-12")


def test_the_lead_sets_a_childs_own_budget_and_the_page_says_what_is_left(
    browse, accounts, db, config, amira
):
    lead = browse(as_user="lead")
    page = lead.get(f"/people/children/{amira.id}").get_data(as_text=True)
    assert "No time budget" in page and "Set Amira's own daily budget" in page
    response = lead.post(
        f"/people/children/{amira.id}/budget",
        {"minutes": "60", "category-games": "30", "category-social-networks": ""},
    )
    assert response.status_code == 302
    assert store_controls.child_budgets(db)[amira.id] == Budget(minutes=60, categories={"games": 30})
    _used(db, config, amira.id, 20)
    _used(db, config, amira.id, 26, "games")
    page = lead.get(f"/people/children/{amira.id}").get_data(as_text=True)
    assert "Their own budget: 60 minutes of internet a day; minutes a day for Online games 30" in page
    left = _time_left(page)
    assert "The internet: 40 minutes left" in left and "Online games: 4 minutes left" in left
    assert 'class="budget-warned">Online games' in left
    (entry,) = _audit(db, "set-budget")
    assert (entry.username, entry.subject) == ("lead", f"child:{amira.id}")


def test_the_administrator_may_set_a_budget_staff_may_not(browse, accounts, db, amira):
    staff = browse(as_user="staff")
    page = staff.get(f"/people/children/{amira.id}").get_data(as_text=True)
    assert "Set Amira's own daily budget" not in page
    assert staff.post(f"/people/children/{amira.id}/budget", {"minutes": "600"}).status_code == 403
    assert store_controls.child_budgets(db) == {}
    admin = browse(as_user="admin")
    admin.get(f"/people/children/{amira.id}")
    assert admin.post(f"/people/children/{amira.id}/budget", {"minutes": "90"}).status_code == 302
    assert store_controls.child_budgets(db)[amira.id] == Budget(minutes=90)


def test_a_budget_form_with_a_mistake_changes_nothing(browse, accounts, db, amira):
    lead = browse(as_user="lead")
    lead.get(f"/people/children/{amira.id}")
    response = lead.post(f"/people/children/{amira.id}/budget", {"minutes": "an hour"})
    assert response.status_code == 400
    assert "Internet a day: write a number of minutes, like 30." in response.get_data(as_text=True)
    too_long = lead.post(f"/people/children/{amira.id}/budget", {"minutes": "60", "category-games": "2000"})
    assert too_long.status_code == 400 and "between 0 and 1440 minutes" in too_long.get_data(as_text=True)
    assert store_controls.child_budgets(db) == {} and _audit(db, "set-budget") == []


def test_back_to_the_profiles_budget(browse, accounts, db, amira):
    store_controls.set_child_budget(db, amira.id, Budget(minutes=45), by="lead", now=time.time())
    lead = browse(as_user="lead")
    lead.get(f"/people/children/{amira.id}")
    assert lead.post(f"/people/children/{amira.id}/budget", {"use_profile": "1"}).status_code == 302
    assert store_controls.child_budgets(db) == {}
    assert len(_audit(db, "set-budget")) == 2


def test_staff_add_time_with_a_reason_and_what_is_left_grows(browse, accounts, db, config, amira):
    store_controls.set_child_budget(db, amira.id, Budget(minutes=30), by="lead", now=time.time())
    _used(db, config, amira.id, 30)
    staff = browse(as_user="staff")
    page = staff.get(f"/people/children/{amira.id}").get_data(as_text=True)
    assert "The internet: used up for today" in _time_left(page)
    response = staff.post(
        f"/people/children/{amira.id}/time", {"minutes": "15", "category": "", "reason": "homework to finish"}
    )
    assert response.status_code == 302
    page = staff.get(f"/people/children/{amira.id}").get_data(as_text=True)
    assert "Added 15 minutes of the internet for Amira today." in page
    assert "The internet: 15 minutes left" in _time_left(page)
    assert "with 15 minutes staff added" in _time_left(page)
    (entry,) = _audit(db, "add-time")
    assert entry.username == "staff" and "homework to finish" in entry.detail
    assert store_controls.extra(db, _day(config, time.time())) == {amira.id: {"": 15}}


@pytest.mark.parametrize(
    ("form", "said"),
    [
        ({"minutes": "0", "category": ""}, "Extra time: between 1 and 240 minutes."),
        ({"minutes": "lots", "category": ""}, "Extra time: write a number of minutes, like 30."),
        ({"minutes": "10", "category": "games"}, "Choose something their budget limits"),
    ],
)
def test_time_is_added_only_to_what_the_budget_limits_in_sensible_amounts(
    browse, accounts, db, amira, form, said
):
    store_controls.set_child_budget(db, amira.id, Budget(minutes=30), by="lead", now=time.time())
    staff = browse(as_user="staff")
    staff.get(f"/people/children/{amira.id}")
    response = staff.post(f"/people/children/{amira.id}/time", form)
    assert response.status_code == 400 and said in response.get_data(as_text=True)
    assert _audit(db, "add-time") == []


def test_no_time_is_added_for_a_child_without_a_budget(browse, accounts, db, amira):
    staff = browse(as_user="staff")
    staff.get(f"/people/children/{amira.id}")
    response = staff.post(f"/people/children/{amira.id}/time", {"minutes": "10", "category": ""})
    assert response.status_code == 400 and "no time budget" in response.get_data(as_text=True)


def test_every_budget_form_needs_its_csrf_token(browse, accounts, db, amira):
    store_controls.set_child_budget(db, amira.id, Budget(minutes=30), by="lead", now=time.time())
    lead = browse(as_user="lead")
    lead.get(f"/people/children/{amira.id}")
    for path, form in (("budget", {"minutes": "600"}), ("time", {"minutes": "10", "category": ""})):
        assert lead.post(f"/people/children/{amira.id}/{path}", form, token=False).status_code == 400
    assert store_controls.child_budgets(db)[amira.id] == Budget(minutes=30)
    assert _audit(db, "add-time") == []
    # The same forms with the page's token go through.
    lead.get(f"/people/children/{amira.id}")
    assert (
        lead.post(f"/people/children/{amira.id}/time", {"minutes": "10", "category": ""}).status_code == 302
    )
    assert lead.post(f"/people/children/{amira.id}/budget", {"minutes": "45"}).status_code == 302
    assert store_controls.child_budgets(db)[amira.id] == Budget(minutes=45)


def test_looking_at_a_childs_page_is_in_the_audit_log_by_name(browse, accounts, amira):
    browse(as_user="staff").get(f"/people/children/{amira.id}")
    page = browse(as_user="lead").get("/audit").get_data(as_text=True)
    assert "Staff Person looked at Amira&#39;s page (where they are signed in, their time today)" in page


def test_an_unknown_child_has_no_page(browse, accounts):
    assert browse(as_user="staff").get("/people/children/nobody").status_code == 404


def test_the_children_list_links_each_childs_page(browse, accounts, amira):
    page = browse(as_user="staff").get("/people").get_data(as_text=True)
    assert f'href="/people/children/{amira.id}">Amira</a>' in page


def _portal_signed_in(browse, db, child: people.ChildRecord):
    now = time.time()
    people.start_session(db, child.id, CHILD_IP, CHILD_IP, now, now + 3600, 1200)
    return browse(CHILD_IP).get("/portal").get_data(as_text=True)


def test_the_portal_shows_a_signed_in_child_what_is_left(browse, db, config, amira):
    store_controls.set_child_budget(
        db, amira.id, Budget(minutes=60, categories={"games": 30}), by="lead", now=0
    )
    _used(db, config, amira.id, 10)
    _used(db, config, amira.id, 30, "games")
    page = _portal_signed_in(browse, db, amira)
    assert "Your time today" in page
    assert "The internet: 50 minutes left" in page
    assert "Online games: used up for today. It comes back tomorrow." in page
    assert 'id="time-nearly-up"' not in page


def test_the_portal_tells_a_child_at_five_minutes_left(browse, db, config, amira):
    store_controls.set_child_budget(
        db, amira.id, Budget(minutes=60, categories={"games": 30}), by="lead", now=0
    )
    _used(db, config, amira.id, 55)
    _used(db, config, amira.id, 26, "games")
    page = _portal_signed_in(browse, db, amira)
    notice = page.split('id="time-nearly-up"')[1].split("</p>")[0]
    assert "5 minutes of the internet left today." in notice
    assert "4 minutes of online games left today." in notice


def test_the_portal_says_nothing_of_time_where_there_is_no_budget(browse, db, amira):
    page = _portal_signed_in(browse, db, amira)
    assert "You are signed in as Amira" in page and "Your time today" not in page
