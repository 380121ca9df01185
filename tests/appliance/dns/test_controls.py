"""Staff's controls reach the real DNS filter from the event store within a second: a pause answers the
device with the block page (even for a name it had remembered) until staff resume; a grant opens a
blocked site for one child until it ends; a spent category budget closes that category only; and a
budgeted child's questions are counted as active minutes in the store."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from appliance.config import load_config
from appliance.store import controls, people
from appliance.store.schema import connect
from profiles.controls import Budget, Scope
from tests.appliance.dns.conftest import KIDS, answers

BLOCK_PAGE = [("en.wikipedia.org", "A", "192.168.50.1")]
WIKIPEDIA = [("en.wikipedia.org", "A", "198.51.100.10")]
INSTAGRAM = [("www.instagram.com", "A", "203.0.113.5")]
DISCORD = [("discord.com", "A", "203.0.113.6")]
AMIRA, BEN, CARA = "127.0.0.71", "127.0.0.72", "127.0.0.73"


def _until(check: Callable[[], bool], deadline_s: float = 1.0) -> None:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {deadline_s} s")


def _store(tmp_path) -> sqlite3.Connection:
    return connect(load_config(tmp_path / "appliance.yaml").events_path)


def _signed_in(store: sqlite3.Connection, name: str, profile: str, device: str) -> str:
    child = people.add_child(store, name, profile, "4826", time.time())
    people.start_session(store, child.id, device, device, time.time(), time.time() + 3600, 1200)
    return child.id


def _today() -> str:
    return datetime.now(ZoneInfo("Europe/London")).date().isoformat()


def test_a_paused_device_gets_the_block_page_within_a_second_and_resuming_lifts_it(make_dns, tmp_path):
    running = make_dns()
    store = _store(tmp_path)
    # Remembered on the fast path first: a pause must not be answered from there.
    assert answers(running.query("en.wikipedia.org", source=KIDS)) == WIKIPEDIA
    assert answers(running.query("en.wikipedia.org", source=KIDS)) == WIKIPEDIA
    pause = controls.pause(
        store,
        scope=Scope.DEVICE,
        target=KIDS,
        label="kids-tablet",
        minutes=30,
        by="sam",
        reason="",
        now=time.time(),
    )
    _until(lambda: answers(running.query("en.wikipedia.org", source=KIDS)) == BLOCK_PAGE)
    # Only that device: another asking the same name still gets it.
    assert answers(running.query("en.wikipedia.org", source="127.0.0.99")) == WIKIPEDIA
    controls.resume(store, pause, by="sam", now=time.time())
    _until(lambda: answers(running.query("en.wikipedia.org", source=KIDS)) == WIKIPEDIA)


def test_a_grant_opens_a_blocked_site_for_that_child_only_until_it_ends(make_dns, upstream, tmp_path):
    upstream.add("www.instagram.com", "A", "203.0.113.5")
    running = make_dns()
    store = _store(tmp_path)
    amira = _signed_in(store, "Amira", "kids", AMIRA)
    _signed_in(store, "Ben", "kids", BEN)
    blocked = [("www.instagram.com", "A", "192.168.50.1")]
    _until(lambda: answers(running.query("www.instagram.com", source=AMIRA)) == blocked)
    until = time.time() + 2.0
    controls.grant(
        store,
        child=amira,
        device=None,
        label="Amira",
        host="instagram.com",
        category=None,
        until=until,
        by="sam",
        reason="homework on a school page",
        now=time.time(),
    )
    _until(lambda: answers(running.query("www.instagram.com", source=AMIRA)) == INSTAGRAM)
    assert answers(running.query("www.instagram.com", source=BEN)) == blocked
    time.sleep(max(0.0, until - time.time()))
    _until(lambda: answers(running.query("www.instagram.com", source=AMIRA)) == blocked)


def test_a_spent_category_budget_closes_that_category_and_not_others(make_dns, upstream, tmp_path):
    upstream.add("www.instagram.com", "A", "203.0.113.5")
    upstream.add("discord.com", "A", "203.0.113.6")
    running = make_dns()
    store = _store(tmp_path)
    cara = _signed_in(store, "Cara", "teens", CARA)
    controls.set_child_budget(
        store, cara, Budget(categories={"social-networks": 30}), by="lee", now=time.time()
    )
    _until(lambda: answers(running.query("www.instagram.com", source=CARA)) == INSTAGRAM)
    minute = int(time.time() // 60)
    controls.record_activity(store, [(_today(), cara, "social-networks", minute - i) for i in range(1, 31)])
    # The teens profile answers a block with 0.0.0.0.
    _until(
        lambda: (
            answers(running.query("www.instagram.com", source=CARA))
            == [("www.instagram.com", "A", "0.0.0.0")]
        )
    )
    assert answers(running.query("discord.com", source=CARA)) == DISCORD
    assert answers(running.query("en.wikipedia.org", source=CARA)) == WIKIPEDIA


def test_a_budgeted_childs_questions_are_counted_as_active_minutes(make_dns, upstream, tmp_path):
    upstream.add("www.instagram.com", "A", "203.0.113.5")
    running = make_dns()
    store = _store(tmp_path)
    cara = _signed_in(store, "Cara", "teens", CARA)
    controls.set_child_budget(
        store, cara, Budget(categories={"social-networks": 30}), by="lee", now=time.time()
    )
    before = int(time.time() // 60)

    def counted() -> set[tuple[str, str, str]]:
        running.query("www.instagram.com", source=CARA)
        running.flush_log()
        rows = store.execute("SELECT day, child, category, minute FROM activity").fetchall()
        assert all(before <= minute <= int(time.time() // 60) for *_, minute in rows)
        return {(day, child, category) for day, child, category, _ in rows}

    # The internet and the budgeted category, once the sign-in and the budget are in force.
    _until(lambda: counted() == {(_today(), cara, ""), (_today(), cara, "social-networks")}, 2.0)


def test_a_child_without_a_budget_keeps_the_fast_path_and_is_not_counted(make_dns, upstream, tmp_path):
    upstream.add("www.instagram.com", "A", "203.0.113.5")
    running = make_dns()
    store = _store(tmp_path)
    _signed_in(store, "Dev", "kids", AMIRA)
    blocked = [("www.instagram.com", "A", "192.168.50.1")]
    _until(lambda: answers(running.query("www.instagram.com", source=AMIRA)) == blocked)
    running.query("en.wikipedia.org", source=AMIRA)
    fast = running.server.counters.fast
    assert answers(running.query("en.wikipedia.org", source=AMIRA)) == WIKIPEDIA
    running.flush_log()
    assert running.server.counters.fast == fast + 1
    assert store.execute("SELECT count(*) FROM activity").fetchone() == (0,)
