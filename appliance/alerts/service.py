"""The alerter (`appliance alerts`): one process that, every quarter second, raises alerts from the
notable events (`raising.Raiser`) and tells people of them (`delivery.Deliverer`), until SIGTERM.

It follows the policy in force as the DNS filter does (a `Follower`: alerts.yaml, the categories and the
centre's time zone reloaded when their files change). Nothing on the answering side waits for it: the DNS
filter and the proxy only write events, and the alerter reads them from the store.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from appliance.alerts.delivery import Deliverer, use_ca_directory
from appliance.alerts.raising import Raiser
from appliance.in_force.live import Live
from appliance.store.schema import connect
from profiles.alerts import AlertPolicy

log = logging.getLogger("appliance.alerts")

STEP_S = 0.25  # how often the alerter raises and delivers
WATCH_S = 2.0


@dataclass
class Alerter:
    """Both jobs on one store connection, stepped with the time given."""

    deliverer: Deliverer
    raiser: Raiser

    def step(self, policy: AlertPolicy, now: float) -> None:
        self.raiser.step(policy, now)
        self.deliverer.step(policy, now, datetime.fromtimestamp(now, self.deliverer.zone))


def serve(
    alerter: Alerter, policy_of: Callable[[], AlertPolicy], stop: threading.Event, *, every: float = STEP_S
) -> None:
    """Step `alerter` every `every` seconds with the policy `policy_of` gives, until `stop` is set. An
    error in one step is logged and the next step tries again (the outbox keeps what was not done)."""
    while not stop.is_set():
        try:
            alerter.step(policy_of(), time.time())
        except Exception:  # the alerter must outlive any one bad step
            log.exception("alerting failed; trying again")
            alerter.deliverer.busy = False
        # A backlog (a burst of alerts) is worked through without a pause; otherwise every `every`.
        stop.wait(0 if alerter.deliverer.busy else every)


def run(config_path: Path | None) -> int:
    """Run the alerter with the policy in force under `config_path` until SIGINT or SIGTERM; the exit
    status. Raises ApplianceError for a mistake in the files, before anything is sent."""
    try:
        return asyncio.run(_serve(config_path))
    except KeyboardInterrupt:
        return 0


async def _serve(config_path: Path | None) -> int:
    from appliance.in_force.follower import Follower
    from appliance.in_force.live import load_live

    live = load_live(config_path)
    use_ca_directory()
    # Apprise is loaded now, not at the first alert: its half second of CPU is spent at start, and the
    # first message goes as fast as the next (it stays loaded from its first message on anyway).
    import apprise  # noqa: F401

    follower = Follower(live, role="alerts", config_path=config_path, events=None, log=log)
    db = connect(live.config.events_path)
    deliverer = Deliverer(db, zone=live.zone, categories=live.policy.categories)
    alerter = Alerter(deliverer, Raiser(db, area_of=live.policy.categories.areas()))
    del live  # the follower holds the policy in force

    def reloaded(new: Live) -> None:
        deliverer.zone = new.zone
        deliverer.categories = new.policy.categories
        alerter.raiser = Raiser(db, area_of=new.policy.categories.areas())

    stop = threading.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch = asyncio.create_task(follower.watch(WATCH_S, lambda: None, reloaded))
    policy = follower.live.alerts
    told = sum(len(c.channels) for c in policy.contacts)
    log.info(
        "alerter running on %s: %d rules, %d channels",
        follower.live.config.events_path,
        len(policy.rules),
        told,
    )
    try:
        # The steps run in a thread of their own: the follower's reloads and the signals stay on the loop.
        await loop.run_in_executor(None, serve, alerter, lambda: follower.live.alerts, stop)
    finally:
        stop.set()
        watch.cancel()
        follower.close()
        db.close()
        log.info("alerter stopped")
    return 0


def _policy_in_force(config_path: Path | None) -> tuple[AlertPolicy, sqlite3.Connection, Deliverer]:
    from appliance.in_force.live import load_live

    live = load_live(config_path)
    use_ca_directory()
    db = connect(live.config.events_path)
    deliverer = Deliverer(db, zone=live.zone, categories=live.policy.categories, wait_s=5.0)
    return live.alerts, db, deliverer


def try_channels(config_path: Path | None, contact: str | None) -> list[tuple[str, str, str]]:
    """Send a test message through every channel (of `contact`, else everyone's); (contact, channel,
    error or '') for each."""
    policy, db, deliverer = _policy_in_force(config_path)
    try:
        return deliverer.try_channels(policy, time.time(), contact)
    finally:
        db.close()


def send_digest(config_path: Path | None) -> list[tuple[str, str, str]]:
    """Send the digest now (beside its timer); (contact, channel, error or '') for each channel. A digest
    not sent now stays in the outbox, and the running alerter retries it."""
    policy, db, deliverer = _policy_in_force(config_path)
    try:
        now = time.time()
        ids = deliverer.queue_digest(policy, now)
        deliverer.send_now(policy, now, ids)
        return deliverer.results(ids)
    finally:
        db.close()


def main() -> int:
    """`python -m appliance.alerts.service [--config PATH]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m appliance.alerts.service")
    parser.add_argument("--config", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args.config)


if __name__ == "__main__":
    raise SystemExit(main())
