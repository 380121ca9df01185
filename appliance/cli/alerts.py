"""`appliance alerts`: run the alerter; `alerts test` tries each channel; `alerts digest` sends the digest."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from appliance.alerts import service


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `alerts`, `alerts test` and `alerts digest` on the `appliance` parser."""
    alerts = commands.add_parser(
        "alerts",
        parents=[common],
        help="run the alerter (raise alerts, tell the contacts) until stopped; or test the channels",
    )
    alerts.set_defaults(run=run_alerts)
    more = alerts.add_subparsers(dest="alerts_command")
    test = more.add_parser(
        "test", parents=[common], help="send a test message through every channel and say which worked"
    )
    test.add_argument("--contact", metavar="NAME", help="only this contact's channels (alerts.yaml's name)")
    test.set_defaults(run=run_alerts_test)
    digest = more.add_parser("digest", parents=[common], help="send the digest now")
    digest.set_defaults(run=run_alerts_digest)


def run_alerts(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return service.run(args.config)


def _report(results: list[tuple[str, str, str]], nothing: str) -> int:
    if not results:
        print(nothing)
        return 1
    for contact, channel, error in results:
        print(f"{contact} by {channel}: {'sent' if not error else 'FAILED: ' + error}")
    return 1 if any(error for _, _, error in results) else 0


def run_alerts_test(args: argparse.Namespace) -> int:
    return _report(
        service.try_channels(args.config, args.contact),
        "no channels: write the contacts and their channels in alerts.yaml (docs/alerts.md)",
    )


def run_alerts_digest(args: argparse.Namespace) -> int:
    return _report(
        service.send_digest(args.config), "no digest: alerts.yaml names none, or its contact has no channels"
    )
