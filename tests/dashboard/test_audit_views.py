"""The audit log, as the e-safety lead reads it: newest first, by member of staff; every look at a child's
events, the incidents, the children and the devices lands in it."""

from __future__ import annotations

import time

from appliance.store import audit
from profiles.verdict import Action
from tests.dashboard.conftest import add_child, child_who, verdict


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


def test_looking_at_incidents_children_and_devices_is_audited(browse, accounts, db):
    b = browse(as_user="admin")
    for page in ("/incidents", "/people", "/people/devices"):
        assert b.get(page).status_code == 200
    done = {e.action for e in audit.entries(db, username="admin")}
    assert {"view-incidents", "view-children", "view-devices"} <= done
