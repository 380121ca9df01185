"""The audit log, as the e-safety lead reads it: newest first, by member of staff; every look at a child's
events, the incidents, the children and the devices lands in it."""

from __future__ import annotations

import time

from appliance.store import audit
from profiles.verdict import Action
from tests.dashboard.conftest import add_child, child_who, verdict


def test_the_lead_reads_the_audit_log_in_sentences_with_names_newest_first(browse, accounts, db, events):
    amira = add_child(db, "Amira")
    events.dns(time.time(), child_who(amira.id), "www.pornhub.com", verdict(Action.BLOCK, "adult"))
    browse(as_user="staff").get("/review", query_string={"child": amira.id})
    browse(as_user="staff").get("/review")
    lead = browse(as_user="lead")
    page = lead.get("/audit").get_data(as_text=True)
    rows = page.split('<table id="audit"')[1]
    # Who by name, whose events by the child's name (never the id), the feed unfiltered as such.
    assert "Staff Person looked at Amira&#39;s events" in rows
    assert "Staff Person looked at the flagged feed" in rows
    assert amira.id not in rows and "view-events" not in rows and "newest" not in rows
    # Newest first: signed in, looked at Amira's events, then at the whole feed.
    feed, amiras = rows.index("looked at the flagged feed"), rows.index("looked at Amira")
    assert feed < amiras < rows.rindex("Staff Person signed in to the dashboard")
    only_staff = lead.get("/audit", query_string={"username": "staff"}).get_data(as_text=True)
    assert "Lead Person" not in only_staff.split('<table id="audit"')[1]


def test_audit_times_are_in_the_centres_zone_and_format(browse, accounts, db, config):
    assert config.policy.timezone == "Europe/London"
    audit.record(db, 1_751_360_400.0, None, "appliance", "add-staff", "staff:staff", "role staff")
    page = browse(as_user="lead").get("/audit").get_data(as_text=True)
    # 2025-07-01 09:00 UTC is 10:00 in London's summer time.
    assert "Tue 1 Jul 2025, 10:00" in page
    assert "appliance added Staff Person to the staff" in page


def test_looking_at_incidents_children_and_devices_is_audited(browse, accounts, db):
    b = browse(as_user="admin")
    for page in ("/incidents", "/people", "/people/devices"):
        assert b.get(page).status_code == 200
    done = {e.action for e in audit.entries(db, username="admin")}
    assert {"view-incidents", "view-children", "view-devices"} <= done
