"""`appliance dns`: run the DNS filter until stopped (Ctrl-C or SIGTERM; SIGHUP reloads)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from appliance.dns import service


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `dns` on the `appliance` parser."""
    dns = commands.add_parser(
        "dns", parents=[common], help="run the DNS filter (UDP and TCP) until stopped; SIGHUP reloads"
    )
    dns.add_argument(
        "--listen",
        action="append",
        metavar="HOST:PORT",
        help="address to answer on, e.g. 127.0.0.1:5353 or [::1]:5353 (repeatable; default: dns.listen)",
    )
    dns.set_defaults(run=run_dns)


def run_dns(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return service.run(args.config, args.listen)
