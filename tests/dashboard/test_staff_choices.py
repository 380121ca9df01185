"""Staff are offered only what their role may do, and told of a refusal in the error colours, as HTTP
conversations (the change route still refuses what the page does not offer: test_incidents.py)."""

from __future__ import annotations

import re
import time

import pytest

from appliance.store.incidents import Status
from appliance.store.staff import Role
from dashboard.incidents import statuses_for
from profiles.verdict import Action
from tests.dashboard.conftest import add_child, child_who, verdict


@pytest.mark.parametrize(
    ("role", "now", "offered"),
    [
        (Role.STAFF, Status.NEW, [Status.NEW, Status.REVIEWING, Status.ESCALATED]),
        (Role.STAFF, Status.ESCALATED, [Status.NEW, Status.REVIEWING, Status.ESCALATED]),
        (Role.STAFF, Status.CLOSED, []),  # only the lead opens a closed incident again
        (Role.LEAD, Status.NEW, list(Status)),
        (Role.LEAD, Status.CLOSED, list(Status)),
        (Role.ADMIN, Status.REVIEWING, list(Status)),
    ],
)
def test_the_statuses_a_role_may_choose(role, now, offered):
    assert statuses_for(role, now) == offered


def _opened(browser, db, events) -> int:
    amira = add_child(db)
    events.dns(time.time(), child_who(amira.id), "tinder.com", verdict(Action.BLOCK, "dating"))
    event_id = re.search(r"/review/event/([a-z]+:\d+)", browser.get("/review").get_data(as_text=True)).group(
        1
    )
    location = browser.post("/incidents/new", {"event": event_id, "title": "x"}).location
    return int(location.rsplit("/", 1)[1])


def _status_options(page: str) -> list[str]:
    select = re.search(r'<select id="status" name="status">(.*?)</select>', page)
    return re.findall(r"<option[^>]*>(\w+)</option>", select.group(1)) if select else []


def test_staff_are_not_offered_closed_nor_the_outcome_and_the_lead_is(browse, accounts, db, events):
    member = browse(as_user="staff")
    number = _opened(member, db, events)
    page = member.get(f"/incidents/{number}").get_data(as_text=True)
    assert _status_options(page) == ["new", "reviewing", "escalated"]
    assert 'value="outcome"' not in page
    lead_page = browse(as_user="lead").get(f"/incidents/{number}").get_data(as_text=True)
    assert _status_options(lead_page) == ["new", "reviewing", "escalated", "closed"]
    assert 'value="outcome"' in lead_page


def test_a_closed_incident_offers_staff_no_status_change(browse, accounts, db, events):
    lead = browse(as_user="lead")
    number = _opened(lead, db, events)
    lead.post(f"/incidents/{number}/change", {"change": "status", "status": "closed"})
    page = browse(as_user="staff").get(f"/incidents/{number}").get_data(as_text=True)
    assert _status_options(page) == [] and 'id="set-status"' not in page
    assert "Only the e-safety lead opens it again." in page


def test_a_refusal_is_shown_as_an_error_and_a_success_as_news(browse, accounts, db, events):
    member = browse(as_user="staff")
    member.get("/review")
    refused = member.post("/incidents/new", {"title": "no events chosen"})
    page = member.get(refused.location).get_data(as_text=True)
    assert '<p class="error" role="alert">Choose at least one event' in page
    admin = browse(as_user="admin")
    admin.get("/people")
    form = {"display_name": "Ben", "pin": "5937", "again": "5937", "profile": "10-12"}
    added = admin.post("/people/children", form)
    page = admin.get(added.location).get_data(as_text=True)
    assert '<p class="flash" role="status">Added Ben' in page
