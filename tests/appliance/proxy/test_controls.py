"""Staff's controls reach the real proxy from the event store within a second: a paused device gets a
kind "paused" page until staff resume; a grant opens a blocked site for one child until it ends; a spent
category budget closes that category only, saying what is left of the rest; a child nearly out of time
sees a notice on their pages; and a budgeted child's requests are counted as active minutes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from appliance.store import controls, people
from appliance.store.schema import connect
from profiles.controls import Budget, Scope
from tests.appliance.proxy.conftest import PAGE, Origin, Proxy, fetch, sign_in_taken

# Devices of these tests alone (no device entries: guests until a child signs in on them).
PAUSED, AMIRA, BEN, CARA, DANA = "127.0.0.70", "127.0.0.71", "127.0.0.72", "127.0.0.73", "127.0.0.74"


def _until(check: Callable[[], bool], deadline_s: float = 1.0) -> None:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {deadline_s} s")


@pytest.fixture
def store(proxy: Proxy) -> Iterator[sqlite3.Connection]:
    db = connect(proxy.events)
    yield db
    db.close()


def _signed_in(
    proxy: Proxy, store: sqlite3.Connection, name: str, profile: str, device: str, page: str
) -> str:
    """A child signed in on `device`, once the proxy knows it (fetching `page`)."""
    since = time.time()
    child = people.add_child(store, name, profile, "4826", since)
    people.start_session(store, child.id, device, device, since, since + 3600, 1200)
    _until(lambda: sign_in_taken(proxy, device, since, page), 2.0)
    return child.id


def _today() -> str:
    return datetime.now(ZoneInfo("Europe/London")).date().isoformat()


def _used(store: sqlite3.Connection, child: str, category: str, minutes: int) -> None:
    """`minutes` active minutes of `category` today, before this one."""
    minute = int(time.time() // 60)
    controls.record_activity(store, [(_today(), child, category, minute - i) for i in range(1, minutes + 1)])


def _page(proxy: Proxy, source: str, url: str) -> tuple[int, str]:
    status, _, body = fetch(proxy, source, url)
    return status, body.decode()


def test_a_paused_device_gets_the_paused_page_within_a_second_and_resuming_lifts_it(
    proxy: Proxy, origin: Origin, store: sqlite3.Connection
) -> None:
    url = f"http://en.wikipedia.org:{origin.http_port}/page.html"
    assert _page(proxy, PAUSED, url) == (200, PAGE)
    pause = controls.pause(
        store,
        scope=Scope.DEVICE,
        target=PAUSED,
        label="laptop 3",
        minutes=30,
        by="sam",
        reason="",
        now=time.time(),
    )
    _until(lambda: _page(proxy, PAUSED, url)[0] == 403)
    _, page = _page(proxy, PAUSED, url)
    assert "The internet is paused" in page
    assert "Staff have switched the internet off for a while" in page
    assert "keeps some pages closed" not in page  # not a page the filter keeps closed: a pause
    assert "Staff have paused the internet on this device until " in page
    assert "should not be blocked" not in page  # no report form: staff chose it
    assert _page(proxy, "127.0.0.75", url) == (200, PAGE)  # only that device
    controls.resume(store, pause, by="sam", now=time.time())
    _until(lambda: _page(proxy, PAUSED, url) == (200, PAGE))


def test_a_grant_opens_a_blocked_site_for_that_child_only_until_it_ends(
    proxy: Proxy, origin: Origin, store: sqlite3.Connection
) -> None:
    url = f"http://www.instagram.com:{origin.http_port}/page.html"
    amira = _signed_in(
        proxy, store, "Amira Grant", "10-12", AMIRA, f"http://en.wikipedia.org:{origin.http_port}/"
    )
    _signed_in(proxy, store, "Ben Grant", "10-12", BEN, f"http://en.wikipedia.org:{origin.http_port}/")
    # Both signed in under 10-12, which blocks social networks.
    assert _page(proxy, AMIRA, url)[0] == _page(proxy, BEN, url)[0] == 403
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
        reason="a school project",
        now=time.time(),
    )
    _until(lambda: _page(proxy, AMIRA, url) == (200, PAGE))
    assert _page(proxy, BEN, url)[0] == 403
    time.sleep(max(0.0, until - time.time()))
    _until(lambda: _page(proxy, AMIRA, url)[0] == 403)


def test_a_spent_category_budget_closes_that_category_says_what_is_left_and_counts_minutes(
    proxy: Proxy, origin: Origin, store: sqlite3.Connection
) -> None:
    social = f"http://www.instagram.com:{origin.http_port}/page.html"
    other = f"http://en.wikipedia.org:{origin.http_port}/page.html"
    cara = _signed_in(
        proxy, store, "Cara Budget", "13-17", CARA, f"http://en.wikipedia.org:{origin.http_port}/"
    )
    budget = Budget(minutes=120, categories={"social-networks": 30})
    controls.set_child_budget(store, cara, budget, by="lee", now=time.time())
    _used(store, cara, "social-networks", 30)
    spent = "Your time for social networks is used up for today. It comes back tomorrow."
    _until(lambda: spent in _page(proxy, CARA, social)[1])
    _, page = _page(proxy, CARA, social)
    assert "The internet: " in page  # what is left of the rest
    assert _page(proxy, CARA, other) == (200, PAGE)
    # Her requests are her active minutes: the internet's, this one.
    minute = int(time.time() // 60)

    def counted() -> bool:
        rows = store.execute(
            "SELECT minute FROM activity WHERE child = ? AND category = '' AND day = ?", (cara, _today())
        ).fetchall()
        return any(m >= minute for (m,) in rows)

    _until(counted, 2.0)


def test_a_child_nearly_out_of_time_sees_a_notice_at_the_top_of_their_pages(
    proxy: Proxy, origin: Origin, store: sqlite3.Connection
) -> None:
    url = f"http://en.wikipedia.org:{origin.http_port}/page.html"
    dana = _signed_in(
        proxy, store, "Dana Notice", "13-17", DANA, f"http://en.wikipedia.org:{origin.http_port}/"
    )
    controls.set_child_budget(
        store, dana, Budget(categories={"social-networks": 30}), by="lee", now=time.time()
    )
    _used(store, dana, "social-networks", 27)
    _until(lambda: "of social networks left today" in _page(proxy, DANA, url)[1], 2.0)
    status, page = _page(proxy, DANA, url)
    assert status == 200
    _, _, rest = page.partition("<body>")
    assert rest.startswith('<div role="status"') and rest.endswith(PAGE.partition("<body>")[2])
    assert "3 minutes of social networks left today" in rest
    assert _page(proxy, "127.0.0.76", url) == (200, PAGE)  # nobody else's pages
