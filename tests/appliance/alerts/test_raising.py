"""Raising alerts from the events the writers store (docs/alerts.md): a real SQLite store, events written
through the event writer (`StoreWriter`) as the DNS filter's and the proxy's writers write them, and the
shipped alerts.yaml. What raises what (a truth table); one child hammering is one alert with a count and
every event still in the feed; repeats within a window; every bypass attempt counted on the child's
conduct flag, a MAC-changing device among them; a critical alert opens an incident with its events; a
crash mid-step, a restart or a changed rule never raises an event's alert twice."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.alerts import raising
from appliance.alerts.raising import Raiser, raised_events
from appliance.config import PolicySettings
from appliance.events.values import Answer, Asker, RequestRow
from appliance.events.writer import StoreWriter
from appliance.policy_files import read_policy_files
from appliance.store import audit
from appliance.store.feed import FeedFilter, feed
from appliance.store.incidents import events_of, get, history
from appliance.store.people import add_child, start_session
from appliance.store.schema import connect
from profiles.alerts import AlertPolicy
from profiles.categories import Severity
from profiles.identity import Child, Identity, Via
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict

UTC = ZoneInfo("UTC")
T0 = float(int(time.time())) - 7200  # two hours ago: retention keeps it
SHIPPED = read_policy_files(PolicySettings())
POLICY = SHIPPED.alerts
AREA_OF = {c.name: str(c.area or "") for c in SHIPPED.categories.values()}


def child(child_id: str, address: str = "10.0.0.11") -> Asker:
    return Asker.of(address, Identity("10-12", Via.SESSION, child=Child(child_id, "x", "10-12")))


def guest(address: str) -> Asker:
    return Asker.of(address, Identity("guest", Via.GUEST))


AMIRA, BEN = child("amira"), child("ben", "10.0.0.12")


def listed(category: str, severity: Severity = Severity.HIGH, effect: Action = Action.BLOCK) -> Verdict:
    reason = Reason(Step.CATEGORY, effect, "domain listed", category, "", severity, "a-list", 4, "x.example")
    return Verdict(effect, "10-12", (reason,), severity, log=LogDetail.EVENT)


def searched(watch_list: str, category: str, term: str) -> Verdict:
    """A search with a watch-list term, as `decide` flags it."""
    detail = f"searched on Google for words on the {watch_list!r} watch list"
    reason = Reason(Step.WATCH_LIST, Action.FLAG, detail, category, "", Severity.CRITICAL, rule=term)
    return Verdict(Action.FLAG, "10-12", (reason,), Severity.CRITICAL, log=LogDetail.EVENT)


def single(step: Step, effect: Action, severity: Severity, category: str = "", detail: str = "x") -> Verdict:
    reason = Reason(step, effect, detail, category, "", severity)
    return Verdict(effect, "10-12", (reason,), severity, log=LogDetail.EVENT)


REPORT = single(Step.CHILD_REPORT, Action.FLAG, Severity.LOW, detail="a child asked staff to look at a block")
PHONE = single(
    Step.PERSONAL_INFO, Action.FLAG, Severity.HIGH, "personal-info", "sending personal information"
)
CANARY = single(Step.BYPASS_CANARY, Action.BLOCK, Severity.NONE, detail="a filter-bypass check")
FRONTING = single(Step.BYPASS_ATTEMPT, Action.FLAG, Severity.MEDIUM, detail="named a but sent to b")


class Centre:
    """The store, written as the writers write it (one transaction per batch), and read by a Raiser."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = StoreWriter(path, UTC)
        self.db = connect(path)
        self.raiser = Raiser(self.db, area_of=AREA_OF)
        self.defined: set[int] = set()

    def _defs(self, *things: Asker | Answer) -> list[tuple[int, Asker | Answer]]:
        out = [(t.key, t) for t in things if t.key not in self.defined]
        self.defined.update(t.key for t in things)
        return out

    def dns(self, ts: float, who: Asker, host: str, verdict: Verdict) -> None:
        what = Answer.of("dns", host, "A", verdict)
        self.writer.write(self._defs(who, what), ([ts], [who.key], [what.key], [0.001]), [], ts)

    def web(self, ts: float, who: Asker, url: str, verdict: Verdict, terms: str = "") -> None:
        what = Answer.of("http", url.split("/")[2], "GET", verdict)
        row: RequestRow = (ts, who.key, what.key, 0.01, "GET", url, 403, 900, terms)
        self.writer.write(self._defs(who, what), ([], [], [], []), [], ts, requests=[row])

    def step(self, policy: AlertPolicy = POLICY, now: float | None = None) -> list[int]:
        return self.raiser.step(policy, T0 + 3600 if now is None else now)

    def alerts(self) -> list[tuple[str, str, str, str, str, int]]:
        """(rule, severity, kind, category, subject, count) of every alert, in order."""
        return self.db.execute(
            "SELECT rule, severity, kind, category, subject, count FROM alerts ORDER BY id"
        ).fetchall()

    def conduct(self, subject: str) -> int:
        row = self.db.execute("SELECT count FROM conduct_flags WHERE subject = ?", (subject,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.writer.close()
        self.db.close()


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    c = Centre(tmp_path / "appliance.sqlite")
    yield c
    c.close()


# What one event (of Amira's, unless a guest's) raises under the shipped alerts.yaml.
TRUTH = [
    # how it is seen, the verdict, what is raised: (rule, severity, kind, category, subject) or None
    (
        "web",
        searched("self-harm", "self-harm", "want to die"),
        ("self-harm", "critical", "watch-list", "self-harm"),
    ),
    (
        "web",
        searched("grooming", "grooming", "send nudes"),
        ("grooming", "critical", "watch-list", "grooming"),
    ),
    ("web", searched("bullying", "bullying", "kys"), None),  # high watch list: no rule names it
    ("dns", listed("self-harm", Severity.CRITICAL), ("self-harm-sites", "critical", "category", "self-harm")),
    ("web", REPORT, ("child-report", "critical", "child-report", "")),
    ("web", PHONE, ("personal-info", "high", "personal-info", "personal-info")),
    ("dns", listed("dating"), ("strangers", "high", "category", "dating")),
    ("dns", listed("chat", Severity.MEDIUM, Action.FLAG), ("strangers", "high", "category", "chat")),
    ("dns", listed("adult"), None),  # once: not repeated
    ("dns", CANARY, None),  # once: counted on the conduct flag, not yet an alert
    ("dns", listed("gambling", Severity.MEDIUM), None),  # medium: feed only
]


@pytest.mark.parametrize(("seen", "verdict", "raised"), TRUTH)
def test_what_one_event_raises(
    centre: Centre, seen: str, verdict: Verdict, raised: tuple[str, str, str, str] | None
) -> None:
    if seen == "dns":
        centre.dns(T0, AMIRA, "site.example", verdict)
    else:
        centre.web(T0, AMIRA, "https://www.google.com/search?q=x", verdict)
    ids = centre.step()
    assert centre.alerts() == ([(*raised, "child:amira", 1)] if raised else [])
    assert len(ids) == (1 if raised else 0)
    if raised:
        assert raised_events(centre.db, ids[0]) == ["dns:1" if seen == "dns" else "web:1"]
        [entry] = [e for e in audit.entries(centre.db) if e.action == "raise-alert"]
        assert (entry.username, entry.subject) == ("appliance", "child:amira")


def test_a_guest_is_one_device_by_its_address(centre: Centre) -> None:
    centre.dns(T0, guest("10.0.0.50"), "date.example", listed("dating"))
    centre.dns(T0 + 1, guest("10.0.0.51"), "date.example", listed("dating"))
    centre.step()
    assert [a[4] for a in centre.alerts()] == ["guest:10.0.0.50", "guest:10.0.0.51"]


def test_a_child_hammering_is_one_alert_with_a_count_and_every_event_still_in_the_feed(
    centre: Centre,
) -> None:
    for i in range(100):  # a hundred dating sites in ten minutes
        centre.dns(T0 + 6 * i, AMIRA, f"date{i}.example", listed("dating"))
    centre.dns(T0 + 10, BEN, "date.example", listed("dating"))
    ids = centre.step()
    assert centre.alerts() == [
        ("strangers", "high", "category", "dating", "child:amira", 100),
        ("strangers", "high", "category", "dating", "child:ben", 1),
    ]
    assert len(ids) == 2 and len(raised_events(centre.db, ids[0])) == 100
    assert len(feed(centre.db, FeedFilter(child="amira"), limit=500)) == 100
    assert len([e for e in audit.entries(centre.db) if e.action == "raise-alert"]) == 2


def test_a_repeat_after_the_throttle_window_or_an_acknowledgement_is_a_new_alert(centre: Centre) -> None:
    centre.dns(T0, AMIRA, "date1.example", listed("dating"))
    centre.dns(T0 + POLICY.throttle_s - 1, AMIRA, "date2.example", listed("dating"))  # within: same alert
    centre.step()
    centre.dns(T0 + 2 * POLICY.throttle_s, AMIRA, "date3.example", listed("dating"))  # 30 min after the last
    centre.step()
    assert [a[5] for a in centre.alerts()] == [2, 1]
    centre.db.execute("UPDATE alerts SET acknowledged = ?, ack_via = 'dashboard'", (T0,))
    centre.dns(T0 + 2 * POLICY.throttle_s + 5, AMIRA, "date4.example", listed("dating"))
    centre.step()
    assert [a[5] for a in centre.alerts()] == [2, 1, 1]


def test_repeated_adult_attempts_raise_one_alert_on_the_third_within_ten_minutes(centre: Centre) -> None:
    centre.dns(T0, AMIRA, "a1.example", listed("adult"))
    centre.dns(T0 + 240, AMIRA, "a2.example", listed("adult"))
    centre.dns(T0 + 250, BEN, "a3.example", listed("adult"))  # another child's: not Amira's repeat
    assert centre.step() == [] and centre.alerts() == []
    centre.dns(T0 + 600, AMIRA, "a4.example", listed("adult"))  # the third within ten minutes
    [alert] = centre.step()
    assert centre.alerts() == [("adult-repeated", "high", "category", "adult", "child:amira", 3)]
    assert raised_events(centre.db, alert) == ["dns:1", "dns:2", "dns:4"]
    centre.dns(T0 + 700, AMIRA, "a5.example", listed("adult"))  # then each repeat adds to it
    centre.step()
    assert centre.alerts()[0][5] == 4


def test_adult_attempts_spread_over_longer_than_the_window_raise_nothing(centre: Centre) -> None:
    for i in range(4):
        centre.dns(T0 + 400 * i, AMIRA, f"a{i}.example", listed("adult"))  # every 6 min 40 s
        centre.step()
    assert centre.alerts() == []


def test_every_bypass_attempt_counts_on_the_conduct_flag_and_repeats_raise_an_alert(centre: Centre) -> None:
    centre.dns(T0, AMIRA, "use-application-dns.net", CANARY)
    centre.web(T0 + 30, AMIRA, "https://school.example/", FRONTING)
    centre.step()
    assert centre.conduct("child:amira") == 2 and centre.alerts() == []
    centre.dns(T0 + 60, AMIRA, "vpn.example", listed("filter-bypass", Severity.MEDIUM))  # a VPN's site
    centre.step()
    assert centre.conduct("child:amira") == 3
    assert centre.alerts() == [("bypass", "high", "bypass", "filter-bypass", "child:amira", 3)]
    centre.dns(T0 + 90, BEN, "mask.icloud.com", CANARY)
    centre.step()
    assert (centre.conduct("child:amira"), centre.conduct("child:ben")) == (3, 1)


def test_a_device_signing_in_from_three_macs_within_an_hour_is_a_bypass_attempt(centre: Centre) -> None:
    amira = add_child(centre.db, "Amira", "10-12", "4821", T0).id
    for i, mac in enumerate(["02:00:00:00:00:01", "02:00:00:00:00:02"]):
        start_session(centre.db, amira, mac, "10.0.0.20", T0 + 60 * i, T0 + 9000, 900)
    start_session(centre.db, amira, "10.0.0.21", "10.0.0.21", T0 + 150, T0 + 9000, 900)  # no MAC known
    centre.step()
    assert centre.conduct(f"child:{amira}") == 0
    start_session(centre.db, amira, "02:00:00:00:00:03", "10.0.0.20", T0 + 3000, T0 + 9000, 900)
    [alert] = centre.step()
    assert centre.conduct(f"child:{amira}") == 1
    assert centre.alerts() == [("bypass", "high", "bypass", "filter-bypass", f"child:{amira}", 1)]
    assert raised_events(centre.db, alert) == ["session:4"]
    start_session(
        centre.db, amira, "02:00:00:00:00:01", "10.0.0.20", T0 + 3100, T0 + 9000, 900
    )  # seen before
    start_session(centre.db, amira, "02:00:00:00:00:09", "10.0.0.20", T0 + 7000, T0 + 9000, 900)  # an hour on
    centre.step()
    assert centre.conduct(f"child:{amira}") == 1


def test_the_routers_refusals_are_bypass_attempts_of_whoever_was_last_seen_at_the_address(
    centre: Centre,
) -> None:
    """In router mode `appliance router refusals` records the DoT/DoH the router refused each address since
    its last reading: each reading of one address is one attempt, of the child the DNS filter last saw
    there (the router knows addresses only), else of a guest device."""
    centre.dns(T0, AMIRA, "school.example", listed("educational", Severity.NONE, Action.FLAG))
    readings = [(T0 + 30, AMIRA.client, 14), (T0 + 60, AMIRA.client, 3), (T0 + 60, "10.0.0.99", 5)]
    centre.db.executemany("INSERT INTO refusals (ts, client, count) VALUES (?, ?, ?)", readings)
    centre.step()
    assert (centre.conduct("child:amira"), centre.conduct("guest:10.0.0.99")) == (2, 1)
    assert centre.alerts() == []  # two attempts: the shipped rule wants three within ten minutes
    centre.db.execute("INSERT INTO refusals (ts, client, count) VALUES (?, ?, 1)", (T0 + 90, AMIRA.client))
    [alert] = centre.step()
    assert centre.alerts() == [("bypass", "high", "bypass", "filter-bypass", "child:amira", 3)]
    assert raised_events(centre.db, alert) == ["refusal:1", "refusal:2", "refusal:4"]
    assert centre.step() == []  # each reading once


def test_a_critical_alert_opens_an_incident_with_its_events(centre: Centre) -> None:
    centre.web(
        T0,
        AMIRA,
        "https://www.google.com/search?q=i+want+to+die",
        searched("self-harm", "self-harm", "want to die"),
        "i want to die",
    )
    [alert] = centre.step(now=T0 + 5)
    (incident,) = centre.db.execute("SELECT incident FROM alerts WHERE id = ?", (alert,)).fetchone()
    found = get(centre.db, incident)
    assert found is not None
    assert (found.severity, found.category, found.area, found.subject, found.opened_by) == (
        "critical",
        "self-harm",
        "contact",
        "child:amira",
        "the appliance",
    )
    assert [e["id"] for e in events_of(centre.db, incident)] == ["web:1"]
    logged = [(e.username, e.action, e.subject, e.detail) for e in audit.entries(centre.db)]
    assert ("appliance", "open-incident", f"incident:{incident}", "web:1") in logged
    [note] = history(centre.db, incident)
    assert (note.author, note.kind, note.text) == (
        "the appliance",
        "alert",
        f"opened by alert {alert} (self-harm, critical)",
    )
    centre.web(
        T0 + 60,
        AMIRA,
        "https://www.google.com/search?q=suicide",
        searched("self-harm", "self-harm", "suicide"),
    )
    assert centre.step() == [alert]  # a repeat: the same alert and incident, its event added
    assert [e["id"] for e in events_of(centre.db, incident)] == ["web:1", "web:2"]
    assert centre.db.execute("SELECT count(*) FROM incidents").fetchone() == (1,)
    # A child's own report is critical although the event is "low": so is the incident.
    centre.web(T0 + 90, BEN, "https://bad.example/.well-known/childsafe/report", REPORT)
    [report] = centre.step()
    (number,) = centre.db.execute("SELECT incident FROM alerts WHERE id = ?", (report,)).fetchone()
    assert get(centre.db, number).severity == "critical"  # type: ignore[union-attr]


def test_a_crash_mid_step_raises_nothing_twice_and_loses_nothing(
    centre: Centre, monkeypatch: pytest.MonkeyPatch
) -> None:
    centre.dns(T0, AMIRA, "date.example", listed("dating"))
    centre.web(
        T0 + 1, BEN, "https://www.google.com/search?q=x", searched("self-harm", "self-harm", "suicide")
    )
    real = audit.record
    calls = []

    def crash_on_the_second(*args: object, **kw: object) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error (the power went)")
        real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(audit, "record", crash_on_the_second)
    with pytest.raises(sqlite3.OperationalError):
        centre.step()
    monkeypatch.setattr(audit, "record", real)
    assert centre.alerts() == [] and centre.conduct("child:amira") == 0  # all of the step rolled back

    again = Raiser(connect(centre.path), area_of=AREA_OF)  # the alerter started again
    assert len(again.step(POLICY, T0 + 3600)) == 2
    assert len(again.step(POLICY, T0 + 3601)) == 0
    stricter = replace(POLICY, rules=tuple(replace(r, enabled=True) for r in POLICY.rules))
    assert again.step(stricter, T0 + 3602) == []  # a changed rule does not judge old events again
    assert centre.alerts() == [
        ("strangers", "high", "category", "dating", "child:amira", 1),
        ("self-harm", "critical", "watch-list", "self-harm", "child:ben", 1),
    ]
    assert centre.db.execute("SELECT count(*) FROM incidents").fetchone() == (1,)
    again.db.close()


def test_a_backlog_is_read_in_bounded_batches_each_event_once(
    centre: Centre, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raising, "BATCH", 40)
    for i in range(100):
        centre.dns(T0 + i, AMIRA, f"date{i}.example", listed("dating"))
        centre.dns(T0 + i, BEN, f"allowed{i}.example", Verdict(Action.ALLOW, "10-12", log=LogDetail.EVENT))
    steps = [centre.step() for _ in range(4)]
    assert [len(s) for s in steps] == [1, 1, 1, 0]  # the same alert, added to, batch by batch
    assert centre.alerts() == [("strangers", "high", "category", "dating", "child:amira", 100)]


def test_an_older_stores_events_are_not_alerted_on(tmp_path: Path) -> None:
    """The cursor starts at the end of what a store held when it took version 8 (schema.py)."""
    path = tmp_path / "appliance.sqlite"
    c = Centre(path)
    c.dns(T0, AMIRA, "date.example", listed("dating"))
    c.db.execute("UPDATE alert_cursor SET last = (SELECT max(rowid) FROM events) WHERE tbl = 'events'")
    assert c.step() == []
    c.close()


def test_reasons_are_read_as_the_writer_stored_them(centre: Centre) -> None:
    centre.web(T0, AMIRA, "https://www.google.com/search?q=x", searched("self-harm", "self-harm", "suicide"))
    (reasons,) = centre.db.execute("SELECT reasons FROM answers WHERE notable").fetchone()
    assert json.loads(reasons)[0]["detail"].endswith("the 'self-harm' watch list")


def test_a_step_with_nothing_new_writes_nothing(centre: Centre) -> None:
    centre.dns(T0, AMIRA, "date.example", listed("dating"))
    centre.dns(T0 + 1, AMIRA, "allowed.example", Verdict(Action.ALLOW, "10-12", log=LogDetail.EVENT))
    assert len(centre.step()) == 1
    written = centre.db.total_changes
    assert centre.step() == [] and centre.step() == []
    assert centre.db.total_changes == written  # four idle steps a second cost the SD card nothing
