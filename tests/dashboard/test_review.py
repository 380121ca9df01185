"""The review feed, as HTTP conversations: staff find a child's flagged and blocked events, newest first,
see why, filter them; every look at a child's events lands in the audit log (incidents opened from the
feed: test_incidents.py)."""

from __future__ import annotations

import re
import time

from appliance.store import audit
from profiles.categories import Severity
from profiles.verdict import Action, Step
from tests.dashboard.conftest import add_child, child_who, device_who, verdict


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
    assert "Blocked: pornography and sexual content. Listed by the list “demo-list”, line 12." in page
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


def test_a_visit_retried_by_the_browser_is_one_row_with_its_attempts(browse, accounts, db, events):
    """Twelve TLS tries, the DNS answers before them and the page: one row of the feed, "15 attempts,
    first–last", and the event page says how many and when (docs/store.md#visits)."""
    amira = add_child(db, "Amira")
    who = child_who(amira.id)
    blocked = verdict(Action.BLOCK, "adult", Severity.HIGH, line=12)
    first = time.time() - 600
    events.dns(first, who, "www.pornhub.com", blocked)
    events.dns(first, who, "www.pornhub.com", blocked, qtype="AAAA")
    for i in range(12):
        events.web(first + 5 + 10 * i, who, "https://www.pornhub.com/", blocked)
    events.web(first + 130, who, "https://www.pornhub.com/favicon.ico", blocked)
    staff = browse(as_user="staff")
    page = staff.get("/review").get_data(as_text=True)
    table = page.split('<table id="feed">')[1].split("</table>")[0]
    assert table.count("www.pornhub.com</a>") == 1
    assert re.search(r"15 attempts, \d\d:\d\d–\d\d:\d\d", table)
    event_id = re.search(r'name="event" value="([^"]+)"', table).group(1)
    shown = staff.get(f"/review/event/{event_id}").get_data(as_text=True)
    assert re.search(
        r"15 attempts in this visit, the first at \d\d:\d\d:\d\d, the last at \d\d:\d\d:\d\d", shown
    )


def test_a_single_attempt_says_so(browse, accounts, db, events):
    amira = add_child(db, "Amira")
    events.dns(time.time() - 60, child_who(amira.id), "bet.example", verdict(Action.BLOCK, "gambling"))
    table = browse(as_user="staff").get("/review").get_data(as_text=True).split('<table id="feed">')[1]
    assert "1 attempt<" in table and "attempts," not in table
