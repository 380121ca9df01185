"""The block page's "Ask to use this site", through the real proxy: offered only where staff could lift the
block, taken once from the device that was shown the block on the blocked host, written to the store
(staff see it), never sent on to the site, and written off the event loop (a locked store holds only the
ask, never the other requests)."""

from __future__ import annotations

import re
import sqlite3
import threading
import time

import pytest

from appliance.pages import ASK_PATH, ask_offered
from appliance.proxy.own_pages import category_of, grantable
from appliance.proxy.report import REPORT_PATH, Blocked
from appliance.store import controls
from appliance.store.schema import connect
from profiles.verdict import Action, Reason, Step, Verdict
from tests.appliance.proxy.conftest import KIDS, PHONE, Origin, Proxy, fetch

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def block_page(proxy: Proxy, origin: Origin, device: str, host: str) -> bytes:
    status, _, body = fetch(proxy, device, f"http://{host}:{origin.http_port}/somewhere")
    assert status == 403
    return body


def ask_form(body: bytes) -> tuple[str, str] | None:
    """(action, token) of the block page's ask form, if it has one."""
    forms = re.findall(
        rb'<form method="post" action="([^"]+)">\s*<input type="hidden" name="token" value="([^"]+)">', body
    )
    asks = [(a.decode(), t.decode()) for a, t in forms if a.decode().endswith(ASK_PATH)]
    return asks[0] if asks else None


def post(proxy: Proxy, origin: Origin, device: str, host: str, path: str, form: bytes) -> tuple[int, bytes]:
    status, _, body = fetch(
        proxy, device, f"http://{host}:{origin.http_port}{path}", method="POST", body=form, headers=FORM
    )
    return status, body


def pending(proxy: Proxy, host: str) -> list[controls.AskRecord]:
    db = connect(proxy.events)
    try:
        return [a for a in controls.pending_asks(db, time.time()) if a.host == host]
    finally:
        db.close()


def reaching(origin: Origin, path: str) -> int:
    return sum(1 for s in origin.seen if s.path.startswith(path))


def test_a_child_asks_to_use_a_blocked_site_and_the_ask_reaches_the_store(
    proxy: Proxy, origin: Origin
) -> None:
    host = "www.facebook.com"  # social networks: blocked for 10-12, a block staff may lift
    found = ask_form(block_page(proxy, origin, KIDS, host))
    assert found is not None, "the block page offers no ask"
    action, token = found
    assert action == f"http://{host}:{origin.http_port}{ASK_PATH}"
    status, body = post(proxy, origin, KIDS, host, ASK_PATH, f"token={token}&note=for+my+homework".encode())
    assert status == 200 and b"Staff have been asked" in body
    [ask] = pending(proxy, host)
    assert (ask.subject, ask.label, ask.client, ask.device, ask.note, ask.category, ask.profile) == (
        "device:kids-pc",
        "kids-pc",
        KIDS,
        KIDS,
        "for my homework",
        "social-networks",
        "10-12",
    )
    assert reaching(origin, ASK_PATH) == 0


def test_an_ask_counts_once_from_its_device_on_its_host_and_leaves_the_report_alone(
    proxy: Proxy, origin: Origin
) -> None:
    host = "www.instagram.com"
    found = ask_form(block_page(proxy, origin, KIDS, host))
    assert found is not None
    form = f"token={found[1]}".encode()
    assert post(proxy, origin, PHONE, host, ASK_PATH, form)[0] == 400  # another device
    assert post(proxy, origin, KIDS, "www.tiktok.com", ASK_PATH, form)[0] == 400  # another host
    assert post(proxy, origin, KIDS, host, ASK_PATH, form)[0] == 200
    assert post(proxy, origin, KIDS, host, ASK_PATH, form)[0] == 400  # replayed
    assert post(proxy, origin, KIDS, host, REPORT_PATH, form)[0] == 200  # the same block reported
    assert len(pending(proxy, host)) == 1


@pytest.mark.parametrize(
    "token", ["", "not-a-token", "e30=.0123456789abcdef0123456789abcdef", "\u00e9" * 300]
)
def test_a_broken_ask_is_not_sent_and_never_reaches_the_site(
    proxy: Proxy, origin: Origin, token: str
) -> None:
    status, body = post(proxy, origin, KIDS, "www.tiktok.com", ASK_PATH, b"token=" + token.encode())
    assert status == 400 and b"Staff could not be asked" in body
    assert reaching(origin, ASK_PATH) == 0 and pending(proxy, "www.tiktok.com") == []


def test_no_ask_for_a_site_blocked_for_everyone_even_with_its_token(proxy: Proxy, origin: Origin) -> None:
    host = "malware.testcategory.com"  # always blocked: no grant lifts it
    body = block_page(proxy, origin, KIDS, host)
    assert ask_form(body) is None and b"Ask to use this site" not in body
    report_token = re.search(rb'name="token" value="([^"]+)"', body)
    assert report_token is not None
    form = b"token=" + report_token.group(1)
    assert post(proxy, origin, KIDS, host, ASK_PATH, form)[0] == 400
    assert pending(proxy, host) == []


def test_a_locked_store_holds_only_the_ask_and_it_is_answered_not_sent(proxy: Proxy, origin: Origin) -> None:
    """The ask's write waits in a thread of its own: while the store is locked, the proxy answers other
    requests, and the ask is told "not sent" rather than left hanging."""
    host = "www.snapchat.com"
    found = ask_form(block_page(proxy, origin, KIDS, host))
    assert found is not None
    answered: list[tuple[int, bytes]] = []
    lock = sqlite3.connect(proxy.events, timeout=10, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        asking = threading.Thread(
            target=lambda: answered.append(
                post(proxy, origin, KIDS, host, ASK_PATH, f"token={found[1]}".encode())
            )
        )
        asking.start()
        time.sleep(0.3)  # the ask is in the proxy, held on the locked store
        status, _, _ = fetch(proxy, PHONE, f"http://localhost:{origin.http_port}/")
        assert status == 200 and asking.is_alive()  # another request answered meanwhile
        asking.join(30)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    [(status, body)] = answered
    assert status == 400 and b"Staff could not be asked" in body


def reason(step: Step, rule: str = "", effect: Action = Action.BLOCK) -> Reason:
    return Reason(step, effect, "why", "games" if step is Step.CATEGORY else "", rule=rule)


@pytest.mark.parametrize(
    ("reasons", "offered"),
    [
        ((reason(Step.CATEGORY),), True),
        ((reason(Step.NOT_ALLOWLISTED),), True),
        ((reason(Step.BUDGET, rule="games"),), True),  # a category's time used up
        ((reason(Step.BUDGET),), False),  # the day's internet time used up
        ((reason(Step.ALWAYS_BLOCKED),), False),
        ((reason(Step.PAUSED, rule="3"),), False),
        ((reason(Step.SCHEDULE),), False),
        ((reason(Step.BYPASS_ATTEMPT),), False),
        ((reason(Step.DOWNLOAD),), False),
        ((reason(Step.CATEGORY), reason(Step.ALWAYS_BLOCKED)), False),
        ((reason(Step.CATEGORY, effect=Action.FLAG),), False),  # nothing blocked
    ],
)
def test_the_ask_is_offered_only_for_blocks_a_grant_lifts(reasons: tuple[Reason, ...], offered: bool) -> None:
    assert ask_offered(Verdict(Action.BLOCK, "10-12", reasons)) is offered


@pytest.mark.parametrize(
    ("why", "taken", "category"),
    [
        ("category: social-networks", True, "social-networks"),
        ("not-on-allowlist: not on the allowed list", True, ""),
        ("budget: today's time for Games is used up", True, ""),
        ("budget: today's internet time is used up", False, ""),
        ("always-blocked: malware", False, ""),
        ("paused: paused by staff until 12:24", False, ""),
        ("category: chat; always-blocked: malware", False, "chat"),
        ("", False, ""),
    ],
)
def test_an_ask_is_taken_only_for_a_block_a_grant_lifts(why: str, taken: bool, category: str) -> None:
    """A report's token (every block page has one) posted as an ask: the block it names decides."""
    blocked = Blocked("www.example.org", why, time.time(), KIDS)
    assert (grantable(blocked), category_of(blocked)) == (taken, category)
