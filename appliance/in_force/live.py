"""The policy in force for the DNS filter, loaded whole and swapped whole: the compiled lists, the
policy, the known devices, and the answers remembered under them.

A reload builds a new `Live` beside the old one (in a worker thread) and the server swaps one reference:
a query is answered entirely under the old or entirely under the new, never a mix, and none is dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.bundles.sets import pointer_path
from appliance.config import Config, ConfigError, device_problems, staff_device_problem
from appliance.events.values import Answer, Asker
from appliance.in_force.bindings import Bound
from appliance.in_force.head_office import load_config_in_force
from appliance.policy_files import read_policy_files
from appliance.storage import open_index
from profiles.alerts import AlertPolicy
from profiles.controls import NO_CONTROLS, NO_STANDING, Controls, Standing, device_key
from profiles.identity import Device, Devices, Identity, Sessions, identify
from profiles.policy import Policy
from profiles.profile import Profile

log = logging.getLogger(__name__)

NEVER = float("inf")


class Cached:
    """A ready answer (without its 2-byte id) for one exact query, valid until `expires` (monotonic).

    Answers built from upstream records carry their TTLs' offsets: at `refresh_at` the remaining TTLs
    are written in. That is every second for short TTLs and every hundredth of the TTL for long ones (at
    most every 10 s): a client may be told a TTL up to that much longer than the cache still holds the
    record (10 s of an hour), and a busy name is not rewritten on every other question.
    """

    __slots__ = (
        "_every",
        "_offsets",
        "_stored",
        "_template",
        "_ttls",
        "expires",
        "refresh_at",
        "tail",
        "what",
    )

    def __init__(
        self,
        answer: bytes,
        expires: float,
        what: Answer | None,
        now: float,
        offsets: tuple[int, ...] = (),
    ) -> None:
        self.tail = answer[2:]
        self.expires = expires
        self.what = what
        self._offsets = offsets
        self._ttls = tuple(int.from_bytes(answer[o : o + 4], "big") for o in offsets)
        self._every = min(10.0, max(1.0, min(self._ttls, default=0) / 100))
        self.refresh_at = now + self._every if offsets else NEVER
        self._template = bytearray(answer) if offsets else None
        self._stored = now

    def refresh(self, now: float) -> None:
        """Write the TTLs remaining at `now` into the answer."""
        template = self._template
        if template is None:
            return
        spent = int(now - self._stored)
        for offset, ttl in zip(self._offsets, self._ttls, strict=True):
            template[offset : offset + 4] = max(0, ttl - spent).to_bytes(4, "big")
        self.tail = bytes(template[2:])
        self.refresh_at = now + self._every


class Client:
    """One asking address: who it is, under which profile, that profile's remembered answers, its
    rate-limit bucket (`tokens` left at `last`), and staff's controls on it (`standing`). A client with a
    standing other than NO_STANDING has an empty `fast` of its own, never filled: its answers are never
    remembered nor taken from those remembered."""

    __slots__ = ("fast", "identity", "last", "standing", "tokens", "until", "who")

    def __init__(
        self,
        identity: Identity,
        who: Asker,
        fast: dict[bytes, Cached],
        until: float,
        tokens: float,
        last: float,
        standing: Standing = NO_STANDING,
    ) -> None:
        self.identity, self.who, self.fast, self.until = identity, who, fast, until
        self.tokens, self.last = tokens, last
        self.standing = standing


IDENTITY_TTL = 10.0  # seconds before an address is identified again (a new DHCP lease, a sign-in)
FAST_ENTRIES = 200_000  # remembered answers in all, shared by the profiles; past it the oldest go


@dataclass
class Live:
    """Everything one answer reads, replaced whole on reload."""

    config: Config
    policy: Policy
    devices: Devices
    zone: ZoneInfo
    sessions: Sessions = field(default_factory=Sessions)
    fast: dict[str, dict[bytes, Cached]] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    stamp: tuple[tuple[str, int, int], ...] = ()
    alerts: AlertPolicy = field(default_factory=AlertPolicy)  # alerts.yaml, read with the policy files
    controls: Controls = NO_CONTROLS  # staff's pauses, grants, budgets left (in_force/controls.py)

    def bind(self, bound: Bound) -> None:
        """Swap in the portal's sessions and the staff-named devices; every address is identified again
        at its next question."""
        kept, left_out = admitted(bound, self.config, self.policy.profiles)
        for device, problem in left_out:
            log.warning("device %r left out: %s", device.name, problem)
        self.sessions = kept.sessions
        self.devices = kept.devices(self.config.devices)
        self.clients.clear()

    def control(self, controls: Controls) -> None:
        """Swap in staff's controls; every address is identified again (with its standing) at its next
        question."""
        self.controls = controls
        self.clients.clear()

    def standing(self, identity: Identity, ip: str, mac: str | None) -> Standing:
        """Staff's controls on `identity` asking from `ip` (`mac`, if seen) now: NO_STANDING when none."""
        controls = self.controls
        if controls is NO_CONTROLS:
            return NO_STANDING
        bypass = self.policy.rules_for(identity.profile).bypass is not None
        return controls.standing(identity, device_key(ip, mac), datetime.now(self.zone), bypass=bypass)

    def identify(self, ip: str, mac: str | None) -> Identity:
        """Who the device at `ip` (hardware address `mac`, if seen) is now: a signed-in child, else a
        configured or staff-named device, else a guest. The one identification the DNS filter and the
        proxy make."""
        return identify(ip, mac, self.devices, self.sessions, datetime.now(self.zone))

    def client(self, ip: str, mac: str | None, now: float, before: Client | None = None) -> Client:
        """The client at `ip`, identified now and remembered for IDENTITY_TTL seconds (keeping the rate
        limit's bucket of `before`, the same address's last identification)."""
        identity = self.identify(ip, mac)
        standing = self.standing(identity, ip, mac)
        if standing is NO_STANDING:
            profile = self.policy.rules_for(identity.profile).name
            fast = self.fast.get(profile)
            if fast is None:
                fast = self.fast[profile] = {}
        else:
            fast = {}  # its own, never filled: the fast path finds nothing for it (core.py `finish`)
        burst = float(self.config.dns.rate_limit.burst)
        tokens, last = (before.tokens, before.last) if before is not None else (burst, now)
        who = asker_of(ip, identity, (before.identity, before.who) if before is not None else None)
        client = Client(identity, who, fast, now + IDENTITY_TTL, tokens, last, standing)
        if len(self.clients) >= 65_536:
            self.clients.clear()
        self.clients[ip] = client
        return client


def admitted(
    bound: Bound, config: Config, profiles: Mapping[str, Profile]
) -> tuple[Bound, list[tuple[Device, str]]]:
    """`bound` without the staff-named devices that may not have their profile (`staff_device_problem`),
    and those left out with why. The DNS filter, the proxy and the dashboard identify clients by what
    this keeps, so a device is the same person to all three."""
    named = []
    left_out = []
    for device in bound.named:
        profile = profiles.get(device.profile)
        problem = staff_device_problem(device, profile, config) if profile is not None else None
        if problem:
            # Named in the dashboard before such names were refused: never staff by a claim.
            left_out.append((device, problem))
            continue
        named.append(device)
    return Bound(bound.sessions, tuple(named)), left_out


def asker_of(ip: str, identity: Identity, before: tuple[Identity, Asker] | None) -> Asker:
    """The asker to log for `ip` identified as `identity`: the one before (`before`, the same address's
    last identity and asker) while nothing changed, so the log holds one row per device, not per minute."""
    if before is not None and before[0] == identity:
        return before[1]
    return Asker.of(ip, identity)


def stamp_of(config: Config) -> tuple[tuple[str, int, int], ...]:
    """The modification times and inodes of the files `config` reads (watched for reloads): a file
    replaced atomically within the same clock tick is still seen as changed."""
    out = []
    for path in watched_files(config):
        try:
            st = os.stat(path)
            out.append((str(path), st.st_mtime_ns, st.st_ino))
        except OSError:
            out.append((str(path), -1, -1))
    return tuple(out)


def watched_files(config: Config) -> list[Path]:
    """The files whose change means a reload: the configuration, the compiled lists, the policy files."""
    p = config.policy
    files = [
        Path(config.origin),
        config.index_path,
        p.categories,
        p.profiles,
        p.safe_search,
        p.watch_lists,
        p.alerts,
    ]
    # Another head-office set in force: everything is read anew from it.
    return [*files, pointer_path(config.data_dir)] if config.sync else files


def load_live(config_path: Path | None) -> Live:
    """Load the configuration, the compiled lists and the policy. Raises ApplianceError (with file:line
    where there is one) if any of them is wrong; nothing running is touched."""
    for _ in range(5):
        config = load_config_in_force(config_path)
        stamp = stamp_of(config)
        # A swap between reading the configuration and taking the stamps would go unnoticed: read again.
        if not config.sync or load_config_in_force(config_path).set_dir == config.set_dir:
            break
    if config.set_note:
        log.warning("head office's set: %s; running %s", config.set_note, config.set_dir or "the own lists")
    index = open_index(config.index_path)
    files = read_policy_files(config.policy)
    policy = files.bind(index)
    problems = device_problems(config, policy.profiles)
    if problems:
        raise ConfigError("; ".join(problems))
    zone = ZoneInfo(config.policy.timezone)
    return Live(config, policy, Devices(config.devices), zone, stamp=stamp, alerts=files.alerts)


def changed(live: Live) -> bool:
    """Has any watched file changed since `live` was loaded?"""
    return stamp_of(live.config) != live.stamp
