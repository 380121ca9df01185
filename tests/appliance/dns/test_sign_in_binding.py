"""A child signing in on the portal changes how the DNS filter answers their device within a second,
and signing out changes it back: the filter follows the event store's sessions."""

from __future__ import annotations

import time

from appliance.config import load_config
from appliance.store import people
from appliance.store.schema import connect
from tests.appliance.dns.conftest import answers, rcode

DEVICE = "127.0.0.50"  # no device entry: a guest until someone signs in on it
BLOCK_PAGE = [("www.instagram.com", "A", "192.168.50.1")]


def _until(check, deadline_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if check():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"not within {deadline_s} s")


def test_a_sign_in_binds_the_device_to_the_childs_profile_within_a_second(make_dns, tmp_path):
    running = make_dns()
    store = connect(load_config(tmp_path / "appliance.yaml").events_path)
    # A guest may reach social networks; the kids profile may not (and answers with the block page).
    assert rcode(running.query("www.instagram.com", source=DEVICE)) == "NXDOMAIN"  # from the upstream
    child = people.add_child(store, "Amira", "kids", "4826", time.time())
    session = people.start_session(store, child.id, DEVICE, DEVICE, time.time(), time.time() + 3600, 1200)
    _until(lambda: answers(running.query("www.instagram.com", source=DEVICE)) == BLOCK_PAGE, 1.0)
    running.query("www.pornhub.com", source=DEVICE)
    running.flush_log()
    subjects = {s for (s,) in store.execute("SELECT subject FROM event_log WHERE host = 'www.pornhub.com'")}
    assert subjects == {f"child:{child.id}"}
    people.end_session(store, session, "logout", time.time())
    _until(lambda: rcode(running.query("www.instagram.com", source=DEVICE)) == "NXDOMAIN", 1.0)


def test_a_signed_in_device_in_use_keeps_its_session_from_idling(make_dns, tmp_path):
    running = make_dns()
    store = connect(load_config(tmp_path / "appliance.yaml").events_path)
    child = people.add_child(store, "Ben", "kids", "1234", time.time())
    started = time.time() - 100
    people.start_session(store, child.id, DEVICE, DEVICE, started, time.time() + 3600, 1200)
    _until(lambda: answers(running.query("www.instagram.com", source=DEVICE)) == BLOCK_PAGE, 1.0)
    running.call(_report(running))
    running.flush_log()
    (last_seen,) = store.execute("SELECT last_seen FROM sessions WHERE child = ?", (child.id,)).fetchone()
    assert last_seen > started + 50


async def _report(running) -> None:
    running.server._report_signed_in(running.server.live)
    running.server.events.hand_over()
