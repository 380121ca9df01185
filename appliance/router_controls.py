"""Router mode: staff's controls at the firewall, `appliance router controls` (appliance-controls.service).

The router's rules (appliance/router.py) drop the forwarded traffic of the addresses in `paused_v4`/`_v6`
and the STUN/TURN of those not in `calls_on_v4`/`_v6`; this fills those sets. Every POLL_S it follows the
store (the controls' counter: a pause or resume; the bindings' counter: a sign-in, a named device), the
neighbours (ARP and the DHCP leases) and the policy files (reloaded when one changes, as the DNS filter
does); identifies each address seen on the children's network as the DNS filter would (`Live.identify`),
takes its standing (`Controls.standing`), and works out the sets:

- paused: the addresses whose standing has a pause active now (a centre pause does not cover a bypass
  profile nor staff signed in at the portal, as `decide`). During a centre pause, the whole children's
  network (intervals) but for the addresses seen whose standing is not paused: a device that has not
  spoken yet is paused too. A pause's `until` passing takes it out at the next step, within a second;
- calls on: the addresses whose profile does not block `video-calls` (`calls_allowed`). Nobody else's
  STUN/TURN goes out, the addresses not seen yet included.

The sets are replaced in one `nft -f -` transaction (atomic: a packet sees the old sets or the new), only
when they change, and again every REASSERT_S anyway: loading the rules again (`nft -f` of the ruleset,
nftables' restart) empties them. Needs CAP_NET_ADMIN in the router's network namespace. IPv6 is not
forwarded at all (router.py): the v6 sets are filled for the IPv6 addresses the neighbours name, which
today are none.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from appliance.in_force.follower import Follower
from appliance.in_force.live import Live, changed, load_live
from appliance.net import Neighbours
from appliance.store.controls import active_pauses, as_controls, controls_version
from appliance.store.schema import StoreError, connect
from filters.errors import ApplianceError
from profiles.controls import NO_CONTROLS, Controls, Scope, device_key
from profiles.policy import Policy
from profiles.profile import Mode

log = logging.getLogger(__name__)

POLL_S = 0.5
REASSERT_S = 2.0  # the sets written again even when unchanged: reloaded rules start them empty
ROUTES = Path("/proc/net/route")
VIDEO_CALLS = "video-calls"
TABLE = "inet appliance"

Run = Callable[..., "subprocess.CompletedProcess[str]"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ControlsNotApplied(ApplianceError):
    """nft refused the sets (no nft, no permission, the router's rules not loaded or older than the sets)."""


@dataclass(frozen=True)
class ControlSets:
    """The contents of the router's control sets: addresses and networks (`paused_*`, intervals, never
    overlapping) and addresses (`calls_on_*`), as nft writes them, sorted."""

    paused_v4: tuple[str, ...] = ()
    paused_v6: tuple[str, ...] = ()
    calls_on_v4: tuple[str, ...] = ()
    calls_on_v6: tuple[str, ...] = ()

    def script(self) -> str:
        """The nft commands that replace the four sets' contents (one transaction under `nft -f -`)."""
        lines = []
        for name in ("paused_v4", "paused_v6", "calls_on_v4", "calls_on_v6"):
            lines.append(f"flush set {TABLE} {name}")
            elements: tuple[str, ...] = getattr(self, name)
            if elements:
                lines.append(f"add element {TABLE} {name} {{ {', '.join(elements)} }}")
        return "\n".join(lines) + "\n"


def calls_allowed(policy: Policy, profile_name: str) -> bool:
    """Whether the profile `profile_name` lets its devices make video calls: a bypass profile does; one
    that blocks `video-calls` (in its blocked categories, an always-blocked category, or allowlist-only
    without it among its allowed categories) does not."""
    profile = policy.rules_for(profile_name).profile
    if profile.bypass:
        return True
    category = policy.categories.categories.get(VIDEO_CALLS)
    if category is not None and category.always_blocked:
        return False
    if VIDEO_CALLS in profile.blocked_categories:
        return False
    return profile.mode is not Mode.ALLOWLIST_ONLY or VIDEO_CALLS in profile.allowed_categories


def children_networks(interface: str, routes: Path = ROUTES) -> list[Network]:
    """The IPv4 networks directly on `interface` (the children's), from the kernel's routing table (its
    network namespace's): what a centre pause covers. [] if the table cannot be read."""
    try:
        lines = routes.read_text(encoding="ascii").splitlines()[1:]
    except OSError:
        return []
    found: list[Network] = []
    for line in lines:
        fields = line.split()
        # Iface Destination Gateway Flags RefCnt Use Metric Mask ...; hex, the host's byte order (little).
        if len(fields) < 8 or fields[0] != interface:
            continue
        try:
            destination, gateway, mask = (int(fields[i], 16) for i in (1, 2, 7))
        except ValueError:
            continue
        if gateway or not mask:  # through a router, or the default route: not the network itself
            continue
        address = ipaddress.IPv4Address(int.from_bytes(destination.to_bytes(4, "little"), "big"))
        prefix = bin(mask).count("1")
        network = ipaddress.IPv4Network(f"{address}/{prefix}", strict=False)
        if network not in found:
            found.append(network)
    return found


def _collapsed(networks: Iterable[Network], version: int) -> tuple[str, ...]:
    chosen = [n for n in networks if n.version == version]
    # Single addresses written bare: nft shows them so, and the tests read them so.
    return tuple(
        str(n.network_address) if n.num_addresses == 1 else str(n)
        for n in ipaddress.collapse_addresses(chosen)  # type: ignore[type-var]
    )


def _addresses(addresses: Iterable[Network], version: int) -> tuple[str, ...]:
    # calls_on is a set of addresses, not intervals: never merged into networks.
    return tuple(str(n.network_address) for n in sorted({a for a in addresses if a.version == version}))


def _without(networks: Iterable[Network], holes: Iterable[Network]) -> list[Network]:
    parts = list(networks)
    for hole in holes:
        kept: list[Network] = []
        for part in parts:
            if part.version != hole.version or not part.overlaps(hole):
                kept.append(part)
            elif not hole.supernet_of(part):  # type: ignore[arg-type]
                kept.extend(part.address_exclude(hole))  # type: ignore[arg-type]
        parts = kept
    return parts


def control_sets(
    live: Live,
    controls: Controls,
    seen: Mapping[str, str | None],
    networks: Iterable[Network],
    now: datetime,
) -> ControlSets:
    """The sets for the addresses `seen` (address -> MAC, if known) on the children's `networks` at `now`,
    under the policy `live` and staff's `controls` (see the module's docstring)."""
    networks = list(networks)
    centre = any(p.scope is Scope.CENTRE and p.active(now) for p in controls.pauses)
    paused: list[Network] = []
    exempt: list[Network] = []
    calls_on: list[Network] = []
    calls_of: dict[str, bool] = {}
    for address, mac in seen.items():
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if not any(ip in network for network in networks):
            continue
        identity = live.identify(address, mac)
        rules = live.policy.rules_for(identity.profile)
        device = device_key(address, mac)
        # A centre pause leaves bypass profiles and staff signed in at the portal alone, as `decide` does.
        standing = controls.standing(identity, device, now, bypass=rules.profile.bypass)
        single = ipaddress.ip_network(address)
        if standing.pause is not None and standing.pause.active(now):
            paused.append(single)
        else:
            exempt.append(single)
        allowed = calls_of.get(rules.name)
        if allowed is None:
            allowed = calls_of[rules.name] = calls_allowed(live.policy, rules.name)
        if allowed:
            calls_on.append(single)
    if centre:
        paused = [*paused, *_without(networks, exempt)]
    return ControlSets(
        paused_v4=_collapsed(paused, 4),
        paused_v6=_collapsed(paused, 6),
        calls_on_v4=_addresses(calls_on, 4),
        calls_on_v6=_addresses(calls_on, 6),
    )


def apply_sets(sets: ControlSets, run: Run = subprocess.run) -> None:
    """Replace the router's control sets with `sets`, atomically. Raises ControlsNotApplied."""
    command = ["nft", "-f", "-"]
    try:
        done = run(command, input=sets.script(), capture_output=True, text=True, timeout=10, check=False)
    except FileNotFoundError as e:
        raise ControlsNotApplied(
            "nft is not installed: router mode needs nftables (apt install nftables)"
        ) from e
    except (OSError, subprocess.SubprocessError) as e:
        raise ControlsNotApplied(f"could not run nft: {e}") from e
    if done.returncode != 0:
        why = done.stderr.strip() or f"exit status {done.returncode}"
        if "No such file or directory" in why:
            why += (
                " (the router's rules are not loaded, or are older than staff's controls: load them again,"
                " appliance router rules > /etc/nftables.d/appliance.nft; nft -f it)"
            )
        raise ControlsNotApplied(f"nft refused staff's controls: {why}")


class RouterControls:
    """The controller: follows the policy (`live`, its files), the store and the neighbours, and keeps the
    router's sets in step (`step`, every POLL_S)."""

    def __init__(
        self,
        live: Live,
        *,
        config_path: Path | None,
        run: Run = subprocess.run,
        routes: Path = ROUTES,
    ) -> None:
        self.follower = Follower(live, role="router", config_path=config_path, events=None, log=log)
        self.neighbours = Neighbours(live.config.dns.leases)
        self.run = run
        self.routes = routes
        self.controls: Controls = NO_CONTROLS
        self.applied: ControlSets | None = None
        self._applied_at = float("-inf")
        self._version = -1
        self._db: sqlite3.Connection | None = None
        self._failing = ""

    @property
    def live(self) -> Live:
        return self.follower.live

    def step(self, now: float) -> ControlSets | None:
        """One look at everything followed (`now`: the wall clock); the sets written when they changed
        (returned), else None. Never raises for a store, a policy or an nft that fails now: logged, and
        the sets in force stay until the next step."""
        if changed(self.live):
            try:
                self.follower.take(load_live(self.follower.config_path))
            except ApplianceError as e:
                self.follower.refuse(e)
        self.follower.hand_over(now)
        self._follow_store(now)
        self.neighbours.refresh()
        networks = children_networks(self.live.config.router.lan_interface, self.routes)
        sets = control_sets(
            self.live, self.controls, self.neighbours.macs, networks, datetime.fromtimestamp(now, UTC)
        )
        fresh = sets != self.applied
        if not fresh and time.monotonic() - self._applied_at < REASSERT_S:
            return None
        try:
            apply_sets(sets, self.run)
        except ControlsNotApplied as e:
            if str(e) != self._failing:
                log.error("%s", e)
                self._failing = str(e)
            return None
        if self._failing:
            log.info("staff's controls are in force at the router again")
            self._failing = ""
        if fresh:
            log.info(
                "router: %d paused (%s), %d with calls on",
                len(sets.paused_v4) + len(sets.paused_v6),
                ", ".join((*sets.paused_v4, *sets.paused_v6)) or "none",
                len(sets.calls_on_v4) + len(sets.calls_on_v6),
            )
        self.applied, self._applied_at = sets, time.monotonic()
        return sets if fresh else None

    def _follow_store(self, now: float) -> None:
        """Read the pauses in force when the store's controls counter moved."""
        try:
            if self._db is None:
                self._db = connect(self.live.config.events_path, timeout=0.2)
            version = controls_version(self._db)
            if version == self._version:
                return
            pauses = active_pauses(self._db, now)
        except (sqlite3.Error, StoreError) as e:
            log.warning("staff's controls: cannot read the event store: %s", e)
            return
        self._version = version
        self.controls = as_controls(pauses, [], {}, {}, self.live.zone)

    def close(self) -> None:
        self.follower.close()
        if self._db is not None:
            self._db.close()
            self._db = None


def run(config_path: Path | None, *, every: float = POLL_S) -> int:
    """`appliance router controls`: keep the router's control sets in step until SIGTERM or SIGINT."""
    try:
        live = load_live(config_path)
    except ApplianceError as e:
        log.error("appliance router controls: %s", e)
        return 1
    controls = RouterControls(live, config_path=config_path)
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stopping)
    log.info("router controls: following the store every %.1f s", every)
    try:
        while not stop.is_set():
            try:
                controls.step(time.time())
            except Exception:  # the controller must outlive any one bad step
                log.exception("router controls: a step failed")
            stop.wait(every)
    finally:
        controls.close()
    log.info("router controls stopped")
    return 0
