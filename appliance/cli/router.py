"""`appliance router rules`: the nftables ruleset of router mode (rendered by appliance.router)."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.in_force.head_office import load_config_in_force
from appliance.router import ruleset


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `router rules` on the `appliance` parser."""
    router = commands.add_parser("router", help="router mode: the gateway's rules").add_subparsers(
        dest="router_command", required=True
    )
    rules = router.add_parser(
        "rules", parents=[common], help="print the nftables ruleset for this configuration (nft -f FILE)"
    )
    rules.set_defaults(run=_print_rules)


def _print_rules(args: argparse.Namespace) -> int:
    print(ruleset(load_config_in_force(args.config)), end="")
    return 0
