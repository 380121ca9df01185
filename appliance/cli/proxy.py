"""`appliance proxy`: the monitoring proxy, as worker processes sharing one port, until stopped (SIGHUP
reloads; the supervising is in appliance.proxy.supervisor)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from appliance.config.proxy import ProxyMode
from appliance.proxy.supervisor import supervise


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `proxy` on the `appliance` parser."""
    proxy = commands.add_parser(
        "proxy", parents=[common], help="run the monitoring web proxy until stopped; SIGHUP reloads"
    )
    proxy.add_argument("--mode", choices=[str(m) for m in ProxyMode], help="default: proxy.mode")
    proxy.add_argument("--listen", metavar="HOST:PORT", help="default: proxy.listen (127.0.0.1:8080)")
    proxy.add_argument("--workers", type=int, metavar="N", help="worker processes (default: proxy.workers)")
    proxy.set_defaults(run=run_proxy)


def run_proxy(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return supervise(args.config, listen=args.listen, mode=args.mode, workers=args.workers)
