"""Incidents, as HTTP conversations: staff open one from a flagged event (or several chosen in the feed),
work it and escalate it; only the e-safety lead closes one, records its outcome or opens it again; an
incident outlives the events it was opened from."""

from __future__ import annotations

import re
import time

from profiles.categories import Severity
from profiles.verdict import Action
from tests.dashboard.conftest import add_child, child_who, verdict


def _incident_number(location: str) -> int:
    found = re.search(r"/incidents/(\d+)$", location)
    assert found, location
    return int(found.group(1))


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
