"""End to end, every part really run: the DNS filter (`appliance dns`), the proxy (`appliance proxy`) and
the alerter (`appliance alerts`) on one configuration, whose alerts.yaml (the shipped rules) tells the
duty phone at once through two channels: e-mail to an SMTP server and a webhook to an HTTP receiver,
both started here on loopback.

- A child's self-harm search through the proxy reaches both within seconds, saying the severity, the
  category, the centre and the dashboard's link, and nothing of the child, the site or the search; the
  critical alert has opened an incident with the search on it.
- A device asking the DNS filter for the bypass canaries three times raises one bypass alert (the shipped
  rule: three within ten minutes), told through both channels, and its conduct flag counts three.
- A child searching twenty times more is still one alert and one message per channel, with a count of
  twenty-one; every search is in the feed.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest
import yaml

from appliance.config import load_config
from appliance.lists import compile_lists
from appliance.store import people
from appliance.store.incidents import events_of
from appliance.store.schema import connect
from tests.appliance.alerts.receivers import HttpReceiver, SmtpReceiver
from tests.appliance.proxy.conftest import (
    KIDS,
    Internet,
    Origin,
    Proxy,
    fetch,
    internet,
    origin,
    sign_in_taken,
    start_proxy,
    write_config,
)
from tests.ports import free_port
from tests.processes import Process, start, wait_until

__all__ = ["internet", "origin"]  # the proxy's bench (its fake internet and web origin), used here

CENTRE = "Riverside Youth Centre"
LINK_BASE = "https://appliance.lan"
DUTY_MAIL = "duty@centre.example"
HOOK = "duty-phone"
DEADLINE_S = 20.0  # generous: a message takes well under a second on an idle machine
CANARIES = ("use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com")


@dataclass
class Centre:
    """The three services on one configuration, the two receivers, and two children signed in on their
    own devices (names to addresses)."""

    config: Path
    proxy: Proxy
    dns_port: int
    smtp: SmtpReceiver
    hook: HttpReceiver
    children: dict[str, tuple[str, str]]  # name -> (child id, the address signed in on)
    processes: list[Process]
    origin_port: int

    def db(self) -> sqlite3.Connection:
        return connect(self.proxy.events)

    def search(self, child: str, terms: str) -> None:
        _, address = self.children[child]
        query = terms.replace(" ", "+")
        status, _, _ = fetch(
            self.proxy, address, f"http://www.google.com:{self.origin_port}/search?q={query}"
        )
        assert status == 200

    def messages_about(self, alert: int) -> tuple[list[str], list[dict[str, Any]]]:
        """The e-mails (subject and body) and webhook posts that tell of `alert`."""
        link = f"{LINK_BASE}/alerts/{alert}\n"
        mails = [f"{m.subject}\n{m.body}" for m in self.smtp.to(DUTY_MAIL) if link in m.body + "\n"]
        posts = [p for p in self.hook.at(HOOK) if link in str(p.get("message", "")) + "\n"]
        return mails, posts

    def alive(self) -> None:
        for process in self.processes:
            process.check_alive()


def alerts_yaml(smtp: SmtpReceiver, hook: HttpReceiver) -> str:
    """The shipped alerts.yaml with one contact, the duty phone, told at once by e-mail and webhook."""
    shipped = resources.files("appliance") / "defaults" / "policy" / "alerts.yaml"
    settings = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    settings.update(
        centre=CENTRE,
        link_base=LINK_BASE,
        contacts={
            "duty": {
                "name": "Duty phone",
                "channels": {"email": smtp.url(DUTY_MAIL), "webhook": hook.url(HOOK)},
            }
        },
        ladder=[{"after_minutes": 0, "notify": "duty"}],
    )
    return yaml.safe_dump(settings, sort_keys=False)


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory, origin: Origin, internet: Internet) -> Iterator[Centre]:
    folder = tmp_path_factory.mktemp("centre")
    proxy_port, dns_port = free_port(), free_port()
    with SmtpReceiver() as smtp, HttpReceiver() as hook:
        (folder / "alerts.yaml").write_text(alerts_yaml(smtp, hook), encoding="utf-8")
        path = write_config(folder, origin, proxy_port, internet.address)
        text = path.read_text(encoding="utf-8")
        text = text.replace("\npolicy:\n", f"\npolicy:\n  alerts: {folder / 'alerts.yaml'}\n", 1)
        text = text.replace("\ndns:\n", f'\ndns:\n  listen: ["127.0.0.1:{dns_port}"]\n', 1)
        path.write_text(text, encoding="utf-8")
        config = load_config(path)
        compile_lists(config, now=dt.datetime.now(dt.UTC))
        # Two children signed in on their own devices before the services start (they read the sessions).
        children: dict[str, tuple[str, str]] = {}
        db = connect(config.events_path)
        try:
            now = time.time()
            for name, address in (("Amira", "127.0.0.26"), ("Ben", "127.0.0.27")):
                child = people.add_child(db, name, "10-12", "4826", now)
                people.start_session(db, child.id, address, address, now, now + 3600, 3600)
                children[name] = (child.id, address)
        finally:
            db.close()

        def appliance(command: str) -> Process:
            argv = [sys.executable, "-m", "appliance.cli", command, "--config", str(path)]
            return start(f"appliance {command}", argv, folder / f"{command}.log")

        dns_filter, alerter = appliance("dns"), appliance("alerts")
        processes = [dns_filter, alerter]
        try:
            proxy = start_proxy(path, proxy_port, origin, folder / "proxy.log")
            processes.append(Process("appliance proxy", proxy.process, folder / "proxy.log"))
            dns_filter.wait_saying("DNS filter answering on")
            alerter.wait_saying("alerter running on")
            for _, address in children.values():
                page = f"http://localhost:{origin.http_port}/"
                taken = partial(sign_in_taken, proxy, address, now, page)
                wait_until(taken, f"the proxy to take in the sign-in on {address}", 30)
            yield Centre(path, proxy, dns_port, smtp, hook, children, processes, origin.http_port)
        finally:
            for process in processes:
                process.stop()


def wait_for(check: Callable[[], Any], what: str, centre: Centre) -> Any:
    """check()'s first true value within the deadline, the services still running."""

    def alive_and() -> Any:
        centre.alive()
        return check()

    return wait_until(alive_and, what, DEADLINE_S)


def told_both_ways(centre: Centre, alert: int) -> tuple[list[str], list[dict[str, Any]]]:
    """The e-mails and the webhook posts of `alert`, once there is at least one of each."""
    return wait_for(
        lambda: all(centre.messages_about(alert)) and centre.messages_about(alert),
        f"the messages of alert {alert}",
        centre,
    )


def alerts_of(db: sqlite3.Connection, subject: str) -> list[tuple[int, str, str, int, int | None]]:
    """(id, rule, severity, count, incident) of each alert on `subject`."""
    return db.execute(
        "SELECT id, rule, severity, count, incident FROM alerts WHERE subject = ? ORDER BY id", (subject,)
    ).fetchall()


def test_a_childs_self_harm_search_reaches_email_and_webhook_with_the_minimum(centre: Centre) -> None:
    amira, _ = centre.children["Amira"]
    centre.search("Amira", "i want to die tonight")
    db = centre.db()
    try:
        [(alert, rule, severity, count, incident)] = wait_for(
            lambda: alerts_of(db, f"child:{amira}"), "Amira's alert", centre
        )
        mails, posts = told_both_ways(centre, alert)
        assert (rule, severity, count) == ("self-harm", "critical", 1)
        # A critical alert opened an incident by itself, the search on it (the dashboard shows it all).
        assert incident is not None
        assert db.execute("SELECT opened_by FROM incidents WHERE id = ?", (incident,)).fetchone() == (None,)
        [searched] = events_of(db, incident)
        assert searched["host"] == "www.google.com" and "want to die" in str(searched["terms"])
    finally:
        db.close()
    assert len(mails) == 1 and len(posts) == 1
    post = posts[0]
    for said in (mails[0], f"{post['title']}\n{post['message']}"):
        assert said.startswith("CRITICAL alert:") and f"({CENTRE})" in said.splitlines()[0]
        assert "Severity: critical" in said
        assert "What: Self-harm and suicide" in said  # the category in plain words
        assert f"Centre: {CENTRE}" in said
        assert f"{LINK_BASE}/alerts/{alert}\n" in said and f"{LINK_BASE}/alerts/ack/" in said
    for said in (mails[0], json.dumps(post)):
        for private in ("Amira", "want to die", "google", "search?q"):
            assert private.lower() not in said.lower(), f"{private!r} left the appliance"


def test_three_bypass_canaries_asked_of_the_dns_filter_raise_one_bypass_alert_told_both_ways(
    centre: Centre,
) -> None:
    db = centre.db()
    try:

        def flags() -> list[tuple[str, int]]:
            return db.execute("SELECT subject, count FROM conduct_flags").fetchall()

        for n, name in enumerate(CANARIES, 1):
            query = dns.message.make_query(name, "A")
            reply = dns.query.udp(query, "127.0.0.1", port=centre.dns_port, source=KIDS, timeout=5)
            assert reply.rcode() == dns.rcode.NXDOMAIN  # the device turns its own resolver off
            # The alerter has read it (the flag counts it in the same transaction as any alert).
            wait_for(lambda n=n: flags() == [("device:kids-pc", n)], f"the conduct flag at {n}", centre)
            if n < len(CANARIES):
                assert alerts_of(db, "device:kids-pc") == []  # not yet: three within ten minutes
        [(alert, rule, severity, count, incident)] = alerts_of(db, "device:kids-pc")
        mails, posts = told_both_ways(centre, alert)
        assert (rule, severity, count, incident) == ("bypass", "high", 3, None)
    finally:
        db.close()
    assert len(mails) == 1 and len(posts) == 1
    for said in (mails[0], f"{posts[0]['title']}\n{posts[0]['message']}"):
        assert said.startswith("HIGH alert: getting round the filter")
        assert "What: Getting round the filter" in said and f"Centre: {CENTRE}" in said
        assert "icloud" not in said and "use-application-dns" not in said  # the names asked stay here


def test_a_child_searching_again_and_again_is_one_alert_with_a_count_and_one_message(
    centre: Centre,
) -> None:
    ben, _ = centre.children["Ben"]
    subject = f"child:{ben}"
    centre.search("Ben", "how to kill myself")
    db = centre.db()
    try:
        [(alert, *_)] = wait_for(lambda: alerts_of(db, subject), "Ben's alert", centre)
        told_both_ways(centre, alert)
        for n in range(20):
            centre.search("Ben", f"how to kill myself {n}")

        def counted() -> bool:
            return sum(count for _, _, _, count, _ in alerts_of(db, subject)) == 21

        wait_for(counted, "all 21 searches raised or counted", centre)
        time.sleep(1.0)  # four of the alerter's steps: time enough for a message that should not come
        raised = alerts_of(db, subject)
        (events,) = db.execute("SELECT count(*) FROM alert_events WHERE alert = ?", (alert,)).fetchone()
        (searches,) = db.execute(
            "SELECT count(*) FROM requests r JOIN askers k ON k.id = r.asker"
            " WHERE k.subject = ? AND r.notable AND r.terms LIKE 'how to kill myself%'",
            (subject,),
        ).fetchone()
    finally:
        db.close()
    assert [(a, rule, count) for a, rule, _, count, _ in raised] == [(alert, "self-harm", 21)]
    assert (events, searches) == (21, 21)  # every search still in the feed
    told = [centre.messages_about(a) for a, *_ in raised]
    assert [(len(mails), len(posts)) for mails, posts in told] == [(1, 1)]  # no new message
