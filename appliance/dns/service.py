"""The DNS filter as a service (`appliance dns`): load the policy in force and answer until stopped (Ctrl-C
or SIGTERM; SIGHUP reloads)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from filters.errors import ApplianceError

log = logging.getLogger("appliance.dns")


def run(config_path: Path | None, listen: list[str] | None) -> int:
    """Answer on `listen` (HOST:PORT each; None: dns.listen) with the policy in force under `config_path`
    until SIGINT or SIGTERM; the exit status. Raises ApplianceError for a mistake in the files or in
    `listen`, before anything is answered."""
    try:
        return asyncio.run(_serve(config_path, listen))
    except KeyboardInterrupt:
        return 0


async def _serve(config_path: Path | None, listen_args: list[str] | None) -> int:
    # Imported here, not for every `appliance` command (the nightly compile runs the same script).
    from appliance.dns.server import make_server
    from appliance.in_force.live import load_live
    from appliance.resolver.upstream import parse_listen

    live = load_live(config_path)
    try:
        listen = parse_listen(listen_args or list(live.config.dns.listen))
    except ValueError as e:
        raise ApplianceError(f"--listen: {e} (write HOST:PORT, e.g. 127.0.0.1:5353)") from e
    server = make_server(live, listen, config_path)
    # From here on the server's `live` is the one in force: a reference kept here would keep the
    # start-up index mapped after every reload, beside the new one.
    del live
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start(listen)
    server.follower.report()  # where head office's sets arrive: which one the DNS filter runs
    config = server.live.config
    shown = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in server.addresses)
    upstream = ", ".join(str(s) for s in server.upstreams.settings.servers)
    log.info(
        "DNS filter answering on %s (UDP and TCP); upstream %s; query log %s",
        shown,
        upstream,
        config.events_path,
    )
    del config
    try:
        await stop.wait()
    finally:
        await server.stop()
        server.events.close()
        c = server.counters
        log.info(
            "stopped after %d queries (%d remembered answers, %d malformed, %d rate-limited, %d SERVFAIL)",
            c.queries,
            c.fast,
            c.malformed,
            c.limited,
            c.servfail,
        )
    return 0
