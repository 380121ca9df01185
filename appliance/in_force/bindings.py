"""Who is signed in where, followed from the event store by the DNS filter and the proxy.

The portal writes a session and bumps the store's `bindings` counter; each answering process reads the
counter every POLL_S seconds (one tiny query) and, when it moved, loads the open sessions and the
staff-named devices and swaps them into its policy: a sign-in takes effect within a second. Sessions are
also re-read every REFRESH_S seconds, so their idle clocks follow the devices' use.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.store.people import (
    DeviceRecord,
    SessionRecord,
    as_devices,
    as_sessions,
    bindings_version,
    devices,
    open_sessions,
)
from appliance.store.schema import StoreError, connect
from profiles.identity import Device, Devices, Sessions

log = logging.getLogger(__name__)

POLL_S = 0.25
REFRESH_S = 15.0


@dataclass(frozen=True)
class Bound:
    """The open sessions and the staff-named devices (added to the configuration's) to swap in."""

    sessions: Sessions
    named: tuple[Device, ...]

    def devices(self, configured: tuple[Device, ...]) -> Devices:
        """The configuration's devices and the named ones (a named device wins over a configured one
        with the same MAC or address: staff set it later)."""
        return Devices((*configured, *self.named))


def _bound(sessions: list[SessionRecord], named: list[DeviceRecord], zone: ZoneInfo) -> Bound:
    return Bound(Sessions(as_sessions(sessions, zone)), tuple(as_devices(named)))


def load_bound(db: sqlite3.Connection, now: float, zone: ZoneInfo) -> Bound:
    """The sessions open at `now` and the staff-named devices, read once (the dashboard's view of who is
    who, the same as the answering processes')."""
    return _bound(open_sessions(db, now), devices(db), zone)


class Bindings:
    """Follows the store at `path` for an answering process; `configured` are the configuration's devices."""

    def __init__(self, path: Path, zone: ZoneInfo) -> None:
        self.path = path
        self.zone = zone
        self._db: sqlite3.Connection | None = None
        self._version = -1
        self._loaded_at = float("-inf")
        self._key: tuple[object, ...] = ()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = connect(self.path, timeout=0.2)
        return self._db

    def poll(self, now: float) -> Bound | None:
        """New sessions and devices if anything changed since the last poll, else None. Never raises:
        a store that cannot be read now leaves the last bindings in force (and is logged)."""
        try:
            db = self._connection()
            version = bindings_version(db)
            if version == self._version and now - self._loaded_at < REFRESH_S:
                return None
            sessions = open_sessions(db, now)
            named = devices(db)
        except (sqlite3.Error, StoreError) as e:
            log.warning("sign-ins: cannot read the event store %s: %s", self.path, e)
            return None
        self._version, self._loaded_at = version, now
        key = (tuple(sessions), tuple(named))
        if key == self._key:
            return None
        self._key = key
        return _bound(sessions, named, self.zone)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
