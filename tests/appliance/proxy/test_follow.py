"""Follow: the proxy follows the store's sign-ins as the DNS filter does, and a reload swaps the policy
in whole (tests/appliance/in_force/test_follower.py: a refused one keeps the running policy)."""

from __future__ import annotations

import time
from pathlib import Path

from appliance.proxy.enforce import Enforce
from appliance.proxy.follow import Follow
from appliance.proxy.identify import Identify
from appliance.store import people
from appliance.store.schema import connect
from tests.appliance.proxy.world import flow, shared, through


def test_a_portal_sign_in_puts_the_device_under_the_childs_profile(tmp_path: Path) -> None:
    """A guest device signed in on the portal is answered under the child's profile (allowlist only), and
    after sign-out as a guest again."""
    world = shared(tmp_path)
    follow = Follow(world)
    addons = [follow, Identify(world), Enforce(world)]
    device = "127.0.0.60"  # unknown to the configuration: a guest

    def answer() -> int:
        f = through(addons, "requestheaders", f=flow(device, "http://www.example.org/"))
        return f.response.status_code if f.response is not None else 0

    assert answer() == 0  # a guest may go on to the site
    store = connect(world.live.config.events_path)
    child = people.add_child(store, "Amira", "kid", "4826", time.time())
    session = people.start_session(store, child.id, device, device, time.time(), time.time() + 3600, 1200)
    follow.follow_bindings()
    assert answer() == 403  # the block page
    people.end_session(store, session, "logout", time.time())
    follow.follow_bindings()
    assert answer() == 0
