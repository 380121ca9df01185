"""`appliance router rules`: the nftables ruleset of router mode (rendered by appliance.router);
`appliance router refusals`: the tunnels it refused each device since the last time, into the store."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from appliance.in_force.head_office import load_config_in_force
from appliance.refusals import RefusalsUnreadable, record_refusals
from appliance.router import ruleset
from appliance.store.schema import StoreError, connect


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `router rules` on the `appliance` parser."""
    router = commands.add_parser("router", help="router mode: the gateway's rules").add_subparsers(
        dest="router_command", required=True
    )
    rules = router.add_parser(
        "rules", parents=[common], help="print the nftables ruleset for this configuration (nft -f FILE)"
    )
    rules.set_defaults(run=_print_rules)
    refusals = router.add_parser(
        "refusals",
        parents=[common],
        help="record the tunnels past the filter (DoT, DoH) the router refused each device since the last"
        " time (run by appliance-refusals.timer; needs CAP_NET_ADMIN)",
    )
    refusals.set_defaults(run=_record_refusals)


def _print_rules(args: argparse.Namespace) -> int:
    print(ruleset(load_config_in_force(args.config)), end="")
    return 0


def _record_refusals(args: argparse.Namespace) -> int:
    config = load_config_in_force(args.config)
    try:
        db = connect(config.events_path)
        try:
            fresh = record_refusals(db, time.time())
        finally:
            db.close()
    except (RefusalsUnreadable, StoreError) as e:
        print(f"appliance router refusals: {e}", file=sys.stderr)
        return 1
    for address, packets in sorted(fresh.items()):
        print(f"{address}: {packets} refused")
    return 0
