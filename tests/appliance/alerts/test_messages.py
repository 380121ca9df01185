"""What a message says, and what it never says unless the centre chose to share it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.alerts.messages import (
    alert_message,
    channel_failure_message,
    digest_counts,
    digest_message,
    plain_words,
)
from appliance.store.secrets import token_digest
from profiles.alerts import AlertPolicy, Share
from tests.appliance.alerts.stage import CATEGORIES, Stage

# Monday 7 December 2026, 14:05 in Kampala (UTC+3).
RAISED = datetime(2026, 12, 7, 11, 5, tzinfo=UTC).timestamp()
KAMPALA = ZoneInfo("Africa/Kampala")
POLICY = AlertPolicy(centre="Kampala youth centre", link_base="https://appliance.lan/")


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    s = Stage(tmp_path / "events.sqlite")
    s.child("c1", "Amira Nakato")
    yield s
    s.close()


def _alert(stage: Stage) -> int:
    event = stage.event(
        RAISED, "self-harm", host="hurt.example", url="https://hurt.example/how?q=x", terms="how to hurt"
    )
    return stage.alert(RAISED, events=(event,))


def test_an_alert_message_carries_the_minimum(stage: Stage) -> None:
    alert = _alert(stage)
    m = alert_message(stage.db, POLICY, alert, "duty", now=RAISED, zone=KAMPALA, categories=CATEGORIES)
    assert m.title == "CRITICAL alert: self-harm (Kampala youth centre)"
    for said in (
        "Severity: critical",
        "What: Self-harm: sites that encourage hurting oneself",
        "Centre: Kampala youth centre",
        "When: Mon 7 Dec 2026, 14:05 (EAT)",  # the centre's clock, not UTC
        f"https://appliance.lan/alerts/{alert}\n",
        "https://appliance.lan/alerts/ack/",
    ):
        assert said in m.body + "\n"


@pytest.mark.parametrize(
    ("share", "said", "unsaid"),
    [
        (Share(), [], ["Amira", "hurt.example", "how to hurt"]),
        (Share(child_name=True), ["Child: Amira Nakato"], ["hurt.example", "how to hurt"]),
        (Share(site=True), ["Site: https://hurt.example/how?q=x"], ["Amira", "how to hurt"]),
        (Share(search_terms=True), ["Search terms: how to hurt"], ["Amira", "hurt.example"]),
        (
            Share(child_name=True, site=True, search_terms=True),
            ["Amira Nakato", "https://hurt.example/how?q=x", "how to hurt"],
            [],
        ),
    ],
)
def test_nothing_about_the_child_leaves_unless_shared(
    stage: Stage, share: Share, said: list[str], unsaid: list[str]
) -> None:
    alert = _alert(stage)
    policy = AlertPolicy(centre="Kampala youth centre", link_base="https://appliance.lan", share=share)
    m = alert_message(stage.db, policy, alert, "duty", now=RAISED, zone=KAMPALA, categories=CATEGORIES)
    text = m.title + "\n" + m.body
    for s in said:
        assert s in text
    for s in unsaid:
        assert s not in text


def test_the_acknowledge_link_is_single_use_and_stored_only_as_its_digest(stage: Stage) -> None:
    alert = _alert(stage)
    m = alert_message(stage.db, POLICY, alert, "lead", now=RAISED, zone=KAMPALA)
    token = m.body.split("/alerts/ack/")[1].split()[0]
    rows = stage.db.execute("SELECT token_hash, alert, contact, expires, used FROM alert_links").fetchall()
    assert rows == [(token_digest(token), alert, "lead", RAISED + POLICY.link_ttl_s, None)]
    again = alert_message(stage.db, POLICY, alert, "lead", now=RAISED, zone=KAMPALA)
    assert again.body.split("/alerts/ack/")[1].split()[0] != token  # every message its own link


@pytest.mark.parametrize(
    ("kind", "category", "rule", "words"),
    [
        ("category", "self-harm", "x", "Self-harm: sites that encourage hurting oneself"),
        ("category", "dating", "strangers", "Dating"),
        (
            "personal-info",
            "",
            "personal-info",
            "personal information sent (a phone number, an address or the like)",
        ),
        ("child-report", "", "child-report", 'a child pressed "report a problem"'),
        ("bypass", "", "bypass", "trying to get round the filter"),
        ("watch-list", "", "grooming", "grooming"),  # no category: the rule's name
        ("category", "unknown-cat", "r", "unknown cat"),
    ],
)
def test_the_category_in_plain_words(kind: str, category: str, rule: str, words: str) -> None:
    assert plain_words(kind, category, rule, CATEGORIES) == words


def test_a_repeated_alert_says_how_many_times(stage: Stage) -> None:
    alert = stage.alert(RAISED, count=7)
    m = alert_message(stage.db, POLICY, alert, "duty", now=RAISED, zone=KAMPALA)
    assert "Seen 7 times" in m.body


def test_the_digest_counts_the_three_cs_of_its_period_and_what_is_open(stage: Stage) -> None:
    day = 24 * 3600.0
    since = RAISED - day
    for category, n in (("self-harm", 3), ("dating", 2), ("filter-bypass", 4), ("", 1)):
        for i in range(n):
            stage.event(RAISED - 60 * i, category)
    stage.event(RAISED, "self-harm", url="https://hurt.example/")  # a web request counts too
    stage.event(RAISED, "self-harm", notable=False)  # not notable: not counted
    stage.event(since - 1, "self-harm")  # before the period
    stage.alert(RAISED)
    stage.alert(RAISED, severity="high")
    stage.db.execute("UPDATE alerts SET acknowledged = ? WHERE severity = 'high'", (RAISED,))
    stage.alert(since - 10)  # raised before the period, still open
    stage.incident(RAISED)
    stage.incident(RAISED, status="closed")
    counts = digest_counts(stage.db, since, RAISED + 1, CATEGORIES)
    assert counts.areas == {"content": 4, "contact": 2, "conduct": 4, "other": 1}
    assert counts.alerts == {"critical": 1, "high": 1, "medium": 0}
    assert (counts.open_incidents, counts.unacknowledged) == (1, 2)
    m = digest_message(POLICY, counts, since=since, until=RAISED, zone=KAMPALA, weekly=False)
    assert m.title == "Daily safeguarding digest (Kampala youth centre)"
    for said in (
        "content (what a child saw or looked for): 4",
        "contact (who a child dealt with): 2",
        "conduct (what a child did): 4",
        "other: 1",
        "Alerts raised: 1 critical, 1 high, 0 medium",
        "Alerts not yet acknowledged: 2",
        "Incidents open: 1",
    ):
        assert said in m.body
    assert "hurt.example" not in m.body


def test_a_channel_failure_report_names_the_channel_never_its_address() -> None:
    m = channel_failure_message(
        POLICY, "duty", "ntfy", attempts=3, error="Connection refused", since=RAISED, zone=KAMPALA
    )
    assert m.title == "Alerts cannot reach duty by ntfy (Kampala youth centre)"
    assert "failed 3 times since Mon 7 Dec 2026, 14:05 (EAT)" in m.body
    assert "Connection refused" in m.body
    assert "://" not in m.body.replace("https://appliance.lan/alerts", "")
