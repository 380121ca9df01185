"""`appliance users add|list|password`: the dashboard's staff accounts from the command line."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any

from appliance.config import load_config
from appliance.store import audit, staff
from appliance.store.schema import StoreError, connect, transaction
from appliance.store.staff import Role


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `users add|list|password` on the `appliance` parser."""
    users = commands.add_parser("users", help="staff accounts of the dashboard").add_subparsers(
        dest="users_command", required=True
    )
    add = users.add_parser("add", parents=[common], help="add a member of staff (asks for a password)")
    add.add_argument("username")
    add.add_argument("--name", default="", help="the name shown in the dashboard (default: the user name)")
    add.add_argument("--role", choices=[str(r) for r in Role], default="staff")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input (for scripts)"
    )
    add.set_defaults(run=run_users_add)
    listing = users.add_parser("list", parents=[common], help="list the staff accounts")
    listing.set_defaults(run=run_users_list)
    reset = users.add_parser("password", parents=[common], help="set a member of staff's password")
    reset.add_argument("username")
    reset.add_argument("--password-stdin", action="store_true")
    reset.set_defaults(run=run_users_password)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Again: ") != first:
        raise StoreError("the two passwords differ")
    return first


def run_users_add(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    db = connect(config.events_path)
    user = staff.add_user(
        db, args.username, args.name, Role(args.role), _password(args.password_stdin), time.time()
    )
    with transaction(db):
        audit.record(
            db, time.time(), None, "appliance", "add-staff", f"staff:{user.username}", f"role {user.role}"
        )
    print(f"Added {user.username} ({user.role.label}). Sign in at http://{config.dashboard.listen}/signin")
    return 0


def run_users_list(args: argparse.Namespace) -> int:
    db = connect(load_config(args.config).events_path)
    for user in staff.all_users(db):
        state = " (disabled)" if user.disabled else ""
        print(f"{user.username:<20} {user.role.label:<14} {user.display_name}{state}")
    return 0


def run_users_password(args: argparse.Namespace) -> int:
    db = connect(load_config(args.config).events_path)
    user = next((u for u in staff.all_users(db) if u.username.lower() == args.username.lower()), None)
    if user is None:
        raise StoreError(f"no staff account named {args.username!r}")
    staff.set_password(db, user.id, _password(args.password_stdin))
    staff.end_sessions(db, user.id, time.time())  # a forgotten or stolen sign-in ends with the old password
    with transaction(db):
        # An administrator's reset also lifts a lock-out of the account.
        db.execute(
            "DELETE FROM sign_in_failures WHERE key = ? OR key LIKE ?",
            (f"user:{user.username.lower()}", f"user:{user.username.lower()}@%"),
        )
        audit.record(db, time.time(), None, "appliance", "change-password", f"staff:{user.username}", "")
    print(f"Password of {user.username} changed.")
    return 0
