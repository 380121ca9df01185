"""Children, the devices staff have named, portal sessions, and acceptances of the centre's rules.

The DNS filter and the proxy read the active sessions and the devices (`Bindings`) and notice a change
through the `bindings` counter, bumped by every sign-in, sign-out and device change.

PINs are hashed with the centre's pepper (appliance/store/secrets.py), kept in `pin-pepper.key` in the
store's folder: a copy of the store file alone does not give them up.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from appliance.store.schema import StoreError, transaction
from appliance.store.secrets import PEPPER_FILE, PepperError, hash_pin, is_peppered, new_token, verify_pin
from profiles.identity import Child, Device, Session, normalise_mac

log = logging.getLogger(__name__)

PIN_DIGITS = (4, 8)


@dataclass(frozen=True)
class ChildRecord:
    id: str
    display_name: str
    profile: str
    archived: bool


@dataclass(frozen=True)
class DeviceRecord:
    name: str
    mac: str | None
    address: str | None
    profile: str
    managed: bool


@dataclass(frozen=True)
class SessionRecord:
    id: int
    child: str
    display_name: str
    profile: str
    device: str
    client: str
    started: float
    expires: float
    last_seen: float
    idle_s: float
    ended: float | None
    end_reason: str
    staff: int | None = None  # a member of staff signed in at the portal (child is staff.<id>)


def check_pin(pin: str) -> None:
    if not pin.isdigit() or not PIN_DIGITS[0] <= len(pin) <= PIN_DIGITS[1]:
        raise StoreError(f"a PIN is {PIN_DIGITS[0]} to {PIN_DIGITS[1]} digits")


def pepper_file(db: sqlite3.Connection) -> Path:
    """The PIN pepper file of the store `db` is open on: beside the store file, never inside it."""
    files = {row[1]: row[2] for row in db.execute("PRAGMA database_list")}
    if not files.get("main"):
        raise StoreError("the store is not a file: PINs need a pepper file beside it")
    return Path(files["main"]).parent / PEPPER_FILE


def _pin_hash(db: sqlite3.Connection, pin: str) -> str:
    path = pepper_file(db)
    if not path.exists():
        (lost,) = db.execute("SELECT count(*) FROM children WHERE pin LIKE '$scrypt-p$%'").fetchone()
        if lost:
            log.warning(
                "%s was missing and is made again: the PINs of %d children were made with the old one "
                "(put it back from the backup, or set them new PINs)",
                path,
                lost,
            )
    return hash_pin(pin, path)


def bump_bindings(db: sqlite3.Connection) -> None:
    """Tell the DNS filter and the proxy that sessions or devices changed (inside the change's
    transaction)."""
    db.execute("UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE key = 'bindings'")


def bindings_version(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM settings WHERE key = 'bindings'").fetchone()
    return int(row[0]) if row else 0


def _same_name(name: str) -> str:
    """A display name as children type it at the portal: case and spaces do not tell two apart."""
    return " ".join(name.split()).casefold()


def _refuse_taken_name(db: sqlite3.Connection, name: str, child_id: str = "") -> None:
    """Refuse `name` if an active child other than `child_id` has it: a child signs in with name and
    PIN, so two active children of one name would make the pair ambiguous (and the portal bind one)."""
    for other, other_name in db.execute("SELECT id, display_name FROM children WHERE NOT archived"):
        if other != child_id and _same_name(other_name) == _same_name(name):
            raise StoreError(
                f"there is already a child named {other_name}: children sign in with their name, so"
                f" give this one a name that tells them apart (like {name} B)"
            )


def add_child(db: sqlite3.Connection, display_name: str, profile: str, pin: str, now: float) -> ChildRecord:
    """A new active child. Raises StoreError if the name is empty or an active child has it already
    (case and spaces aside), or the PIN is not 4 to 8 digits."""
    name = " ".join(display_name.split())
    if not name:
        raise StoreError("a child needs a display name (a first name is enough)")
    check_pin(pin)
    child_id = new_token(6).replace("-", "x").replace("_", "y").lower()[:8]
    with transaction(db):
        _refuse_taken_name(db, name)
        db.execute(
            "INSERT INTO children (id, display_name, profile, pin, created) VALUES (?, ?, ?, ?, ?)",
            (child_id, name, profile, _pin_hash(db, pin), now),
        )
    return ChildRecord(child_id, name, profile, False)


def update_child(
    db: sqlite3.Connection,
    child_id: str,
    profile: str,
    *,
    archived: bool,
    now: float,
    display_name: str | None = None,
) -> None:
    """Change a child's profile, archive or restore them, and rename them if `display_name` is given.
    Raises StoreError if the child, once active, would share a name with another active child."""
    with transaction(db):
        row = db.execute("SELECT display_name FROM children WHERE id = ?", (child_id,)).fetchone()
        if row is None:
            raise StoreError(f"there is no child {child_id}")
        name = " ".join((display_name if display_name is not None else row[0]).split())
        if not name:
            raise StoreError("a child needs a display name (a first name is enough)")
        if not archived:
            _refuse_taken_name(db, name, child_id)
        db.execute(
            "UPDATE children SET profile = ?, archived = ?, display_name = ? WHERE id = ?",
            (profile, int(archived), name, child_id),
        )
        if archived:
            _end_sessions(db, "child = ?", (child_id,), "archived", now)
        bump_bindings(db)


def reset_pin(db: sqlite3.Connection, child_id: str, pin: str) -> None:
    """Give child `child_id` a new PIN; a lock after wrong PINs is lifted with it."""
    check_pin(pin)
    with transaction(db):
        db.execute("UPDATE children SET pin = ? WHERE id = ?", (_pin_hash(db, pin), child_id))
        db.execute("DELETE FROM sign_in_failures WHERE key = ?", (_child_key(child_id),))


def children(db: sqlite3.Connection, *, archived: bool = False) -> list[ChildRecord]:
    rows = db.execute(
        "SELECT id, display_name, profile, archived FROM children WHERE archived <= ? ORDER BY display_name",
        (int(archived),),
    )
    return [ChildRecord(r[0], r[1], r[2], bool(r[3])) for r in rows]


def get_child(db: sqlite3.Connection, child_id: str) -> ChildRecord | None:
    row = db.execute(
        "SELECT id, display_name, profile, archived FROM children WHERE id = ?", (child_id,)
    ).fetchone()
    return ChildRecord(row[0], row[1], row[2], bool(row[3])) if row else None


def find_child(db: sqlite3.Connection, display_name: str) -> list[ChildRecord]:
    """Active children whose display name is `display_name` (case-insensitive). Names are unique among
    active children since store version 6; a file from before may still hold two (flagged for the lead)."""
    rows = db.execute(
        "SELECT id, display_name, profile, archived FROM children"
        " WHERE display_name = ? COLLATE NOCASE AND NOT archived",
        (" ".join(display_name.split()),),
    )
    return [ChildRecord(r[0], r[1], r[2], bool(r[3])) for r in rows]


def pin_matches(db: sqlite3.Connection, child_id: str, pin: str) -> bool:
    """Is `pin` the PIN of child `child_id` (not archived)? A PIN hashed before the pepper is hashed
    again with it now. Raises PepperError if the child's PIN was made with a pepper the pepper file
    does not hold (missing, or another): neither a match nor a wrong PIN."""
    row = db.execute("SELECT pin FROM children WHERE id = ? AND NOT archived", (child_id,)).fetchone()
    if row is None or not verify_pin(pin, row[0], pepper_file(db)):
        return False
    if not is_peppered(row[0]):
        try:
            db.execute(
                "UPDATE children SET pin = ? WHERE id = ? AND pin = ?", (_pin_hash(db, pin), child_id, row[0])
            )
        except (PepperError, sqlite3.Error) as e:  # the sign-in stands; the next one tries again
            log.warning("child %s: the PIN could not be hashed again with the pepper: %s", child_id, e)
    return True


# ---- wrong PINs: a lock per child, a slower device ----
#
# Wrong PINs are counted in `sign_in_failures` before the PIN is checked (a parallel try cannot pass the
# count), under the child's key (`pin-child:<id>`, or `pin-name:<name>` for a name no child has, so that
# a name's answer does not tell whether that child exists) and the device's (`pin-device:<MAC or address>`).
# A child's lock stops guessing that child's PIN from any number of devices and locks nobody else out; a
# device trying many names is slowed rather than locked, so the next child at a shared PC can still sign in.

CHILD_PIN_FAILURES = 5  # wrong PINs for one child, from any devices, within PIN_COUNT_S: the child is locked
PIN_COUNT_S = 15 * 60  # how long a wrong PIN counts; so a lock lasts at most this long
DEVICE_PIN_FAILURES = 5  # wrong PINs from one device, for any names, before it is slowed
DEVICE_WAIT_S = (5.0, 300.0)  # the first wait once slowed; doubled for each further wrong PIN, up to this


@dataclass(frozen=True)
class PinWait:
    """A PIN try refused unchecked: the time it may be tried again, and whether the child's lock (else
    the device's slowing) is why."""

    until: float
    child_locked: bool


def _child_key(child_id: str) -> str:
    return f"pin-child:{child_id}"


def pin_keys(found: Sequence[ChildRecord], name: str) -> list[str]:
    """The keys a PIN try for `name` is counted under: each child of that name, else the name itself."""
    return [_child_key(c.id) for c in found] or [f"pin-name:{' '.join(name.split()).casefold()}"]


def _locked_until(db: sqlite3.Connection, key: str, now: float) -> float | None:
    # With CHILD_PIN_FAILURES or more counting, the lock lifts when the newest CHILD_PIN_FAILURES-th of
    # them stops counting.
    rows = db.execute(
        "SELECT ts FROM sign_in_failures WHERE key = ? AND ts > ? ORDER BY ts DESC LIMIT ?",
        (key, now - PIN_COUNT_S, CHILD_PIN_FAILURES),
    ).fetchall()
    return float(rows[-1][0]) + PIN_COUNT_S if len(rows) >= CHILD_PIN_FAILURES else None


def _pin_wait(db: sqlite3.Connection, keys: Sequence[str], device: str, now: float) -> PinWait | None:
    locks = [until for key in keys if (until := _locked_until(db, key, now)) is not None]
    if locks:
        return PinWait(max(locks), child_locked=True)
    tries, last = db.execute(
        "SELECT count(*), max(ts) FROM sign_in_failures WHERE key = ? AND ts > ?",
        (f"pin-device:{device}", now - PIN_COUNT_S),
    ).fetchone()
    if tries < DEVICE_PIN_FAILURES:
        return None
    first, longest = DEVICE_WAIT_S
    until = float(last) + min(first * 2 ** (tries - DEVICE_PIN_FAILURES), longest)
    return PinWait(until, child_locked=False) if until > now else None


def try_pin(db: sqlite3.Connection, keys: Sequence[str], device: str, now: float) -> PinWait | None:
    """Count a PIN try under `keys` (`pin_keys`) and `device` before it is checked, as wrong until
    `right_pin` says otherwise; or, counting nothing, why it must wait (a child locked, a device slowed)."""
    with transaction(db):
        wait = _pin_wait(db, keys, device, now)
        if wait is None:
            db.executemany(
                "INSERT INTO sign_in_failures (key, ts) VALUES (?, ?)",
                [(k, now) for k in (*keys, f"pin-device:{device}")],
            )
    return wait


def right_pin(db: sqlite3.Connection, keys: Sequence[str], device: str, now: float, child_id: str) -> None:
    """The try `try_pin` counted at `now` was child `child_id`'s right PIN: it does not count, nor do the
    child's earlier wrong PINs (the device's do: a right PIN among many guesses does not speed it up)."""
    with transaction(db):
        db.executemany(
            "DELETE FROM sign_in_failures WHERE key = ? AND ts = ?",
            [(k, now) for k in (*keys, f"pin-device:{device}")],
        )
        db.execute("DELETE FROM sign_in_failures WHERE key = ?", (_child_key(child_id),))


def pin_locked_until(db: sqlite3.Connection, child_id: str, now: float) -> float | None:
    """When child `child_id`'s lock after wrong PINs lifts, or None if they are not locked at `now`."""
    return _locked_until(db, _child_key(child_id), now)


def lift_pin_lock(db: sqlite3.Connection, child_id: str) -> None:
    """Forget child `child_id`'s wrong PINs (staff lift the lock): they may sign in at once."""
    with transaction(db):
        db.execute("DELETE FROM sign_in_failures WHERE key = ?", (_child_key(child_id),))


def save_device(db: sqlite3.Connection, device: DeviceRecord, now: float) -> None:
    """Add or change a device staff named (by MAC, or by address where the MAC is unknown)."""
    if not device.name.strip():
        raise StoreError("a device needs a name")
    mac = normalise_mac(device.mac) if device.mac else None
    if mac is None and not device.address:
        raise StoreError(f"device {device.name!r}: give its MAC address or its IP address")
    try:
        with transaction(db):
            db.execute(
                "INSERT INTO devices (name, mac, address, profile, managed, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET mac = excluded.mac, address = excluded.address,"
                " profile = excluded.profile, managed = excluded.managed, updated = excluded.updated",
                (
                    device.name.strip(),
                    mac,
                    None if mac else device.address,
                    device.profile,
                    int(device.managed),
                    now,
                ),
            )
            bump_bindings(db)
    except sqlite3.IntegrityError as e:
        raise StoreError(f"another device already has the MAC address {mac}") from e


def remove_device(db: sqlite3.Connection, name: str) -> None:
    with transaction(db):
        db.execute("DELETE FROM devices WHERE name = ?", (name,))
        bump_bindings(db)


def devices(db: sqlite3.Connection) -> list[DeviceRecord]:
    rows = db.execute("SELECT name, mac, address, profile, managed FROM devices ORDER BY name")
    return [DeviceRecord(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]


def as_devices(records: list[DeviceRecord]) -> list[Device]:
    """Staff-named devices as the policy's `Device` values."""
    return [
        Device(r.name, r.profile, mac=r.mac, network=None if r.mac else r.address, managed=r.managed)
        for r in records
    ]


def record_acceptance(db: sqlite3.Connection, child_id: str, rules: str, client: str, now: float) -> None:
    db.execute(
        "INSERT INTO acceptances (child, ts, rules, client) VALUES (?, ?, ?, ?)",
        (child_id, now, rules, client),
    )


def has_accepted(db: sqlite3.Connection, child_id: str, rules: str) -> bool:
    row = db.execute("SELECT 1 FROM acceptances WHERE child = ? AND rules = ?", (child_id, rules)).fetchone()
    return row is not None


def start_session(
    db: sqlite3.Connection,
    child_id: str,
    device: str,
    client: str,
    now: float,
    expires: float,
    idle_s: float,
    *,
    accepted_rules: str = "",
) -> int:
    """Sign `child_id` in on `device` (a MAC, else the address) until `expires`; any earlier session on
    that device, or of that child elsewhere, ends. Records the acceptance of the rules if given."""
    with transaction(db):
        _end_sessions(db, "(device = ? OR child = ?)", (device, child_id), "replaced", now)
        if accepted_rules:
            record_acceptance(db, child_id, accepted_rules, client, now)
        cur = db.execute(
            "INSERT INTO sessions (child, device, client, started, expires, idle_s, last_seen)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (child_id, device, client, now, expires, idle_s, now),
        )
        bump_bindings(db)
    assert cur.lastrowid is not None
    return cur.lastrowid


STAFF_PREFIX = "staff."  # a staff session's `child`: staff.<staff id> (a child's id never has a dot)


def staff_key(staff_id: int) -> str:
    return f"{STAFF_PREFIX}{staff_id}"


def start_staff_session(
    db: sqlite3.Connection,
    staff_id: int,
    profile: str,
    device: str,
    client: str,
    now: float,
    expires: float,
    idle_s: float,
) -> int:
    """Sign the member of staff `staff_id` in on `device` under `profile` until `expires`, as a child's
    session is (ended the same ways); any earlier session on that device, or theirs elsewhere, ends."""
    key = staff_key(staff_id)
    with transaction(db):
        _end_sessions(db, "(device = ? OR child = ?)", (device, key), "replaced", now)
        cur = db.execute(
            "INSERT INTO sessions (child, staff, profile, device, client, started, expires, idle_s,"
            " last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, staff_id, profile, device, client, now, expires, idle_s, now),
        )
        bump_bindings(db)
    assert cur.lastrowid is not None
    return cur.lastrowid


def end_staff_sessions(db: sqlite3.Connection, staff_id: int, reason: str, now: float) -> None:
    """End every portal session of the member of staff `staff_id` (disabled, a new role or password)."""
    with transaction(db):
        _end_sessions(db, "staff = ?", (staff_id,), reason, now)
        bump_bindings(db)


def end_session(db: sqlite3.Connection, session_id: int, reason: str, now: float) -> None:
    with transaction(db):
        _end_sessions(db, "id = ?", (session_id,), reason, now)
        bump_bindings(db)


def _end_sessions(
    db: sqlite3.Connection, where: str, args: tuple[object, ...], reason: str, now: float
) -> None:
    db.execute(
        f"UPDATE sessions SET ended = ?, end_reason = ? WHERE ended IS NULL AND {where}", (now, reason, *args)
    )


# A child's session shows the child's name and current profile; a member of staff's, their user name and
# the profile given at sign-in (and none once their account is disabled).
_SESSION_SQL = (
    "SELECT s.id, s.child, coalesce(c.display_name, u.username), coalesce(s.profile, c.profile), s.device,"
    " s.client, s.started, s.expires, s.last_seen, s.idle_s, s.ended, coalesce(s.end_reason, ''), s.staff"
    " FROM sessions s LEFT JOIN children c ON c.id = s.child AND s.staff IS NULL"
    " LEFT JOIN staff u ON u.id = s.staff"
    " WHERE (c.id IS NOT NULL OR (u.id IS NOT NULL AND NOT u.disabled))"
)


def open_sessions(db: sqlite3.Connection, now: float) -> list[SessionRecord]:
    """Sessions not ended, past their closing time, or idle at `now` (newest first)."""
    rows = db.execute(
        f"{_SESSION_SQL} AND s.ended IS NULL AND s.expires > ?1 AND s.last_seen + s.idle_s > ?1"
        " ORDER BY s.started DESC",
        (now,),
    )
    return [SessionRecord(*r) for r in rows]


def session_on(db: sqlite3.Connection, device: str, now: float) -> SessionRecord | None:
    """The open session of the device `device` (its MAC, or its address where the MAC is unknown), if
    any. Not by address alone: after a new DHCP lease another device may have the signed-in one's address."""
    for record in open_sessions(db, now):
        if record.device == device:
            return record
    return None


def close_stale_sessions(db: sqlite3.Connection, now: float) -> int:
    """Mark sessions past closing time or idle as ended (for the record; `identify` already ignores them)."""
    with transaction(db):
        expired = db.execute(
            "UPDATE sessions SET ended = expires, end_reason = 'expired'"
            " WHERE ended IS NULL AND expires <= ?",
            (now,),
        ).rowcount
        idle = db.execute(
            "UPDATE sessions SET ended = last_seen + idle_s, end_reason = 'idle'"
            " WHERE ended IS NULL AND last_seen + idle_s <= ?",
            (now,),
        ).rowcount
    return expired + idle


def as_sessions(records: list[SessionRecord], zone: tzinfo) -> list[Session]:
    """Open sessions as the policy's `Session` values (each child with their profile)."""

    def at(ts: float) -> datetime:
        return datetime.fromtimestamp(ts, zone)

    return [
        Session(
            Child(r.child, r.display_name, r.profile, staff=r.staff is not None),
            r.device,
            at(r.started),
            at(r.expires),
            at(r.last_seen),
            idle=timedelta(seconds=r.idle_s),
            address=r.client,
        )
        for r in records
    ]
