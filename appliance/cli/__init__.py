"""The `appliance` command: one console script, one subcommand per real task.

One module per command group, each with `add_commands(commands, common)` registering its commands on the
parser and parsing and printing only: the work is in the library modules and the services they call.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from appliance.cli import (
    alerts,
    bundle,
    check,
    dashboard,
    dns,
    explain,
    lists,
    proxy,
    router,
    store,
    sync,
    users,
)
from filters.errors import ApplianceError


def build_parser() -> argparse.ArgumentParser:
    """The `appliance` parser, every command group registered on it."""
    parser = argparse.ArgumentParser(
        prog="appliance", description="Filtering and monitoring appliance for children's internet centres."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        help="configuration file (default: $APPLIANCE_CONFIG, "
        "/etc/appliance/appliance.yaml, else the bundled demo)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    # In the order `appliance --help` has always listed them.
    for group in (lists, check, explain, dns, proxy, users, dashboard, alerts, store, router, bundle, sync):
        group.add_commands(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command `argv` (default: the process's arguments) names; its exit status. A mistake the
    appliance can name (ApplianceError) is one line on stderr and status 2."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ApplianceError as e:
        print(f"appliance: {e}", file=sys.stderr)
        return 2
    return code
