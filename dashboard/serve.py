"""Serving the dashboard: waitress on `dashboard.listen`, a set-up link printed while no administrator
exists, and the store's stale sessions closed now and then."""

from __future__ import annotations

import argparse
import logging
import threading
import time
from pathlib import Path

from appliance.config import load_config
from appliance.dns.settings import split_host_port
from appliance.store import people, staff
from appliance.store.schema import connect
from dashboard import create_app

log = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard")
    parser.add_argument("config", nargs="?", type=Path)
    parser.add_argument("--listen", help="address:port (default: dashboard.listen)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    config = load_config(args.config)
    app = create_app(config)
    host, port = split_host_port(args.listen or config.dashboard.listen, 8000)
    shown = site_address(host, port)
    listen = [_bind(host, port)]
    staff_shown = shown
    if config.dashboard.staff_listen:  # the staff pages on a port of their own (router mode)
        staff_host, staff_port = split_host_port(config.dashboard.staff_listen, 8000)
        staff_shown = site_address(staff_host, staff_port)
        listen.append(_bind(staff_host, staff_port))
    db = connect(config.events_path)
    if not staff.has_admin(db):
        token = staff.make_setup_link(db, time.time())
        print(
            f"No administrator yet. Open http://{staff_shown}/setup/{token} (valid 24 hours, once)\n"
            f"or run: appliance users add NAME --role admin",
            flush=True,
        )
    print(f"Dashboard: http://{staff_shown}/   Children's portal: http://{shown}/portal", flush=True)
    threading.Thread(target=_tidy, args=(config.events_path,), daemon=True, name="tidy").start()
    from waitress import serve

    serve(app, listen=" ".join(listen), threads=8, ident="appliance")
    return 0


def _bind(host: str, port: int) -> str:
    """`host`:`port` as waitress's `listen` takes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def site_address(host: str, port: int) -> str:
    """How staff reach a server listening on `host`:`port`: on every address (the Pi) that is whatever
    address of the appliance they use; port 80 needs no number."""
    shown = "<the appliance's address>" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return shown if port == 80 else f"{shown}:{port}"


def _tidy(path: Path) -> None:
    """Mark sessions past closing time or idle as ended, once a minute (for the record and the portal)."""
    db = connect(path)
    while True:
        try:
            people.close_stale_sessions(db, time.time())
        except Exception:  # the next minute tries again
            log.exception("closing stale sessions failed")
        time.sleep(60)
