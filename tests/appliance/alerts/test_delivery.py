"""Delivering alerts through real channels: a local SMTP server and a local webhook receiver.

The clock is injected: each `step` is given its time, nothing is slept. Alerts are rows the raiser would
have written (tests/appliance/alerts/stage.py); acknowledging is done as the dashboard does it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.alerts.delivery import Deliverer, apprise_send
from appliance.alerts.messages import Message
from appliance.store.alerts import failing_channels
from appliance.store.audit import entries
from profiles.alerts import AlertPolicy, Channel, Contact, Digest, LadderStep, Shift
from profiles.categories import Severity
from tests.appliance.alerts.receivers import HttpReceiver, SmtpReceiver
from tests.appliance.alerts.stage import CATEGORIES, Stage
from tests.ports import free_port

# Monday 7 December 2026, 10:00 UTC: the day shift is on.
T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC).timestamp()


def local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass
class World:
    stage: Stage
    smtp: SmtpReceiver
    hooks: HttpReceiver

    def policy(self, *, duty_hook: str | None = None, digest: Digest | None = None) -> AlertPolicy:
        return AlertPolicy(
            centre="Demo centre",
            link_base="https://appliance.lan",
            contacts=(
                Contact(
                    "duty",
                    (
                        Channel("email", self.smtp.url("duty@centre.example")),
                        Channel("hook", duty_hook or self.hooks.url("duty")),
                    ),
                ),
                Contact("lead", (Channel("email", self.smtp.url("lead@centre.example")),)),
                Contact("out-of-hours", (Channel("hook", self.hooks.url("ooh")),)),
            ),
            rota=(Shift("duty", frozenset(range(5)), 9 * 60, 18 * 60),),
            out_of_hours="out-of-hours",
            ladder=(
                LadderStep(0, "on-duty"),
                LadderStep(600, "lead"),
                LadderStep(1800, "out-of-hours", min_severity=Severity.CRITICAL),
            ),
            digest=digest,
        )

    def deliverer(self) -> Deliverer:
        # A step waits for the sends it starts (each has its deadline), so the tests read in order.
        return Deliverer(self.stage.db, categories=CATEGORIES, wait_s=30)

    def states(self) -> list[tuple[str, int, str, str, str]]:
        return self.stage.db.execute(
            "SELECT kind, step, contact, channel, state FROM alert_deliveries ORDER BY id"
        ).fetchall()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    stage = Stage(tmp_path / "events.sqlite")
    with SmtpReceiver() as smtp, HttpReceiver() as hooks:
        yield World(stage, smtp, hooks)
    stage.close()


def test_an_alert_reaches_the_contact_on_duty_on_every_channel(world: World) -> None:
    alert = world.stage.alert(T0)
    world.deliverer().step(world.policy(), T0, local(T0))
    [mail] = world.smtp.to("duty@centre.example")
    assert mail.subject == "CRITICAL alert: self-harm (Demo centre)"
    assert f"https://appliance.lan/alerts/{alert}" in mail.body
    [hook] = world.hooks.at("duty")
    assert hook["title"] == mail.subject
    assert "https://appliance.lan/alerts/ack/" in hook["message"]
    assert world.states() == [("alert", 0, "duty", "email", "sent"), ("alert", 0, "duty", "hook", "sent")]
    assert [e.action for e in entries(world.stage.db)] == ["alert-sent", "alert-sent"]
    assert {e.username for e in entries(world.stage.db)} == {"appliance"}


def test_a_message_says_nothing_of_the_child_by_default(world: World) -> None:
    world.stage.child("c1", "Amira Nakato")
    event = world.stage.event(T0, "self-harm", url="https://hurt.example/how", terms="how to hurt myself")
    world.stage.alert(T0, events=(event,))
    world.deliverer().step(world.policy(), T0, local(T0))
    [mail] = world.smtp.mails
    [hook] = world.hooks.at("duty")
    for text in (mail.subject + mail.body, hook["title"] + hook["message"]):
        for private in ("Amira", "hurt.example", "how to hurt", "child:c1"):
            assert private not in text


def test_a_burst_of_alerts_goes_out_at_once_each_message_once(world: World) -> None:
    alerts = [world.stage.alert(T0, subject=f"child:k{i}") for i in range(30)]
    world.deliverer().step(world.policy(), T0, local(T0))
    mails = world.smtp.to("duty@centre.example")
    assert sorted(int(m.body.split("/alerts/")[1].split()[0]) for m in mails) == alerts
    assert len(world.hooks.at("duty")) == 30


def test_an_email_names_its_delivery_so_a_repeat_can_be_dropped(world: World) -> None:
    world.stage.alert(T0)
    world.deliverer().step(world.policy(), T0, local(T0))
    [mail] = world.smtp.mails
    (delivery,) = world.stage.db.execute("SELECT id FROM alert_deliveries WHERE channel = 'email'").fetchone()
    assert mail.headers["X-Appliance-Delivery"] == f"delivery-{delivery}@appliance"


def test_out_of_hours_the_first_step_tells_the_out_of_hours_contact(world: World) -> None:
    evening = datetime(2026, 12, 7, 20, 0, tzinfo=UTC).timestamp()
    world.stage.alert(evening)
    world.deliverer().step(world.policy(), evening, local(evening))
    assert world.smtp.mails == []
    assert len(world.hooks.at("ooh")) == 1


def test_the_ladder_escalates_while_nobody_acknowledges_and_stops_when_someone_does(world: World) -> None:
    incident = world.stage.incident(T0)
    alert = world.stage.alert(T0, incident=incident)
    deliverer, policy = world.deliverer(), world.policy()

    def at(seconds: float) -> None:
        deliverer.step(policy, T0 + seconds, local(T0 + seconds))

    at(0)
    at(1)  # the same step again: nothing queued twice
    assert (len(world.smtp.to("duty@centre.example")), len(world.smtp.to("lead@centre.example"))) == (1, 0)
    at(599)
    assert world.smtp.to("lead@centre.example") == []
    at(600)  # ten minutes, unacknowledged: the lead
    [to_lead] = world.smtp.to("lead@centre.example")
    assert to_lead.subject == "CRITICAL alert: self-harm (Demo centre)"
    world.stage.acknowledge(alert, T0 + 700)
    at(1800)  # half an hour: the out-of-hours contact would be next, but it was acknowledged
    at(3600)
    assert world.hooks.at("ooh") == []
    assert len(world.smtp.to("duty@centre.example")) == 1
    assert len(world.smtp.to("lead@centre.example")) == 1
    actions = [e.action for e in reversed(entries(world.stage.db))]
    assert actions == ["alert-sent", "alert-sent", "alert-escalated", "alert-sent"]
    notes = [t for (t,) in world.stage.db.execute("SELECT text FROM incident_notes WHERE author IS NULL")]
    assert any("step 2 of the ladder tells lead" in n for n in notes)
    assert sum("sent to" in n for n in notes) == 3


def test_without_acknowledgement_every_step_is_taken_in_turn(world: World) -> None:
    world.stage.alert(T0)
    deliverer, policy = world.deliverer(), world.policy()
    for seconds in (0, 600, 1800):
        deliverer.step(policy, T0 + seconds, local(T0 + seconds))
    assert [len(world.smtp.to(a)) for a in ("duty@centre.example", "lead@centre.example")] == [1, 1]
    assert len(world.hooks.at("ooh")) == 1


def test_a_high_alert_stops_below_the_critical_only_step(world: World) -> None:
    world.stage.alert(T0, severity="high")
    world.stage.alert(T0, severity="medium", rule="medium")
    deliverer, policy = world.deliverer(), world.policy()
    for seconds in (0, 600, 1800):
        deliverer.step(policy, T0 + seconds, local(T0 + seconds))
    assert [len(world.smtp.to(a)) for a in ("duty@centre.example", "lead@centre.example")] == [1, 1]
    assert world.hooks.at("ooh") == []  # the last step is for critical alerts
    assert {s[0] for s in world.states()} == {"alert", "escalation"}  # and the medium one told nobody
    assert len(world.states()) == 3


def test_a_failing_channel_is_retried_with_backoff_shown_failing_and_reported_through_the_others(
    world: World,
) -> None:
    dead = free_port()  # nothing listens there
    policy = world.policy(duty_hook=f"json://127.0.0.1:{dead}/duty")
    world.stage.alert(T0)
    deliverer = world.deliverer()

    def at(seconds: float) -> None:
        deliverer.step(policy, T0 + seconds, local(T0 + seconds))

    def hook_row() -> tuple[int, float, str, str]:
        row: tuple[int, float, str, str] = world.stage.db.execute(
            "SELECT attempts, due, state, error FROM alert_deliveries WHERE channel = 'hook'"
        ).fetchone()
        return row

    at(0)
    assert len(world.smtp.to("duty@centre.example")) == 1  # the other channel is not held up
    attempts, due, state, error = hook_row()
    assert (attempts, due, state) == (1, T0 + 10, "pending")
    assert error
    at(5)
    assert hook_row()[0] == 1  # not before its time
    at(10)
    assert hook_row()[:2] == (2, T0 + 10 + 30)
    assert failing_channels(world.stage.db, T0 + 10) == []
    at(40)
    assert hook_row()[:2] == (3, T0 + 40 + 60)
    [failing] = failing_channels(world.stage.db, T0 + 40)
    assert (failing.contact, failing.channel, failing.attempts) == ("duty", "hook", 3)
    at(41)  # the report goes out through the duty's e-mail and the lead's
    reports = [m for m in world.smtp.mails if m.subject.startswith("Alerts cannot reach duty by hook")]
    assert sorted(r.to[0] for r in reports) == ["duty@centre.example", "lead@centre.example"]
    assert str(dead) not in reports[0].body  # the channel's address is never said
    at(100)
    assert hook_row()[0] == 4
    assert len([m for m in world.smtp.mails if m.subject.startswith("Alerts cannot")]) == 2  # reported once
    actions = [e.action for e in entries(world.stage.db)]
    assert actions.count("alert-failed") == 4

    # The receiver comes back on that port: the next try goes through and the channel is well again.
    with HttpReceiver(dead) as back:
        at(100 + 120)
        assert len(back.at("duty")) == 1
    assert hook_row()[2] == "sent"
    assert failing_channels(world.stage.db, T0 + 220) == []


def test_the_digest_goes_on_its_timer_once_a_slot(world: World) -> None:
    policy = world.policy(digest=Digest("lead", at=8 * 60))
    deliverer = world.deliverer()
    monday_7 = datetime(2026, 12, 7, 7, 0, tzinfo=UTC).timestamp()
    world.stage.event(monday_7 + 1800, "self-harm")
    world.stage.event(monday_7 + 1800, "dating")

    def at(ts: float) -> None:
        deliverer.step(policy, ts, local(ts))

    at(monday_7)  # the first start: the digest's timer is set, nothing sent
    assert world.smtp.mails == []
    at(monday_7 + 3599)
    assert world.smtp.mails == []
    at(monday_7 + 3600)  # 08:00
    [digest] = world.smtp.to("lead@centre.example")
    assert digest.subject == "Daily safeguarding digest (Demo centre)"
    assert "\n  content (what a child saw or looked for): 1\n" in digest.body  # line by line
    assert "contact (who a child dealt with): 1" in digest.body
    at(monday_7 + 3700)
    at(monday_7 + 86_000)
    assert len(world.smtp.mails) == 1
    at(monday_7 + 86_400 + 3600)  # the next morning
    assert len(world.smtp.mails) == 2


def test_a_test_message_says_which_channel_worked(world: World) -> None:
    dead = free_port()
    policy = world.policy(duty_hook=f"json://127.0.0.1:{dead}/duty")
    results = world.deliverer().try_channels(policy, T0, contact="duty")
    assert [(c, ch, bool(err)) for c, ch, err in results] == [
        ("duty", "email", False),
        ("duty", "hook", True),
    ]
    [mail] = world.smtp.mails
    assert mail.subject == "Test message from Demo centre"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that takes connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []

    def take() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=take, daemon=True).start()
    yield int(server.getsockname()[1])
    server.close()
    for conn in held:
        conn.close()


def test_a_channel_that_never_answers_fails_at_its_deadline_and_holds_up_no_other(
    world: World, silent_port: int
) -> None:
    policy = world.policy(duty_hook=f"json://127.0.0.1:{silent_port}/duty?rto=5")
    world.stage.alert(T0)
    deliverer = Deliverer(world.stage.db, wait_s=30, send_deadline_s=0.5)
    deliverer.step(policy, T0, local(T0))
    assert len(world.smtp.to("duty@centre.example")) == 1
    attempts, state, error = world.stage.db.execute(
        "SELECT attempts, state, error FROM alert_deliveries WHERE channel = 'hook'"
    ).fetchone()
    assert (attempts, state, error) == (1, "pending", "no answer within 0.5 s")  # tried again later


def test_a_digest_sent_on_demand_sends_only_itself_beside_the_running_alerter(world: World) -> None:
    policy = world.policy(digest=Digest("lead", at=8 * 60))
    world.stage.alert(T0)
    running = world.deliverer()
    running.queue_ladder(policy, T0, local(T0))  # the alerter's rows, queued and not yet sent
    command = world.deliverer()
    ids = command.queue_digest(policy, T0)
    command.send_now(policy, T0, ids)
    assert command.results(ids) == [("lead", "email", "")]
    assert [m.subject for m in world.smtp.mails] == ["Daily safeguarding digest (Demo centre)"]
    assert world.hooks.posts == []
    pending = world.stage.db.execute(
        "SELECT count(*) FROM alert_deliveries WHERE state = 'pending'"
    ).fetchone()
    assert pending == (2,)  # left to the alerter


def test_a_message_acknowledged_on_its_way_is_still_recorded_as_sent(world: World) -> None:
    alert = world.stage.alert(T0)
    dashboard = Stage(world.stage.path)  # the dashboard's own connection to the store

    def send(channel: Channel, message: Message) -> None:
        dashboard.acknowledge(alert, T0 + 1)  # someone acknowledges as the message goes
        apprise_send(channel, message)

    try:
        Deliverer(world.stage.db, send=send, wait_s=30).step(world.policy(), T0, local(T0))
    finally:
        dashboard.close()
    assert [s[-1] for s in world.states()] == ["sent", "sent"]
    assert [e.action for e in entries(world.stage.db)] == ["alert-sent", "alert-sent"]
