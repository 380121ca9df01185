"""`appliance dashboard`: serve the staff dashboard and the children's portal."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `dashboard` on the `appliance` parser."""
    dashboard = commands.add_parser(
        "dashboard", parents=[common], help="serve the staff dashboard and the children's portal"
    )
    dashboard.add_argument("--listen", metavar="HOST:PORT", help="default: dashboard.listen")
    dashboard.set_defaults(run=run_dashboard)


def run_dashboard(args: argparse.Namespace) -> int:
    # The dashboard is its own program (python -m dashboard): the appliance package never imports it.
    argv = [sys.executable, "-m", "dashboard"]
    if args.config:
        argv.append(str(args.config))
    if args.listen:
        argv += ["--listen", args.listen]
    os.execv(sys.executable, argv)
