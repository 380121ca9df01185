"""Flagged access and incidents, as HTTP conversations: staff find a child's flagged event, see why,
open an incident, work it, escalate it; every look at a child's events lands in the audit log."""

from __future__ import annotations

import re
import time

from appliance.store import audit
from profiles.categories import Severity
from profiles.verdict import Action, Step
from tests.dashboard.conftest import add_child, child_who, device_who, verdict


def _incident_number(location: str) -> int:
    found = re.search(r"/incidents/(\d+)$", location)
    assert found, location
    return int(found.group(1))


def test_the_feed_shows_flagged_and_blocked_events_newest_first_with_why(browse, accounts, db, events):
    amira = add_child(db, "Amira")
    now = time.time()
    who = child_who(amira.id)
    events.dns(now - 300, who, "www.pornhub.com", verdict(Action.BLOCK, "adult", Severity.HIGH, line=12))
    events.web(
        now - 60,
        who,
        "https://www.google.com/search?q=how+to+run+away",
        verdict(
            Action.ALLOW,
            "self-harm",
            Severity.HIGH,
            flag=True,
            step=Step.WATCH_LIST,
            detail="watch list: running away",
        ),
        terms="how to run away",
        status=200,
    )
    events.dns(now - 30, who, "en.wikipedia.org", verdict(Action.ALLOW, "", Severity.NONE))  # not notable
    page = browse(as_user="staff").get("/review").get_data(as_text=True)
    assert "www.pornhub.com" in page and "www.google.com" in page
    assert "en.wikipedia.org" not in page
    assert page.index("www.google.com") < page.index("www.pornhub.com")  # newest first
    assert "Amira" in page and amira.id not in page.split("<table")[1].split("</table>")[0].replace(
        f'value="{amira.id}"', ""
    )
    assert "demo-list:12" in page  # the list and line that blocked it
    assert "how to run away" in page  # the search terms that triggered the flag


def test_filters_by_child_category_area_severity_and_date(browse, accounts, db, events):
    amira, ben = add_child(db, "Amira"), add_child(db, "Ben")
    now = time.time()
    events.dns(
        now - 100, child_who(amira.id), "www.pornhub.com", verdict(Action.BLOCK, "adult", Severity.HIGH)
    )
    events.dns(
        now - 90, child_who(ben.id), "www.bet365.com", verdict(Action.BLOCK, "gambling", Severity.MEDIUM)
    )
    events.dns(now - 80, device_who("room1-pc1"), "tinder.com", verdict(Action.BLOCK, "dating", Severity.LOW))
    b = browse(as_user="staff")
    table = [
        ({"child": amira.id}, {"www.pornhub.com"}),
        ({"child": ben.id}, {"www.bet365.com"}),
        ({"device": "room1-pc1"}, {"tinder.com"}),
        ({"category": "gambling"}, {"www.bet365.com"}),
        ({"area": "contact"}, {"tinder.com"}),
        ({"severity": "medium"}, {"www.pornhub.com", "www.bet365.com"}),
        ({"since": "2000-01-01", "until": "2000-01-02"}, set()),
    ]
    hosts = {"www.pornhub.com", "www.bet365.com", "tinder.com"}
    for query, expected in table:
        page = b.get("/review", query_string=query).get_data(as_text=True)
        shown = {h for h in hosts if f">{h}</a>" in page}
        assert shown == expected, query


def test_looking_at_a_childs_events_is_audited(browse, accounts, db, events):
    amira = add_child(db, "Amira")
    events.dns(time.time(), child_who(amira.id), "www.pornhub.com", verdict(Action.BLOCK, "adult"))
    b = browse(as_user="staff")
    b.get("/review", query_string={"child": amira.id})
    page = b.get("/review").get_data(as_text=True)
    event_id = re.search(r"/review/event/([a-z]+:\d+)", page).group(1)
    b.get(f"/review/event/{event_id}")
    seen = [(e.username, e.action, e.subject) for e in audit.entries(db)]
    assert ("staff", "view-events", f"child:{amira.id}") in seen
    assert ("staff", "view-event", f"child:{amira.id}") in seen


def test_an_incident_is_opened_from_an_event_worked_and_escalated(browse, accounts, db, events):
    amira = add_child(db, "Amira")
    events.dns(time.time(), child_who(amira.id), "tinder.com", verdict(Action.BLOCK, "dating", Severity.HIGH))
    b = browse(as_user="staff")
    page = b.get("/review").get_data(as_text=True)
    event_id = re.search(r"/review/event/([a-z]+:\d+)", page).group(1)
    b.get(f"/review/event/{event_id}")
    response = b.post("/incidents/new", {"event": event_id, "title": "Dating site attempts"})
    assert response.status_code == 302
    number = _incident_number(response.location)
    page = b.get(f"/incidents/{number}").get_data(as_text=True)
    assert "Dating site attempts" in page and "tinder.com" in page and "Amira" in page
    assert "contact" in page  # dating is a contact risk
    b.post(f"/incidents/{number}/change", {"change": "status", "status": "reviewing"})
    b.post(f"/incidents/{number}/change", {"change": "note", "note": "Spoke with Amira; she was curious."})
    b.post(
        f"/incidents/{number}/change",
        {"change": "escalate", "contact": "E-safety lead", "note": "Told the lead in person."},
    )
    page = b.get(f"/incidents/{number}").get_data(as_text=True)
    assert 'id="incident-status" class="status status-escalated">escalated' in page
    assert "Spoke with Amira" in page and "escalated to E-safety lead: Told the lead in person." in page
    printed = b.get(f"/incidents/{number}/print").get_data(as_text=True)
    assert "e-safety incident" in printed and "tinder.com" in printed and "<form" not in printed


def test_staff_cannot_close_or_record_the_outcome_the_lead_can(browse, accounts, db, events):
    amira = add_child(db, "Amira")
    events.dns(time.time(), child_who(amira.id), "tinder.com", verdict(Action.BLOCK, "dating"))
    s = browse(as_user="staff")
    event_id = re.search(r"/review/event/([a-z]+:\d+)", s.get("/review").get_data(as_text=True)).group(1)
    number = _incident_number(s.post("/incidents/new", {"event": event_id, "title": "x"}).location)
    assert s.post(f"/incidents/{number}/change", {"change": "status", "status": "closed"}).status_code == 403
    lead = browse(as_user="lead")
    lead.get(f"/incidents/{number}")
    lead.post(f"/incidents/{number}/change", {"change": "outcome", "outcome": "Talked it through."})
    lead.post(f"/incidents/{number}/change", {"change": "status", "status": "closed"})
    page = lead.get(f"/incidents/{number}").get_data(as_text=True)
    assert "status-closed" in page and "Talked it through." in page


def test_an_incident_outlives_the_events_it_was_opened_from(browse, accounts, db, events):
    amira = add_child(db, "Amira")
    events.dns(time.time(), child_who(amira.id), "tinder.com", verdict(Action.BLOCK, "dating"))
    b = browse(as_user="staff")
    event_id = re.search(r"/review/event/([a-z]+:\d+)", b.get("/review").get_data(as_text=True)).group(1)
    number = _incident_number(b.post("/incidents/new", {"event": event_id, "title": "kept"}).location)
    db.execute("DELETE FROM events")
    assert b.get(f"/review/event/{event_id}").status_code == 404
    assert "tinder.com" in b.get(f"/incidents/{number}").get_data(as_text=True)


def test_the_lead_reads_the_audit_log_newest_first_and_by_member_of_staff(browse, accounts, db, events):
    amira = add_child(db, "Amira")
    events.dns(time.time(), child_who(amira.id), "www.pornhub.com", verdict(Action.BLOCK, "adult"))
    browse(as_user="staff").get("/review", query_string={"child": amira.id})
    lead = browse(as_user="lead")
    page = lead.get("/audit").get_data(as_text=True)
    rows = page.split('<table id="audit">')[1]
    assert "view-events" in rows and "Amira" in rows  # whose events, by display name
    assert rows.index("<td>staff:staff</td>") > rows.index(
        "view-events"
    )  # newest first: the sign-in came before
    only_staff = lead.get("/audit", query_string={"username": "staff"}).get_data(as_text=True)
    assert "lead" not in only_staff.split('<table id="audit">')[1].replace("Lead", "")


def test_one_incident_from_several_events_chosen_in_the_feed(browse, accounts, db, events):
    amira = add_child(db, "Amira")
    now = time.time()
    events.dns(now - 60, child_who(amira.id), "tinder.com", verdict(Action.BLOCK, "dating", Severity.MEDIUM))
    events.dns(now - 30, child_who(amira.id), "badoo.com", verdict(Action.BLOCK, "dating", Severity.HIGH))
    b = browse(as_user="staff")
    chosen = re.findall(r'name="event" value="([a-z]+:\d+)"', b.get("/review").get_data(as_text=True))
    assert len(chosen) == 2
    response = b.client.post(
        "/incidents/new",
        data={"event": chosen, "title": "Dating sites, twice", "csrf_token": b.token},
        environ_base={"REMOTE_ADDR": b.address},
    )
    page = b.get(response.location).get_data(as_text=True)
    assert "tinder.com" in page and "badoo.com" in page and "opened from 2 event(s)" in page
    assert 'class="sev-high">high' in page  # the highest of the events'
