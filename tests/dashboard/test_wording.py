"""Plain words for staff (dashboard/wording.py): a verdict's reasons in one sentence per effect and
category, the audit log's entries in sentences with names, times in the centre's format; and the feed's
"why" column saying it so, as an HTTP conversation."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dashboard.wording import (
    Vocabulary,
    alert_what,
    audit_line,
    category_label,
    centre_time,
    list_label,
    subject_words,
    why,
)
from profiles.categories import Severity
from profiles.verdict import Action, Step
from tests.dashboard.conftest import add_child, child_who, verdict

WORDS = Vocabulary(
    categories={"adult": "Pornography and sexual content", "ai-chatbots": "AI chatbots"},
    lists={"stevenblack-porn": "StevenBlack hosts (stevenblack-porn)"},
)


def reason(effect: str, category: str = "", *, step: str = "category", source: str = "", line: int = 0):
    return {"step": step, "effect": effect, "category": category, "source": source, "line": line, "rule": "x"}


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("adult", "pornography and sexual content"),  # the policy's title, in a sentence's case
        ("ai-chatbots", "AI chatbots"),  # an initialism keeps its capitals
        ("gambling", "gambling"),  # not in this policy: the shipped label
        ("centre-made-up", "centre made up"),  # known nowhere: its name in words
    ],
)
def test_a_category_is_said_in_plain_words(name, label):
    assert category_label(name, WORDS) == label


def test_a_list_is_named_by_who_publishes_it_or_quoted():
    assert list_label("stevenblack-porn", WORDS) == "StevenBlack hosts (stevenblack-porn)"
    assert list_label("our-own", WORDS) == "the list “our-own”"


@pytest.mark.parametrize(
    ("reasons", "said"),
    [
        # Two rules of one list for one category: one sentence, the list once, its first line.
        (
            [
                reason("block", "adult", source="stevenblack-porn", line=4512),
                reason("block", "adult", source="stevenblack-porn", line=4511),
            ],
            "Blocked: pornography and sexual content. Listed by StevenBlack hosts (stevenblack-porn),"
            " line 4,512.",
        ),
        # Two lists of one category: one sentence naming both.
        (
            [
                reason("block", "adult", source="stevenblack-porn", line=5),
                reason("block", "adult", source="b", line=9),
            ],
            "Blocked: pornography and sexual content. Listed by StevenBlack hosts (stevenblack-porn), line 5"
            " and by the list “b”, line 9.",
        ),
        # No category: the step in words, no list.
        ([reason("block", step="schedule")], "Blocked: outside opening hours."),
        # A block and a flag: the block first, then the flag.
        (
            [reason("flag", "self-harm", step="watch-list"), reason("block", step="schedule")],
            "Blocked: outside opening hours. Flagged: self-harm and suicide.",
        ),
        # An allowlist reason beside a flag is not the story; alone it is.
        ([reason("allow", step="allowlist"), reason("flag", "chat")], "Flagged: chat rooms and messaging."),
        ([reason("allow", step="allowlist")], "Allowed: a site made for children."),
        ([], ""),
    ],
)
def test_a_verdicts_reasons_become_one_sentence_per_effect_and_category(reasons, said):
    assert why(reasons, WORDS) == said


CHILDREN = {"cb248zkv": "Amira"}
STAFF = {"amina": "Amina Diallo"}


@pytest.mark.parametrize(
    ("action", "subject", "detail", "sentence", "kept"),
    [
        ("view-events", "feed", "newest", "Amina looked at the flagged feed", ""),
        (
            "view-events",
            "child:cb248zkv",
            "child=cb248zkv severity=high",
            "Amina looked at Amira's events",
            "at least high",
        ),
        (
            "view-events",
            "feed",
            "action=block area=content",
            "Amina looked at the flagged feed",
            "blocked only, three Cs: content",
        ),
        ("view-event", "child:cb248zkv", "dns:4", "Amina looked at one event of Amira", "dns:4"),
        ("reset-pin", "child:cb248zkv", "", "Amina reset Amira's PIN", ""),
        ("reset-pin", "child:gone0000", "", "Amina reset a child no longer listed's PIN", ""),
        ("add-staff", "staff:amina", "role lead", "Amina added Amina Diallo to the staff", "role lead"),
        ("open-incident", "incident:4", "dns:1, web:2", "Amina opened incident 4", "dns:1, web:2"),
        ("view-incident", "child:cb248zkv", "incident:4", "Amina looked at incident 4, about Amira", ""),
        (
            "change-incident",
            "child:cb248zkv",
            "incident:4 status closed",
            "Amina changed incident 4, about Amira",
            "status closed",
        ),
        ("unlock-pin", "child:cb248zkv", "", "Amina let Amira sign in again after wrong PINs", ""),
        (
            "add-to-incident",
            "child:cb248zkv",
            "incident:4 dns:7",
            "Amina added events to an incident about Amira",
            "incident:4 dns:7",
        ),
        ("resolve-flag", "incident:4", "d", "Amina marked the flag on incident 4 resolved", "d"),
        (
            "acknowledge-alert",
            "child:cb248zkv",
            "alert:3 critical self-harm via dashboard",
            "Amina acknowledged an alert about Amira",
            "alert:3 critical self-harm via dashboard",
        ),
        ("view-alert", "child:cb248zkv", "alert:3", "Amina looked at an alert about Amira", "alert:3"),
        ("view-alerts", "alerts", "", "Amina looked at the alerts", ""),
        ("something-new", "thing:1", "", "Amina did something new (thing:1)", ""),
    ],
)
def test_an_audit_entry_is_a_sentence_with_names(action, subject, detail, sentence, kept):
    line = audit_line(
        action=action, subject=subject, detail=detail, actor="Amina", children=CHILDREN, staff=STAFF
    )
    assert (line.sentence, line.detail) == (sentence, kept)


def test_what_the_appliance_itself_did_is_said_as_the_appliance():
    line = audit_line(
        action="flag-record",
        subject="incident:4",
        detail="holds events of 2 people",
        actor="appliance",
        children=CHILDREN,
        staff=STAFF,
    )
    assert line.sentence == "The appliance flagged incident 4 for the e-safety lead"


def test_an_alert_acknowledged_from_a_link_says_whose_link():
    line = audit_line(
        action="acknowledge-alert",
        subject="child:cb248zkv",
        detail="alert:3 critical self-harm via link:duty",
        actor="link:duty",
        children=CHILDREN,
        staff=STAFF,
    )
    assert line.sentence == "Someone with the link sent to duty acknowledged an alert about Amira"


@pytest.mark.parametrize(
    ("action", "subject", "detail", "sentence"),
    [
        (
            "raise-alert",
            "child:cb248zkv",
            "alert 5: self-harm (critical), 2 event(s) from web:3",
            "The appliance raised an alert about Amira",
        ),
        (
            "raise-alert",
            "device:hall-pc",
            "alert 6: bypass (high)",
            "The appliance raised an alert about device hall-pc",
        ),
        ("open-incident", "incident:4", "web:3, web:4", "The appliance opened incident 4"),
        (
            "alert-sent",
            "alert:5",
            "alert 5 (step 1) sent to duty by ntfy",
            "The appliance sent a message about alert 5",
        ),
        (
            "alert-failed",
            "alert:5",
            "alert 5 (step 2) to lead by email: attempt 1 failed (SMTP: connection refused)",
            "The appliance could not send a message about alert 5",
        ),
        (
            "alert-escalated",
            "alert:5",
            "step 2: lead",
            "The appliance told the next person on the ladder about alert 5: nobody had acknowledged it",
        ),
        ("alert-sent", "digest", "digest sent to lead by email", "The appliance sent the digest"),
        (
            "alert-failed",
            "test",
            "test to duty by ntfy not sent: HTTP 500",
            "The appliance could not send a test message",
        ),
        (
            "alert-sent",
            "channel-failure",
            "channel-failure sent to lead by email",
            "The appliance sent a warning that a channel is failing",
        ),
    ],
)
def test_what_the_alerter_did_is_said_in_words_with_its_detail_beside(action, subject, detail, sentence):
    line = audit_line(
        action=action, subject=subject, detail=detail, actor="appliance", children=CHILDREN, staff=STAFF
    )
    assert (line.sentence, line.detail) == (sentence, detail)


def test_a_link_acknowledgement_names_the_contact_by_their_display_name():
    line = audit_line(
        action="acknowledge-alert",
        subject="child:cb248zkv",
        detail="alert:3 critical self-harm via link:duty",
        actor="link:duty",
        children=CHILDREN,
        staff=STAFF,
        contacts={"duty": "Duty phone"},
    )
    assert line.sentence == "Someone with the link sent to Duty phone acknowledged an alert about Amira"


@pytest.mark.parametrize(
    ("kind", "category", "rule", "said"),
    [
        ("category", "adult", "adult-repeated", "pornography and sexual content"),
        ("watch-list", "self-harm", "self-harm", "self-harm and suicide"),
        ("watch-list", "", "grooming", "a watch-list search (grooming)"),
        ("child-report", "", "child-report", "the child reported a problem"),
        ("personal-info", "", "personal-info", "personal information sent"),
        ("bypass", "", "bypass", "trying to get round the filter"),
        ("something-new", "", "my-own-rule", "my own rule"),
    ],
)
def test_an_alert_is_said_by_its_category_else_its_kind_else_its_rule(kind, category, rule, said):
    assert alert_what(kind=kind, category=category, rule=rule, words=WORDS) == said


def test_a_subject_never_shows_a_childs_id():
    assert subject_words("child:cb248zkv", CHILDREN, STAFF) == "Amira"
    assert "zzz" not in subject_words("child:zzz", CHILDREN, STAFF)


def test_a_time_is_said_as_the_centre_reads_it():
    london = ZoneInfo("Europe/London")
    assert centre_time(datetime(2026, 12, 7, 9, 5, tzinfo=london)) == "Mon 7 Dec 2026, 09:05"


def test_the_feed_says_why_once_in_a_sentence_naming_the_list(browse, accounts, db, events):
    amira = add_child(db, "Amira")
    who = child_who(amira.id)
    # The same verdict twice in its reasons, as two rules of one list make it.
    twice = verdict(Action.BLOCK, "adult", Severity.HIGH, source="demo-adult", line=5, rule="www.pornhub.com")
    twice = replace(twice, reasons=twice.reasons * 2)
    events.dns(time.time() - 10, who, "www.pornhub.com", twice)
    events.dns(
        time.time() - 5,
        who,
        "late.example",
        verdict(Action.BLOCK, "", Severity.LOW, step=Step.SCHEDULE, source="", line=0),
    )
    page = browse(as_user="staff").get("/review").get_data(as_text=True)
    table = page.split('id="feed"')[1].split("</table>")[0]
    said = (
        "Blocked: pornography and sexual content."
        " Listed by this appliance&#39;s own list (demo-adult), line 5."
    )
    assert table.count(said) == 1
    assert "Blocked: outside opening hours." in table
    assert "demo-adult:5" not in table and "block: adult" not in table
