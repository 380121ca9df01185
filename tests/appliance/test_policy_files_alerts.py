"""alerts.yaml, the alerts policy file: the shipped one reads into the issue's defaults; a centre's own
(contacts, rota, ladder, digest) reads into its values; every mistake is refused with file:line and a
hint, and a channel URL Apprise does not know is refused without the URL (it may hold a password)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from appliance.config import PolicySettings
from appliance.policy_files import PolicyFileErrors, apprise_check, read_policy_files
from profiles.alerts import AlertKind, Channel, Contact, Digest, LadderStep, Repeats, Share, Shift
from profiles.categories import Severity

SHIPPED = PolicySettings()

CENTRE = """\
centre: Kampala youth centre
link_base: https://appliance.lan/
link_ttl_hours: 24
throttle_minutes: 15
rules:
  - {name: self-harm, severity: critical, when: {watch_list: [self-harm]}}
  - {name: strangers, severity: high, when: {category: [dating, chat]}}
  - {name: adult-repeated, severity: high, when: {category: [adult]}, repeats: {count: 3, within_minutes: 10}}
  - {name: bypass, severity: high, when: {bypass: true}, open_incident: true}
  - {name: medium, severity: medium, when: {severity: [medium]}, enabled: false}
contacts:
  duty: {name: Duty phone, channels: {ntfy: "ntfys://ntfy.example.org/centre-duty"}}
  lead:
    name: E-safety lead
    channels:
      email: "mailtos://lead:secret@mail.example.org?to=lead@example.org"
      hook: "json://hooks.example.org/alerts"
  out-of-hours: {channels: {sms: "json://sms.example.org/send"}}
rota:
  - {contact: duty, days: [mon, tue, wed, thu, fri], hours: "09:00-18:00"}
  - {contact: lead, days: sat-sun, hours: "22:00-02:00"}
out_of_hours: out-of-hours
ladder:
  - {after_minutes: 0, notify: on-duty}
  - {after_minutes: 10, notify: lead}
  - {after_minutes: 30, notify: out-of-hours, min_severity: critical}
digest: {to: lead, every: week, day: mon, at: "08:30"}
share: {child_name: false, site: true, search_terms: false}
"""


def settings(tmp_path: Path, text: str) -> tuple[PolicySettings, Path]:
    path = tmp_path / "alerts.yaml"
    path.write_text(text, encoding="utf-8")
    return dataclasses.replace(SHIPPED, alerts=path), path


def test_the_shipped_alerts_file_has_the_issues_defaults_and_no_contacts() -> None:
    alerts = read_policy_files(SHIPPED, channel_check=apprise_check).alerts
    enabled = {(r.name, r.kind, r.names, r.severity) for r in alerts.rules if r.enabled}
    assert {
        ("self-harm", AlertKind.WATCH_LIST, ("self-harm",), Severity.CRITICAL),
        ("grooming", AlertKind.WATCH_LIST, ("grooming",), Severity.CRITICAL),
        ("self-harm-sites", AlertKind.CATEGORY, ("self-harm",), Severity.CRITICAL),
        ("grooming-sites", AlertKind.CATEGORY, ("grooming",), Severity.CRITICAL),
        ("child-report", AlertKind.CHILD_REPORT, (), Severity.CRITICAL),
        ("personal-info", AlertKind.PERSONAL_INFO, (), Severity.HIGH),
        ("strangers", AlertKind.CATEGORY, ("dating", "chat"), Severity.HIGH),
        ("adult-repeated", AlertKind.CATEGORY, ("adult",), Severity.HIGH),
        ("bypass", AlertKind.BYPASS, (), Severity.HIGH),
    } == enabled
    medium = [r for r in alerts.rules if r.name == "medium"]
    assert medium and not medium[0].enabled and medium[0].event_severities == (Severity.MEDIUM,)
    assert all(r.open_incident == (r.severity is Severity.CRITICAL) for r in alerts.rules)
    assert (alerts.contacts, alerts.rota, alerts.ladder, alerts.digest) == ((), (), (), None)
    assert alerts.share == Share() and alerts.throttle_s == 30 * 60


def test_a_centres_alerts_file_reads_into_its_values(tmp_path: Path) -> None:
    alerts = read_policy_files(settings(tmp_path, CENTRE)[0], channel_check=apprise_check).alerts
    assert (alerts.centre, alerts.link_base, alerts.link_ttl_s, alerts.throttle_s) == (
        "Kampala youth centre",
        "https://appliance.lan",
        24 * 3600,
        15 * 60,
    )
    rules = {r.name: r for r in alerts.rules}
    assert rules["adult-repeated"].repeats == Repeats(3, 600)
    assert rules["bypass"].open_incident and not rules["strangers"].open_incident
    assert rules["self-harm"].source.endswith("alerts.yaml:6")
    assert alerts.contact("lead") == Contact(
        "lead",
        (
            Channel("email", "mailtos://lead:secret@mail.example.org?to=lead@example.org"),
            Channel("hook", "json://hooks.example.org/alerts"),
        ),
        "E-safety lead",
    )
    assert alerts.rota == (
        Shift("duty", frozenset(range(5)), 9 * 60, 18 * 60),
        Shift("lead", frozenset({5, 6}), 22 * 60, 2 * 60),
    )
    assert alerts.out_of_hours == "out-of-hours"
    assert alerts.ladder == (
        LadderStep(0, "on-duty", Severity.HIGH),
        LadderStep(600, "lead", Severity.HIGH),
        LadderStep(1800, "out-of-hours", Severity.CRITICAL),
    )
    assert alerts.digest == Digest("lead", 8 * 60 + 30, 0)
    assert alerts.share == Share(site=True)


MISTAKES = [
    # text in CENTRE, the mistake, the line the message names, words it must have
    (
        "severity: critical, when: {watch",
        "severity: urgent, when: {watch",
        6,
        ["'severity' is 'urgent'", "medium, high, critical"],
    ),
    ("severity: medium, when", "severity: low, when", 10, ["'severity' is 'low'"]),
    (
        "{watch_list: [self-harm]}",
        "{watch_list: [self-harms]}",
        6,
        ["unknown watch list 'self-harms'", "known: bullying, grooming, self-harm, violence"],
    ),
    (
        "category: [dating, chat]",
        "category: [dating, chatting]",
        7,
        ["unknown category 'chatting'", "known:", "dating"],
    ),
    (
        "{watch_list: [self-harm]}",
        "{watch_list: [self-harm], category: [adult]}",
        6,
        ["exactly one of", "names watch_list, category"],
    ),
    (
        "{watch_list: [self-harm]}",
        "{words: [self-harm]}",
        6,
        ["unknown key 'words'", "rule 'self-harm': when"],
    ),
    ("{bypass: true}", "{bypass: yes}", 9, ["'bypass' is true"]),
    ("name: strangers", "name: self-harm", 7, ["rule 'self-harm' appears twice (first on line 6)"]),
    ("count: 3, within", "count: 1, within", 8, ["'count' must be a whole number of 2 or more"]),
    ("throttle_minutes: 15", "throttle_minutes: soon", 4, ["'throttle_minutes' must be a number"]),
    (
        "throttle_minute",
        "throttle_minit",
        4,
        ["unknown key 'throttle_minits'", "did you mean 'throttle_minutes'"],
    ),
    (
        '"ntfys://ntfy.example.org/centre-duty"',
        '"ntfy.example.org/centre-duty"',
        12,
        ["channel 'ntfy' must be a notification URL"],
    ),
    (
        "{contact: duty, days: [mon",
        "{contact: dutty, days: [mon",
        20,
        ["unknown contact 'dutty'", "known: duty, lead, out-of-hours"],
    ),
    (
        'hours: "09:00-18:00"',
        'hours: "09:00 to 18:00"',
        20,
        ["shift 1 of the rota", "not hours like 09:00-18:00"],
    ),
    ("days: sat-sun", "days: weekend", 21, ["'weekend'", "days are mon, tue"]),
    ("notify: lead}", "notify: head}", 25, ["step 2 of the ladder: unknown contact 'head'", "on-duty"]),
    ("after_minutes: 30", "after_minutes: 5", 23, ["in order of after_minutes"]),
    ("out_of_hours: out-of-hours", "out_of_hours: nobody", 22, ["unknown contact 'nobody'"]),
    ("every: week, day: mon", "every: week, day: monday", 27, ["day 'monday'", "mon, tue"]),
    ("site: true", "site: yes", 28, ["'site' must be true or false"]),
    (
        "link_base: https://appliance.lan/",
        "link_base: appliance.lan",
        2,
        ["link_base must be the dashboard's address"],
    ),
    (
        "  - {name: self-harm,",
        "  - {severity: high, name: self-harm,",
        6,
        ["'severity' appears twice (first on line 6)"],
    ),
]


@pytest.mark.parametrize(("old", "new", "line", "words"), MISTAKES)
def test_a_mistake_in_alerts_yaml_is_refused_with_its_line(
    tmp_path: Path, old: str, new: str, line: int, words: list[str]
) -> None:
    assert old in CENTRE
    policy, path = settings(tmp_path, CENTRE.replace(old, new, 1))
    with pytest.raises(PolicyFileErrors) as caught:
        read_policy_files(policy)
    messages = [e for e in caught.value.errors if e.startswith(f"{path}:{line}:")]
    assert messages, caught.value.errors
    for word in words:
        assert any(word in m for m in messages), (word, caught.value.errors)


def test_a_channel_apprise_does_not_know_is_refused_without_its_url(tmp_path: Path) -> None:
    text = CENTRE.replace('"json://sms.example.org/send"', '"smsgw://user:hunter2@sms.example.org/send"')
    policy, path = settings(tmp_path, text)
    read_policy_files(policy)  # without Apprise (the DNS filter, the proxy): the form only
    with pytest.raises(PolicyFileErrors) as caught:
        read_policy_files(policy, channel_check=apprise_check)
    assert caught.value.errors == [
        f"{path}:18: contact 'out-of-hours': channel 'sms' (smsgw://...): Apprise does not know this URL;"
        " check it against Apprise's list of services (https://github.com/caronc/apprise/wiki)"
    ]
    assert "hunter2" not in str(caught.value)


def test_alerts_naming_a_category_of_a_broken_categories_file_report_the_cause_only(tmp_path: Path) -> None:
    broken = tmp_path / "categories.yaml"
    broken.write_text("categories: [oops\n", encoding="utf-8")
    policy, _ = settings(tmp_path, CENTRE)
    with pytest.raises(PolicyFileErrors) as caught:
        read_policy_files(dataclasses.replace(policy, categories=broken))
    assert not any("unknown category" in e for e in caught.value.errors)
    assert any("not valid YAML" in e for e in caught.value.errors)
