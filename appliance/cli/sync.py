"""`appliance sync`: a centre fetches, verifies and swaps in head office's newest bundle, or says what is in
force (the work is in appliance.bundles.sync)."""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from appliance.config import load_config

if TYPE_CHECKING:
    from appliance.bundles.state import SyncState

# The syncing machinery (TUF, its cryptography) is imported by the command, not by every `appliance`
# command: the DNS filter, the dashboard and the nightly compile run through the same console script.


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `sync` on the `appliance` parser."""
    status = commands.add_parser(
        "sync", parents=[common], help="fetch, verify and swap in head office's newest bundle for this centre"
    )
    status.add_argument("--status", action="store_true", help="show what is in force and the last outcome")
    status.add_argument(
        "--jitter", action="store_true", help="first wait a random while (sync.jitter_minutes)"
    )
    status.set_defaults(run=_sync)


def _now() -> datetime:
    return datetime.now(UTC)


def _sync(args: argparse.Namespace) -> int:
    from appliance.bundles.state import read_state
    from appliance.bundles.sync import sync

    config = load_config(args.config)
    if args.status:
        print(describe(read_state(config.data_dir), _now()))
        return 0
    if args.jitter and config.sync:
        time.sleep(random.uniform(0, config.sync.jitter_minutes * 60))
    outcome = sync(config, _now())
    print(outcome.message)
    return 0


def describe(state: SyncState, now: datetime) -> str:
    """The state in plain lines, for staff."""
    from appliance.bundles.state import bundle_age

    lines = []
    if state.in_force is None:
        lines.append("in force: no head-office bundle yet (the appliance's own lists)")
    else:
        age = bundle_age(state.created, now)
        lines.append(
            f"in force: bundle {state.in_force}, made {state.created} ({age} old), "
            f"swapped in {state.installed}"
        )
    lines.append(f"last success: {state.last_success or 'never'}")
    unfinished = " (no outcome: still running, or stopped from outside)" if state.unfinished else ""
    lines.append(f"last attempt: {state.last_attempt or 'never'}{unfinished}")
    if state.last_error:
        lines.append(f"last error ({state.last_error_at}): {state.last_error}")
    for version, why in sorted((state.refused or {}).items()):
        lines.append(f"refused: bundle {version}: {why}")
    return "\n".join(lines)
