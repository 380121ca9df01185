"""Incidents, as HTTP conversations: staff open one from a flagged event (or several chosen in the feed),
work it and escalate it; only the e-safety lead closes one, records its outcome or opens it again; an
incident outlives the events it was opened from."""

from __future__ import annotations

import re
import time

from appliance.store import staff
from appliance.store.schema import connect
from appliance.store.staff import Role
from dashboard import create_app
from profiles.categories import Severity
from profiles.verdict import Action
from tests.appliance.store.test_schema import make_v5_with_mixed_records
from tests.dashboard.conftest import PASSWORD, STAFF_IP, Browser, add_child, child_who, verdict


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


def _post_events(b, url: str, data: dict) -> object:
    """A form with several `event` values (the feed's checkboxes)."""
    return b.client.post(url, data={**data, "csrf_token": b.token}, environ_base={"REMOTE_ADDR": b.address})


def test_an_incident_from_two_childrens_events_is_refused_naming_both(browse, accounts, db, events):
    amira, ben = add_child(db, "Amira"), add_child(db, "Ben", pin="5555")
    now = time.time()
    events.dns(now - 60, child_who(amira.id), "tinder.com", verdict(Action.BLOCK, "dating", Severity.HIGH))
    events.dns(now - 30, child_who(ben.id), "badoo.com", verdict(Action.BLOCK, "dating"))
    b = browse(as_user="staff")
    chosen = re.findall(r'name="event" value="([a-z]+:\d+)"', b.get("/review").get_data(as_text=True))
    response = _post_events(b, "/incidents/new", {"event": chosen, "title": "Dating sites"})
    assert response.status_code == 302 and "/incidents/" not in response.location
    page = b.get(response.location).get_data(as_text=True)
    assert "These events are of more than one child (Amira and Ben)" in page
    assert "open one incident per child" in page
    assert db.execute("SELECT count(*) FROM incidents").fetchone() == (0,)


def test_events_are_added_to_an_incident_of_the_same_child_and_the_event_page_links_it(
    browse, accounts, db, events
):
    amira, ben = add_child(db, "Amira"), add_child(db, "Ben", pin="5555")
    now = time.time()
    events.dns(now - 90, child_who(amira.id), "tinder.com", verdict(Action.BLOCK, "dating"))
    events.dns(now - 60, child_who(amira.id), "badoo.com", verdict(Action.BLOCK, "dating", Severity.HIGH))
    events.dns(now - 30, child_who(ben.id), "bumble.com", verdict(Action.BLOCK, "dating"))
    b = browse(as_user="staff")
    feed = b.get("/review").get_data(as_text=True)
    ids = dict(
        (host, event) for event, host in re.findall(r'/review/event/([a-z]+:\d+)">([a-z.]+)</a>', feed)
    )
    number = _incident_number(b.post("/incidents/new", {"event": ids["tinder.com"], "title": "x"}).location)
    # The event page of Amira's other event offers her open incident, and adding it says so.
    page = b.get(f"/review/event/{ids['badoo.com']}").get_data(as_text=True)
    assert f'<option value="{number}">{number}: x (new)</option>' in page
    response = b.post("/incidents/add", {"event": ids["badoo.com"], "add_to": str(number)})
    assert response.location.endswith(f"/incidents/{number}")
    page = b.get(f"/incidents/{number}").get_data(as_text=True)
    assert "badoo.com" in page and "added 1 event(s)" in page and 'class="sev-high">high' in page
    page = b.get(f"/review/event/{ids['badoo.com']}").get_data(as_text=True)
    assert f'href="/incidents/{number}">incident {number}: x</a>' in page
    # Ben's event is not offered for Amira's incident, and adding it by number is refused.
    page = b.get(f"/review/event/{ids['bumble.com']}").get_data(as_text=True)
    assert "Add to an incident" not in page
    response = b.post("/incidents/add", {"event": ids["bumble.com"], "add_to": str(number)})
    page = b.get(response.location).get_data(as_text=True)
    assert f"Incident {number} is about Amira; these events are of Ben" in page
    assert "bumble.com" not in b.get(f"/incidents/{number}").get_data(as_text=True)
    # From the feed: the chosen events, the incident's number typed in.
    response = _post_events(b, "/incidents/add", {"event": [ids["tinder.com"]], "add_to": "999"})
    assert "There is no incident 999" in b.get(response.location).get_data(as_text=True)


def test_the_printable_record_names_whose_each_event_is(browse, accounts, db, events):
    amira = add_child(db, "Amira")
    events.dns(time.time(), child_who(amira.id), "tinder.com", verdict(Action.BLOCK, "dating"))
    b = browse(as_user="staff")
    event_id = re.search(r"/review/event/([a-z]+:\d+)", b.get("/review").get_data(as_text=True)).group(1)
    number = _incident_number(b.post("/incidents/new", {"event": event_id, "title": "x"}).location)
    printed = b.get(f"/incidents/{number}/print").get_data(as_text=True)
    assert "<th>Whose</th>" in printed and '<td class="whose">Amira</td>' in printed


def test_records_flagged_by_the_version_6_migration_are_shown_to_the_lead_who_resolves_them(
    make_config, tmp_path
):
    config = make_config()
    config.events_path.parent.mkdir(parents=True, exist_ok=True)
    make_v5_with_mixed_records(config.events_path)
    app = create_app(config, {"TESTING": True})
    db = connect(config.events_path)
    for role in (Role.STAFF, Role.LEAD):
        staff.add_user(db, role.value, f"{role.label} Person", role, PASSWORD, time.time())
    member = Browser(app.test_client(), STAFF_IP)
    member.sign_in("staff")
    page = member.get("/incidents/1").get_data(as_text=True)
    assert "Flagged for the e-safety lead" in page and "holds events of 2 people" in page
    assert "This incident holds events of 2 different people (Amira, Ben)" in page
    assert '<td class="whose">Ben</td>' in page and "Mark resolved" not in page  # the lead's to resolve
    assert "Flagged for the e-safety lead" not in member.get("/incidents/2").get_data(as_text=True)
    listed = member.get("/incidents").get_data(as_text=True)
    assert listed.count("(flagged: events of more than one child)") == 1
    printed = member.get("/incidents/1/print").get_data(as_text=True)
    assert '<td class="whose">Amira</td>' in printed and '<td class="whose">Ben</td>' in printed
    people_page = member.get("/people").get_data(as_text=True)
    assert people_page.count("another active child has the same name") == 2
    lead = Browser(app.test_client(), STAFF_IP)
    lead.sign_in("lead")
    audit = lead.get("/audit").get_data(as_text=True)
    assert audit.count("The appliance flagged") == 3
    page = lead.get("/incidents/1").get_data(as_text=True)
    flag = re.search(r'action="/flags/(\d+)/resolve"', page).group(1)
    assert member.post(f"/flags/{flag}/resolve", {"back": "/incidents/1"}).status_code == 403
    assert lead.post(f"/flags/{flag}/resolve", {"back": "/incidents/1"}).location.endswith("/incidents/1")
    page = lead.get("/incidents/1").get_data(as_text=True)
    assert "Flagged for the e-safety lead" not in page and "flag resolved: holds events of 2 people" in page
    assert "This incident holds events of 2 different people" in page  # the events say whose, still
    db.close()
