"""The router's refusals of tunnels past the filter, counted per children's device (router mode only).

appliance/router.py's rules count, per source address on the children's interface, the packets they refuse
by kind: `dot` (DNS over TLS or QUIC, port 853), `doh` (TCP or UDP to a known DNS-over-HTTPS resolver's
address: DoH over HTTP/3, DNSCrypt, any other port; TCP 443 there goes to the proxy, which judges the
name), `quic` (UDP 443 elsewhere). The kernel keeps an address's count while it is refused and drops
it after an hour's quiet (or when the rules are loaded again), so a count can go down: `new_refusals`
turns two readings into the refusals between them.

Which kinds are an attempt to get round the filter: DoT and DoH are (a phone's Private DNS set to a
resolver's name, an app's own DNS-over-HTTPS once the canaries have not turned it off), and are what
`refused_tunnels` reads by default. QUIC is mostly not: Chrome tries it on every site that offers
HTTP/3 and falls back to TCP when refused, so every child using Chrome has QUIC refusals all day; read it
with `kinds=("quic",)` for a count, not a conduct flag.

Reading needs CAP_NET_ADMIN in the router's network namespace (nftables lists nothing to anyone else).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from appliance.router import REFUSED_KINDS as KINDS
from appliance.store.schema import transaction
from filters.errors import ApplianceError

BYPASS_KINDS = ("dot", "doh")  # what `refused_tunnels` counts by default (see the module's docstring)

Run = Callable[..., "subprocess.CompletedProcess[str]"]


class RefusalsUnreadable(ApplianceError):
    """The router's counts could not be read (no nft, no permission, rules older than the counts, or
    output nft should not give)."""


def refused_tunnels(run: Run = subprocess.run, *, kinds: Iterable[str] = BYPASS_KINDS) -> dict[str, int]:
    """Packets refused per source address (IPv4, as text), summed over `kinds`, as counted now.

    {} when the `inet appliance` table is not loaded: not router mode (the appliance is a DNS filter and
    proxy on a network whose own router refuses nothing for it), so there is nothing to count. Raises
    RefusalsUnreadable when nft is missing or refuses (no permission), when the table is loaded but has
    no counts (rules from before this version: load them again, `appliance router rules`), or when its
    output cannot be read."""
    wanted = tuple(kinds)
    unknown = [kind for kind in wanted if kind not in KINDS]
    if unknown:
        raise ValueError(f"unknown kinds of refusal {unknown}: they are {', '.join(KINDS)}")
    command = ["nft", "-j", "list", "table", "inet", "appliance"]
    try:
        done = run(command, capture_output=True, text=True, timeout=10, check=False)
    except FileNotFoundError as e:
        raise RefusalsUnreadable(
            "nft is not installed: router mode needs nftables (apt install nftables)"
        ) from e
    except (OSError, subprocess.SubprocessError) as e:
        raise RefusalsUnreadable(f"could not run {' '.join(command)}: {e}") from e
    if done.returncode != 0:
        if "No such file or directory" in done.stderr:
            return {}  # no table: not router mode
        raise RefusalsUnreadable(f"{' '.join(command)} failed: {done.stderr.strip() or done.returncode}")
    try:
        sets = _sets(json.loads(done.stdout))
    except (ValueError, TypeError, KeyError) as e:
        raise RefusalsUnreadable(f"{' '.join(command)} gave output that is not nftables' JSON: {e}") from e
    counts: dict[str, int] = {}
    for kind in wanted:
        name = f"refused_{kind}_v4"
        if name not in sets:
            raise RefusalsUnreadable(
                f"the router's rules have no set {name}: they are older than this version; load them again"
                " (appliance router rules > /etc/nftables.d/appliance.nft; nft -f it)"
            )
        for address, packets in sets[name].items():
            counts[address] = counts.get(address, 0) + packets
    return counts


def _sets(document: Any) -> dict[str, dict[str, int]]:
    """The table's sets: name -> address -> packets (elements without a counter count none)."""
    sets: dict[str, dict[str, int]] = {}
    for item in document["nftables"]:
        found = item.get("set")
        if found is None:
            continue
        elements: dict[str, int] = {}
        for element in found.get("elem", []):
            # With a counter (or a timeout) an element is {"elem": {"val": ..., "counter": ...}}.
            inner = element["elem"] if isinstance(element, dict) and "elem" in element else {"val": element}
            if isinstance(inner["val"], str):
                counter = inner.get("counter") or {}
                elements[inner["val"]] = int(counter.get("packets", 0))
        sets[str(found["name"])] = elements
    return sets


def new_refusals(previous: Mapping[str, int], current: Mapping[str, int]) -> dict[str, int]:
    """The refusals since `previous`, per address (those with none left out), from two readings of
    `refused_tunnels`.

    A count lower than before was dropped by the kernel (an hour's quiet, or the rules loaded again) and
    counted anew: all of it is new. What two readings cannot show: an address dropped and then refused
    again at least as often as its old count, all between them; only the excess is then new. Read every
    few seconds, that takes a burst within seconds of exactly an hour's quiet."""
    fresh: dict[str, int] = {}
    for address, packets in current.items():
        before = previous.get(address, 0)
        added = packets - before if packets >= before else packets
        if added > 0:
            fresh[address] = added
    return fresh


_LAST = "refusals.last"  # the `settings` row holding the previous reading, as JSON


def record_refusals(db: sqlite3.Connection, now: float, run: Run = subprocess.run) -> dict[str, int]:
    """Read the router's counts and add the refusals new since the previous reading to the store's
    `refusals` (the alerter turns them into bypass attempts: appliance/alerts), the reading kept for the
    next time, in one transaction. The new refusals per address; {} outside router mode. Raises
    RefusalsUnreadable as `refused_tunnels`, with nothing written."""
    current = refused_tunnels(run)
    with transaction(db):
        row = db.execute("SELECT value FROM settings WHERE key = ?", (_LAST,)).fetchone()
        previous = json.loads(row[0]) if row else {}
        fresh = new_refusals(previous if isinstance(previous, dict) else {}, current)
        db.executemany(
            "INSERT INTO refusals (ts, client, count) VALUES (?, ?, ?)",
            [(now, address, packets) for address, packets in sorted(fresh.items())],
        )
        db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_LAST, json.dumps(current, sort_keys=True)),
        )
    return fresh
