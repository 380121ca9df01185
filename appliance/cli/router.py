"""`appliance router rules`: the nftables ruleset of router mode (rendered by appliance.router);
`appliance router refusals`: the tunnels it refused each device since the last time, into the store;
`appliance router controls`: staff's pauses and the profiles' video calls kept in its sets, until stopped."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from appliance import router_controls
from appliance.in_force.head_office import load_config_in_force
from appliance.refusals import RefusalsUnreadable, record_refusals
from appliance.router import ruleset
from appliance.store.schema import StoreError, connect


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `router rules`, `router refusals` and `router controls` on the `appliance` parser."""
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
    controls = router.add_parser(
        "controls",
        parents=[common],
        help="keep the router's sets of paused devices and of devices allowed video calls in step with the"
        " store, until stopped (appliance-controls.service; needs CAP_NET_ADMIN)",
    )
    controls.set_defaults(run=_run_controls)


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


def _run_controls(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return router_controls.run(args.config)
