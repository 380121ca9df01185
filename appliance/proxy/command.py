"""`appliance proxy`: the monitoring proxy, as worker processes sharing one port, until stopped."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from appliance.dns.live import load_live
from appliance.dns.settings import split_host_port
from appliance.proxy.ca import ensure_authority, write_trust_bundle
from appliance.proxy.settings import ProxyMode
from filters.errors import ApplianceError

log = logging.getLogger("appliance.proxy")
RESTART_S = 1.0


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
    live = load_live(args.config)  # every file checked before any worker starts
    settings = live.config.proxy
    listen = args.listen or settings.listen
    try:
        split_host_port(listen, 8080)
    except ValueError as e:
        raise ApplianceError(f"--listen: {e} (write HOST:PORT, e.g. 127.0.0.1:8080)") from e
    mode = args.mode or str(settings.mode)
    count = args.workers if args.workers is not None else settings.workers
    count = count if count > 0 else os.cpu_count() or 1
    authority = ensure_authority(live.config.ca_dir, settings.centre)
    if settings.upstream_trusted_ca is not None:
        write_trust_bundle(settings.upstream_trusted_ca, authority.folder)
    del live
    config = str(Path(args.config).resolve()) if args.config else "-"
    command = [sys.executable, "-m", "appliance.proxy.worker", config, listen, mode]
    workers = [subprocess.Popen(command) for _ in range(count)]
    log.info(
        "proxy (%s) on %s with %d workers; CA %s (SHA-256 %s)",
        mode,
        listen,
        count,
        authority.folder,
        authority.fingerprint,
    )
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    def reload(signum: int, frame: object) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    try:
        while not stopping:
            time.sleep(0.2)
            for i, worker in enumerate(workers):
                code = worker.poll()
                if code is not None and not stopping:
                    # A worker that died (out of memory, a crash) is replaced; the others keep serving.
                    log.error("proxy worker %d ended (%s); starting another", worker.pid, code)
                    time.sleep(RESTART_S)
                    workers[i] = subprocess.Popen(command)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
    log.info("proxy stopped")
    return 0
