"""The event store for the request being served: one connection per request, closed after it."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import current_app, g

from appliance.bundles.sets import pointer_path
from appliance.config import Config
from appliance.config.catalogue import load_catalogue
from appliance.in_force.bindings import load_bound
from appliance.in_force.head_office import load_config_in_force
from appliance.in_force.live import admitted
from appliance.net import Neighbours
from appliance.policy_files import PolicyFiles, read_policy_files
from appliance.storage import open_index
from appliance.store.schema import connect
from appliance.store.staff import all_users
from dashboard.wording import Vocabulary
from filters.errors import ApplianceError
from profiles.identity import Identity, identify
from profiles.policy import Policy


def store() -> sqlite3.Connection:
    db: sqlite3.Connection | None = g.get("store")
    if db is None:
        db = g.store = connect(current_app.config["STORE_PATH"])
    return db


def config() -> Config:
    """The configuration; where head office's sets arrive, read anew whenever another set is in force
    (the lists page and the why-is-this-blocked box follow the swap as the DNS filter does)."""
    found: Config = current_app.config["APPLIANCE"]
    if found.sync is None:
        return found
    pointer = pointer_path(found.data_dir)
    try:
        stamp = (pointer.stat().st_mtime_ns, pointer.stat().st_ino)
    except OSError:
        stamp = (0, 0)
    cached = current_app.config.get("APPLIANCE_IN_FORCE")
    if cached is None or cached[0] != stamp:
        try:
            cached = (stamp, load_config_in_force(Path(found.origin)))
        except ApplianceError:
            cached = (stamp, cached[1] if cached else found)  # a broken set: keep showing the last good
        current_app.config["APPLIANCE_IN_FORCE"] = cached
    fresh: Config = cached[1]
    return fresh


def now() -> float:
    """The time, as the store records it (tests may set NOW)."""
    fixed = current_app.config.get("NOW")
    return float(fixed) if fixed is not None else time.time()


def close_store(_: BaseException | None = None) -> None:
    db = g.pop("store", None)
    if db is not None:
        db.close()


_POLICY: dict[tuple[object, ...], PolicyFiles] = {}


def policy_files() -> PolicyFiles:
    """The policy files in force (re-read when one of them changes)."""
    settings = config().policy
    paths = (
        settings.categories,
        settings.profiles,
        settings.safe_search,
        settings.watch_lists,
        settings.alerts,
    )
    stamp: tuple[object, ...] = tuple((str(p), p.stat().st_mtime_ns if p.exists() else 0) for p in paths)
    found = _POLICY.get(stamp)
    if found is None:
        _POLICY.clear()
        found = _POLICY[stamp] = read_policy_files(settings)
    return found


def area_of() -> dict[str, str]:
    """Category name -> its three-Cs area (allowlist categories left out)."""
    return policy_files().categories.areas()


def local_time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, ZoneInfo(config().policy.timezone))


def mac_of(address: str) -> str | None:
    """The hardware address behind `address`, from the DHCP leases and the neighbour table, if seen."""
    neighbours = Neighbours(config().dns.leases)
    neighbours.refresh()
    return neighbours.mac_of(address)


def identity_of(address: str) -> Identity:
    """Who the device at `address` is now, as the DNS filter and the proxy see it: a signed-in child,
    else a configured or staff-named device, else a guest."""
    zone = ZoneInfo(config().policy.timezone)
    # What the services take in (a device named staff by its MAC left out), not the store as it is.
    bound, _ = admitted(load_bound(store(), now(), zone), config(), policy_files().profiles)
    devices = bound.devices(config().devices)
    return identify(address, mac_of(address), devices, bound.sessions, local_time(now()))


_POLICY_BOUND: dict[tuple[object, ...], Policy] = {}


def policy() -> Policy:
    """The policy in force over the compiled lists (rebound when a policy file or the index changes).
    Raises ApplianceError (IndexFormatError for lists not compiled yet) when either cannot be read."""
    files = policy_files()
    index_path = config().index_path
    try:
        key: tuple[object, ...] = (id(files), index_path.stat().st_mtime_ns)
    except OSError:
        key = (id(files), None)
    found = _POLICY_BOUND.get(key)
    if found is None:
        _POLICY_BOUND.clear()
        found = _POLICY_BOUND[key] = files.bind(open_index(index_path))
    return found


_VOCABULARY: dict[int, Vocabulary] = {}


def vocabulary() -> Vocabulary:
    """The names staff read in force: the policy's category titles and who publishes each list (the
    shipped catalogue's providers; the centre's own lists as such)."""
    files = policy_files()
    found = _VOCABULARY.get(id(files))
    if found is None:
        lists = {
            name: (
                f"this appliance's own list ({name})"
                if entry.provider.key == "childsafe"
                else f"{entry.provider.title} ({name})"
            )
            for name, entry in load_catalogue().entries.items()
        }
        for source in config().own_sources:
            lists.setdefault(source.name, f"the centre's own list “{source.name}”")
        _VOCABULARY.clear()
        found = _VOCABULARY[id(files)] = Vocabulary(
            categories={name: c.title for name, c in files.categories.categories.items()}, lists=lists
        )
    return found


def staff_name(username: str) -> str:
    """A member of staff's display name for their user name, as pages say who did what (the user name
    itself for one no longer known, or the appliance's own); read once per request."""
    names: dict[str, str] | None = g.get("staff_names")
    if names is None:
        names = {u.username: u.display_name for u in all_users(store())}
        g.staff_names = names
    return names.get(username, username)
