"""`appliance store check` and `appliance store backup`: the event store's integrity and its backups, from
the command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from appliance.config import load_config
from appliance.store.backup import KEEP, back_up
from appliance.store.schema import StoreError, connect


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `store check` and `store backup` on the `appliance` parser."""
    store = commands.add_parser("store", help="the event store").add_subparsers(
        dest="store_command", required=True
    )
    check = store.add_parser(
        "check", parents=[common], help="open the store and run SQLite's integrity check"
    )
    check.set_defaults(run=run_store_check)
    backup = store.add_parser(
        "backup",
        parents=[common],
        help="copy the store (safe while the services run) into a folder, keeping the newest copies",
    )
    backup.add_argument(
        "--to", type=Path, default=None, help="the folder (default: backups/ in the data folder); a USB drive"
    )
    backup.add_argument("--keep", type=int, default=KEEP, help=f"copies kept there (default {KEEP})")
    backup.set_defaults(run=run_store_backup)


def run_store_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    db = connect(config.events_path)
    (result,) = db.execute("PRAGMA integrity_check").fetchone()
    print(f"{config.events_path}: {result}")
    return 0 if result == "ok" else 1


def run_store_backup(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    folder = args.to or config.data_dir / "backups"
    try:
        made = back_up(config.events_path, folder, now=time.time(), keep=args.keep)
    except (StoreError, ValueError) as e:
        print(f"appliance store backup: {e}", file=sys.stderr)
        return 1
    print(f"backed up {config.events_path} to {made}")
    return 0
