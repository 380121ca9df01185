"""Staff accounts: roles, sign-in with throttling, and the one-time set-up link for the first
administrator. No account exists until someone makes one: no default password ever ships."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum

from appliance.store import throttle
from appliance.store.schema import StoreError, transaction
from appliance.store.secrets import DUMMY_HASH, hash_secret, new_token, token_digest, verify_secret

# Sign-in throttling: this many failures for one name, or from one address, within the window lock it
# out until the oldest failure leaves the window.
MAX_FAILURES = 5  # per name from one address (and four times that from one address for any names)
NAME_FAILURES = 50  # per name from anywhere: a slow spread-out guess, not someone's typing
MIN_PASSWORD = 10
SETUP_LINK_S = 24 * 3600


class Role(StrEnum):
    """What a member of staff may do; each role may do everything the ones before it may."""

    STAFF = "staff"  # review flagged access, open and work on incidents, sign children in and out
    LEAD = "lead"  # the e-safety lead: also reports, the audit log, changing profiles, closing incidents
    ADMIN = "admin"  # also staff accounts, children and devices, lists

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def may(self, needed: Role) -> bool:
        return self.rank >= needed.rank

    @property
    def label(self) -> str:
        return {"staff": "Staff", "lead": "E-safety lead", "admin": "Administrator"}[self.value]


@dataclass(frozen=True)
class StaffUser:
    id: int
    username: str
    display_name: str
    role: Role
    disabled: bool = False


class SignInRefused(StoreError):
    """Wrong name or password, or too many attempts: the message is safe to show."""


def _user(row: tuple[int, str, str, str, int]) -> StaffUser:
    return StaffUser(row[0], row[1], row[2], Role(row[3]), bool(row[4]))


_COLUMNS = "id, username, display_name, role, disabled"


def check_password(password: str) -> None:
    """Raises StoreError when `password` is too weak to protect children's data."""
    if len(password) < MIN_PASSWORD:
        raise StoreError(f"a password needs at least {MIN_PASSWORD} characters (a few words work well)")
    if len(set(password)) < 4:
        raise StoreError("that password repeats too few characters")


def check_username(username: str) -> None:
    """Raises StoreError for a user name that is empty or has characters other than letters, digits
    and . _ - @."""
    name = username.strip()
    if not name or not all(c.isalnum() or c in "._-@" for c in name):
        raise StoreError(f"user name {name!r}: use letters, digits and . _ - @ only")


def add_user(
    db: sqlite3.Connection, username: str, display_name: str, role: Role, password: str, now: float
) -> StaffUser:
    """A new staff account. Raises StoreError if the name is taken or the password too weak."""
    username = username.strip()
    check_username(username)
    check_password(password)
    try:
        with transaction(db):
            cur = db.execute(
                "INSERT INTO staff (username, display_name, role, password, created) VALUES (?, ?, ?, ?, ?)",
                (username, display_name.strip() or username, str(role), hash_secret(password), now),
            )
    except sqlite3.IntegrityError as e:
        raise StoreError(f"there is already a staff account named {username!r}") from e
    assert cur.lastrowid is not None
    return StaffUser(cur.lastrowid, username, display_name.strip() or username, role)


def set_password(db: sqlite3.Connection, user_id: int, password: str) -> None:
    check_password(password)
    with transaction(db):
        db.execute("UPDATE staff SET password = ? WHERE id = ?", (hash_secret(password), user_id))


def set_role(db: sqlite3.Connection, user_id: int, role: Role, *, disabled: bool) -> None:
    with transaction(db):
        db.execute(
            "UPDATE staff SET role = ?, disabled = ? WHERE id = ?", (str(role), int(disabled), user_id)
        )


def get_user(db: sqlite3.Connection, user_id: int) -> StaffUser | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM staff WHERE id = ?", (user_id,)).fetchone()
    return _user(row) if row else None


def all_users(db: sqlite3.Connection) -> list[StaffUser]:
    return [_user(r) for r in db.execute(f"SELECT {_COLUMNS} FROM staff ORDER BY display_name")]


def has_admin(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM staff WHERE role = 'admin' AND NOT disabled").fetchone() is not None


def sign_in(db: sqlite3.Connection, username: str, password: str, address: str, now: float) -> StaffUser:
    """The account for `username` and `password`, or SignInRefused. Failures are counted per name and
    per address; past MAX_FAILURES in FAILURE_WINDOW_S, even the right password is refused."""
    name = username.strip().lower()
    # Per name and address, and per address: one device guessing is stopped after MAX_FAILURES. Per name
    # alone only at NAME_FAILURES: someone else's wrong guesses must not lock a member of staff out.
    limits = ((f"user:{name}@{address}", MAX_FAILURES), (f"addr:{address}", MAX_FAILURES * 4))
    counted = throttle.attempt(db, (*limits, (f"user:{name}", NAME_FAILURES)), now)
    if counted is None:
        raise SignInRefused("Too many attempts: wait 15 minutes, or ask an administrator to reset it.")
    row = db.execute(
        f"SELECT {_COLUMNS}, password FROM staff WHERE username = ?", (username.strip(),)
    ).fetchone()
    ok = verify_secret(password, row[5] if row else DUMMY_HASH)
    if not ok or row is None or row[4]:
        raise SignInRefused("That name and password do not match an account.")
    throttle.succeeded(db, counted, now, forget=[counted[0]])
    return _user(row[:5])


def start_session(db: sqlite3.Connection, user_id: int, now: float, max_age_s: float) -> str:
    """A new sign-in of `user_id`: the token for its cookie. Sign-ins older than `max_age_s` are
    forgotten on the way."""
    token = new_token()
    with transaction(db):
        db.execute("DELETE FROM staff_sessions WHERE staff = ? AND started < ?", (user_id, now - max_age_s))
        db.execute(
            "INSERT INTO staff_sessions (token_hash, staff, started) VALUES (?, ?, ?)",
            (token_digest(token), user_id, now),
        )
    return token


def session_user(db: sqlite3.Connection, token: str) -> int | None:
    """The staff id of the sign-in `token` names, if it has not been ended."""
    row = db.execute(
        "SELECT staff FROM staff_sessions WHERE token_hash = ? AND ended IS NULL", (token_digest(token),)
    ).fetchone()
    return int(row[0]) if row else None


def end_sessions(db: sqlite3.Connection, user_id: int, now: float, *, keep: str = "") -> None:
    """End the sign-ins of `user_id` (all but the one of token `keep`)."""
    with transaction(db):
        db.execute(
            "UPDATE staff_sessions SET ended = ? WHERE staff = ? AND ended IS NULL AND token_hash != ?",
            (now, user_id, token_digest(keep) if keep else ""),
        )


def end_session(db: sqlite3.Connection, token: str, now: float) -> None:
    with transaction(db):
        db.execute("UPDATE staff_sessions SET ended = ? WHERE token_hash = ?", (now, token_digest(token)))


def make_setup_link(db: sqlite3.Connection, now: float) -> str:
    """A one-time token that lets whoever holds it create the first administrator (valid a day)."""
    token = new_token()
    with transaction(db):
        db.execute(
            "INSERT INTO setup_links (token_hash, expires) VALUES (?, ?)",
            (token_digest(token), now + SETUP_LINK_S),
        )
    return token


def use_setup_link(db: sqlite3.Connection, token: str, now: float) -> bool:
    """Spend `token`: True once, if it is valid and no administrator exists yet."""
    with transaction(db):
        cur = db.execute(
            "UPDATE setup_links SET used = ? WHERE token_hash = ? AND used IS NULL AND expires > ?",
            (now, token_digest(token), now),
        )
        return cur.rowcount == 1 and not has_admin(db)


def setup_link_valid(db: sqlite3.Connection, token: str, now: float) -> bool:
    row = db.execute(
        "SELECT 1 FROM setup_links WHERE token_hash = ? AND used IS NULL AND expires > ?",
        (token_digest(token), now),
    ).fetchone()
    return row is not None and not has_admin(db)
