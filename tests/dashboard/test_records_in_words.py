"""The event page and the incident record say why in sentences and name the child, never their
pseudonymous id: staff read "Blocked: pornography. Listed by ..., line 5." and "Amira", the rules
themselves stay folded away for whoever looks after the lists."""

from __future__ import annotations

import re
import time

from profiles.categories import Severity
from profiles.verdict import Action
from tests.dashboard.conftest import add_child, child_who, verdict


def test_the_event_page_and_the_incident_say_why_in_words_and_name_the_child_only(
    browse, accounts, db, events
):
    amira = add_child(db, "Amira")
    events.dns(
        time.time(),
        child_who(amira.id),
        "www.pornhub.com",
        verdict(Action.BLOCK, "adult", Severity.HIGH, source="demo-adult", line=5),
    )
    b = browse(as_user="staff")
    event_id = re.search(r"/review/event/([a-z]+:\d+)", b.get("/review").get_data(as_text=True)).group(1)

    page = b.get(f"/review/event/{event_id}").get_data(as_text=True)
    why = re.search(r'<p id="why">(.*?)</p>', page, re.S)
    assert why, page
    assert why.group(1).startswith("Blocked: pornography") and "line 5" in why.group(1)
    assert amira.id not in page

    number = re.search(r"/incidents/(\d+)$", b.post("/incidents/new", {"event": event_id}).location).group(1)
    for path in (f"/incidents/{number}", f"/incidents/{number}/print"):
        record = b.get(path).get_data(as_text=True)
        who = re.search(r'<td id="incident-who">(.*?)</td>', record, re.S)
        assert who and who.group(1).startswith("Amira"), path
        assert amira.id not in record and "child:" not in record, path
        assert "Blocked: pornography" in record and "demo-adult:5" not in record, path
