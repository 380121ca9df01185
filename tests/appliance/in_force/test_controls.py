"""Staff's controls as the answering processes take them from the store: whose budget applies (a child's
own replaces their profile's; children not signed in have none), what a client's standing is (a device
named by its MAC, or else its address), and the follower reading them only when they changed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
import time
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.in_force.bindings import Bindings
from appliance.in_force.controls import ControlsFollower, activity, load_controls
from appliance.in_force.live import Live, load_live
from appliance.lists import compile_lists
from appliance.store import controls, people
from appliance.store.schema import connect
from profiles.controls import INTERNET, NO_CONTROLS, NO_STANDING, Budget, Left, Scope, Standing, device_key
from profiles.identity import Child, Identity, Via
from profiles.verdict import Action, Reason, Step, Verdict
from tests.appliance.proxy.conftest import Origin, write_config

MAC = "02:00:00:00:00:21"


@pytest.fixture
def world(tmp_path: Path) -> tuple[Live, sqlite3.Connection]:
    (tmp_path / "none.pem").write_text("")
    config_path = write_config(tmp_path, Origin(ca_pem=tmp_path / "none.pem"), 18080)
    config = load_config(config_path)
    compile_lists(config, now=dt.datetime.now(dt.UTC))
    return load_live(config_path), connect(config.events_path)


def _sign_in(live: Live, db: sqlite3.Connection, name: str, profile: str, device: str) -> str:
    child = people.add_child(db, name, profile, "4826", time.time())
    people.start_session(db, child.id, device, device, time.time(), time.time() + 3600, 1200)
    bound = Bindings(live.config.events_path, live.zone).poll(time.time())
    assert bound is not None
    live.bind(bound)
    return child.id


def test_a_childs_own_budget_replaces_the_profiles_and_only_signed_in_children_have_one(
    world: tuple[Live, sqlite3.Connection],
) -> None:
    live, db = world
    profiles = dict(live.policy.profiles)
    profiles["13-17"] = dataclasses.replace(
        profiles["13-17"], budget=Budget(minutes=120, categories={"social-networks": 30})
    )
    cara = _sign_in(live, db, "Cara", "13-17", "127.0.0.81")
    dev = _sign_in(live, db, "Dev", "13-17", "127.0.0.82")
    asleep = people.add_child(db, "Eve", "13-17", "4826", time.time()).id  # not signed in
    controls.set_child_budget(db, dev, Budget(categories={"games": 20}), by="lee", now=time.time())
    controls.set_child_budget(db, asleep, Budget(minutes=10), by="lee", now=time.time())
    day = dt.datetime.now(live.zone).date().isoformat()
    minute = int(time.time() // 60)
    controls.record_activity(db, [(day, cara, "social-networks", minute - i) for i in range(28)])
    found = load_controls(db, time.time(), live.zone, profiles, live.sessions)
    assert set(found.left) == {f"child:{cara}", f"child:{dev}"}
    assert found.left[f"child:{cara}"].categories == {"social-networks": 2}
    assert found.left[f"child:{cara}"].warned == frozenset({"social-networks"})
    assert found.left[f"child:{dev}"].internet is None  # hers replaces the profile's whole
    assert found.counted[f"child:{dev}"] == frozenset({"games"})


def test_a_paused_device_is_known_by_its_mac_and_its_answers_are_never_shared(
    world: tuple[Live, sqlite3.Connection],
) -> None:
    live, db = world
    follower = ControlsFollower(live.config.events_path, live.zone)
    assert follower.poll(time.time(), live.policy.profiles, live.sessions) is NO_CONTROLS
    assert follower.poll(time.time(), live.policy.profiles, live.sessions) is None  # nothing moved
    controls.pause(
        db,
        scope=Scope.DEVICE,
        target=device_key("127.0.0.83", MAC.upper()),
        label="pc 4",
        minutes=None,
        by="sam",
        reason="",
        now=time.time(),
    )
    found = follower.poll(time.time(), live.policy.profiles, live.sessions)
    assert found is not None and len(found.pauses) == 1
    live.control(found)
    paused = live.client("127.0.0.83", MAC, time.monotonic())
    other = live.client("127.0.0.84", None, time.monotonic())
    assert paused.standing.pause is not None and other.standing is NO_STANDING
    assert paused.fast is not other.fast and paused.fast == {}
    follower.close()


def test_active_minutes_are_the_internet_and_each_counted_category_never_help_or_refusals() -> None:
    child = Identity("13-17", Via.SESSION, None, Child("c1", "Cara", "13-17"))
    left = Left(internet=None, categories={"games": 5}, spent=frozenset(), warned=frozenset({"games"}))
    budgeted = Standing(counted=frozenset({"games"}), left=left)
    counted = Reason(Step.BUDGET, Action.ALLOW, "counts towards today's time for Games", rule="games")
    allowed = Verdict(action=Action.ALLOW, profile="13-17", reasons=(counted,))
    help_service = Verdict(
        action=Action.ALLOW, profile="13-17", reasons=(Reason(Step.HELP_SERVICE, Action.ALLOW, "help"),)
    )
    wall = 600.0 * 60 + 5
    assert set(activity(child, budgeted, allowed, wall)) == {("c1", INTERNET, 600), ("c1", "games", 600)}
    assert list(activity(child, budgeted, help_service, wall)) == []
    spent = Reason(Step.BUDGET, Action.BLOCK, "today's time for Games is used up", rule="games")
    paused = Reason(Step.PAUSED, Action.BLOCK, "paused by staff", rule="3")
    for refusal in (spent, paused):
        refused = Verdict(action=Action.BLOCK, profile="13-17", reasons=(refusal,))
        assert list(activity(child, budgeted, refused, wall)) == []
    assert list(activity(child, NO_STANDING, allowed, wall)) == []
