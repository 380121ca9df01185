"""The one follower of the policy in force, as the DNS filter and each proxy worker run it: a changed file
is loaded and swapped in whole; a broken one is refused, recorded, and the running policy kept."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.in_force.follower import Follower
from appliance.in_force.live import Live, changed, load_live
from appliance.lists import compile_lists
from appliance.proxy.ca import ensure_authority
from appliance.proxy.follow import Follow
from appliance.proxy.shared import Shared
from tests.appliance.proxy.conftest import Origin, write_config

log = logging.getLogger("test")
TYPO = ("blocked_categories: [adult,", "blocked_categories: [adlt,")


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    (tmp_path / "none.pem").write_text("")
    path = write_config(tmp_path, Origin(ca_pem=tmp_path / "none.pem"), 18080)
    compile_lists(load_config(path), now=dt.datetime.now(dt.UTC))
    return path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_refused_reload_is_recorded_and_the_running_policy_kept(config_path: Path) -> None:
    follower = Follower(load_live(config_path), role="dns", config_path=config_path, events=None, log=log)
    running = follower.live
    profiles = config_path.parent / "profiles.yaml"
    _edit(profiles, *TYPO)

    assert asyncio.run(follower.reload()) is None

    assert follower.live is running
    assert follower.reloads == 0
    [error] = follower.reload_errors
    assert str(profiles) in error and "adlt" in error
    assert not changed(follower.live)  # the same broken files are not tried again every few seconds


def test_a_changed_file_is_reloaded_by_the_watch_and_swapped_in_whole(config_path: Path) -> None:
    follower = Follower(load_live(config_path), role="dns", config_path=config_path, events=None, log=log)
    before = follower.live
    assert "roblox.com" not in before.policy.profiles["13-17"].block
    ticks: list[None] = []
    reloaded: list[Live] = []

    async def run() -> None:
        watch = asyncio.ensure_future(follower.watch(0.01, lambda: ticks.append(None), reloaded.append))
        _edit(config_path.parent / "profiles.yaml", "  13-17:\n", "  13-17:\n    block: [roblox.com]\n")
        for _ in range(500):
            if reloaded:
                break
            await asyncio.sleep(0.01)
        watch.cancel()

    asyncio.run(run())
    assert reloaded == [follower.live] and follower.live is not before
    assert "roblox.com" in follower.live.policy.profiles["13-17"].block
    assert follower.reloads == 1 and follower.reload_errors == []
    assert ticks  # the service's own upkeep runs on the same watch


def test_the_proxy_records_a_refused_reload_as_the_dns_filter_does(config_path: Path, tmp_path: Path) -> None:
    shared = Shared(load_live(config_path), ensure_authority(tmp_path / "ca"), None, config_path)
    follow = Follow(shared)
    running = shared.live
    profiles = config_path.parent / "profiles.yaml"
    _edit(profiles, *TYPO)

    assert asyncio.run(follow.reload()) is False

    assert shared.live is running and follow.reloads == 0
    [error] = shared.follower.reload_errors
    assert str(profiles) in error and "adlt" in error


def test_alerts_yaml_is_followed_and_a_broken_one_refused_with_the_running_kept(config_path: Path) -> None:
    shipped = Path(load_config(config_path).policy.alerts)
    alerts = config_path.parent / "alerts.yaml"
    alerts.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    _edit(config_path, "policy:\n", f"policy:\n  alerts: {alerts}\n")
    follower = Follower(load_live(config_path), role="dns", config_path=config_path, events=None, log=log)
    assert follower.live.alerts.throttle_s == 30 * 60

    _edit(alerts, "throttle_minutes: 30", "throttle_minutes: 5")
    assert changed(follower.live)
    assert asyncio.run(follower.reload()) is follower.live
    assert follower.live.alerts.throttle_s == 5 * 60
    running = follower.live

    _edit(alerts, "when: {category: [dating, chat]}", "when: {category: [dating, chit-chat]}")
    assert changed(follower.live)
    assert asyncio.run(follower.reload()) is None
    assert follower.live is running and follower.live.alerts.throttle_s == 5 * 60
    [error] = follower.reload_errors
    assert f"{alerts}:" in error and "unknown category 'chit-chat'" in error
