"""`appliance store check`: the event store's integrity, from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.config import load_config
from appliance.store.schema import connect


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `store check` on the `appliance` parser."""
    store = commands.add_parser("store", help="the event store").add_subparsers(
        dest="store_command", required=True
    )
    check = store.add_parser(
        "check", parents=[common], help="open the store and run SQLite's integrity check"
    )
    check.set_defaults(run=run_store_check)


def run_store_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    db = connect(config.events_path)
    (result,) = db.execute("PRAGMA integrity_check").fetchone()
    print(f"{config.events_path}: {result}")
    return 0 if result == "ok" else 1
