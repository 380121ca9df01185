"""One proxy worker: mitmproxy run in this process with the monitoring addons, until SIGTERM.

Several workers listen on the same address with SO_REUSEPORT, and the kernel spreads connections
across them (in router mode nftables redirects to that port, and the same holds). Each loads the
compiled index itself (it is mapped from its file, not parsed) and has its own event-log writer.

    python -m appliance.proxy.worker CONFIG|- HOST:PORT MODE
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from mitmproxy import options
from mitmproxy.addons import block, core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from appliance.config.proxy import ProxySettings
from appliance.events.recording import EventLog
from appliance.in_force.live import load_live
from appliance.net import split_host_port
from appliance.pages import compile_pages
from appliance.proxy.ca import TRUST_BUNDLE, ensure_authority
from appliance.proxy.connections import Connections
from appliance.proxy.downloads import Downloads
from appliance.proxy.enforce import Enforce
from appliance.proxy.error_pages import ErrorPages, send_ours
from appliance.proxy.follow import Follow
from appliance.proxy.identify import Identify
from appliance.proxy.in_order import InOrder
from appliance.proxy.limits import (
    Admission,
    give_memory_back,
    limit_request_heads,
    limit_websocket_messages,
    raise_open_files,
)
from appliance.proxy.notices import Notices
from appliance.proxy.own_pages import OwnPages
from appliance.proxy.page_scores import PageScores
from appliance.proxy.record import Record
from appliance.proxy.route import Route
from appliance.proxy.shared import Shared
from appliance.proxy.trust import Trust
from appliance.proxy.websockets import Websockets
from filters.errors import ApplianceError

log = logging.getLogger("appliance.proxy")


def monitoring_addons(shared: Shared) -> list[Any]:
    """The appliance's addons, in the order each hook calls them (as one mitmproxy addon, `InOrder`);
    they share the worker's state (`shared`) and each request's (`flow.metadata`, proxy/shared.py `Seen`)."""
    return [
        Follow(shared),  # the policy in force: hand-over, watch, reload (SIGHUP); devices identified anew
        Identify(shared),  # who asks and which site: each request's `Seen`; the forged client header dropped
        OwnPages(shared),  # the appliance's own pages: its client header, the CA pages, report forms
        Connections(shared),  # CONNECT targets, TLS names (ClientHello), traffic that is neither web nor TLS
        Trust(shared),  # which own devices trust the centre's certificate, from their handshakes
        Route(shared),  # where a connection goes: the decided name as resolved for the device, checked
        Enforce(shared),  # web request verdicts: safe search, block pages, bodies sent, protocol switches
        Downloads(shared),  # files to save, judged by their names
        PageScores(shared),  # HTML pages held and scored against phrase limits; all else streamed, counted
        Notices(shared),  # "5 minutes of games left today" at the top of a nearly spent child's pages
        Websockets(shared),  # websocket messages a child sends, checked for personal information
        ErrorPages(shared),  # a site that fails: our "not answering" page instead of mitmproxy's 502
        Record(shared),  # each request in the event log, with the verdict the others left
    ]


def addon_options(settings: ProxySettings) -> dict[str, Any]:
    """The mitmproxy options the addons rely on."""
    return {
        # Upstream connections are opened only when needed: a blocked name is never contacted.
        "connection_strategy": "lazy",
        # An HTML page is held for scoring up to the limit; past it, mitmproxy streams the rest.
        "stream_large_bodies": f"{max(1, settings.page_limit_kb)}k",
    }


def _share_the_port(admission: Admission) -> None:
    # mitmproxy binds with asyncio.start_server and offers no reuse_port option; in a worker process of
    # ours every listening socket is meant to be shared with the other workers, and every connection is
    # admitted (per-device caps, the first head's deadline) before mitmproxy's handler sees it.
    plain = getattr(asyncio.start_server, "_plain", asyncio.start_server)

    async def start_server(client_connected_cb: Any, *args: Any, **kwargs: Any) -> asyncio.Server:
        kwargs.setdefault("reuse_port", True)
        return await plain(admission.wrap(client_connected_cb), *args, **kwargs)

    start_server._plain = plain  # type: ignore[attr-defined]
    asyncio.start_server = start_server


async def serve(config_path: Path | None, listen: str, mode: str) -> int:
    """Run one worker until SIGTERM or SIGINT; SIGHUP reloads the policy."""
    live = load_live(config_path)
    compile_pages()  # an install without the children's pages fails here, not on a child's first block
    settings = live.config.proxy
    authority = ensure_authority(live.config.ca_dir, settings.centre)
    host, port = split_host_port(listen, 8080)
    opts = options.Options(listen_host=host, listen_port=port, mode=[mode], confdir=str(authority.folder))
    master = Master(opts)
    events = EventLog(live.config.events_path, live.zone, live.config.store)
    admission = Admission(settings.connections_per_device, settings.head_timeout_s)
    _share_the_port(admission)
    limit_request_heads()
    limit_websocket_messages()
    send_ours()
    raise_open_files()
    shared = Shared(live, authority, events, config_path, admission=admission)
    shared.follower.report()  # where head office's sets arrive: which one this worker runs
    # From here on the follower's `live` is the one in force: a reference kept here would keep the
    # start-up index mapped after every reload, beside the new one.
    del live
    ours = monitoring_addons(shared)
    follow = next(addon for addon in ours if isinstance(addon, Follow))
    # Only the addons a filtering proxy needs: every addon is asked about every hook of every flow.
    master.addons.add(
        core.Core(),
        block.Block(),  # refuses clients from public addresses: never an open proxy on the WAN side
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        disable_h2c.DisableH2C(),
        errorcheck.ErrorCheck(),
        InOrder(*ours),
    )
    opts.update(**addon_options(settings))
    if settings.upstream_trusted_ca is not None:
        # Written once by `appliance proxy` before the workers start.
        opts.update(ssl_verify_upstream_trusted_ca=str(authority.folder / TRUST_BUNDLE))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(follow.reload()))
    trimming = loop.create_task(give_memory_back())
    await master.run()
    trimming.cancel()
    return 0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # mitmproxy says "client connect" at INFO for every connection: a busy centre's log would be nothing else.
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)
    config, listen, mode = argv
    try:
        return asyncio.run(serve(None if config == "-" else Path(config), listen, mode))
    except ApplianceError as e:  # (`appliance proxy` says when it starts another)
        log.error("proxy worker cannot start: %s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
