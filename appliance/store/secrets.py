"""Passwords and PINs, hashed with scrypt (memory-hard: 16 MiB per guess), and random tokens.

A four-digit PIN has 10,000 values: scrypt alone makes that a few minutes' search for whoever holds a copy
of the store. So a PIN is first keyed with HMAC-SHA-256 under the centre's pepper, a random 32-byte secret
kept in its own file beside the store (`pin-pepper.key`, never inside it), then hashed with scrypt:
`$scrypt-p$<pepper id>$N$r$p$salt$hash`. Without the pepper file the search is over 2^256 keys, not 10^4
PINs. The pepper id (a digest of the pepper, which reveals nothing of it) tells a PIN made with another
pepper (a store restored without its pepper file) from a wrong PIN.

Staff passwords stay `$scrypt$...` without the pepper: they are at least 10 characters (words, not
digits), out of reach of an offline search through scrypt alone; and the way back from a lost pepper file
(staff sign in and set new PINs) must not depend on that file."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from appliance.files import fsync_path
from appliance.store.schema import StoreError

# scrypt N=2^14, r=8: 16 MiB and about 50 ms on a Raspberry Pi 4 per hash (OWASP's minimum is 2^17 with
# r=8, p=1 for a server; a centre's appliance verifies a handful of sign-ins an hour, throttled).
N, R, P = 1 << 14, 8, 1
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str) -> str:
    """`$scrypt$N$r$p$salt$hash` of `secret`, with a fresh random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=N, r=R, p=P, maxmem=_MAXMEM, dklen=32)
    return f"$scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Does `secret` match `stored` (from hash_secret)? False for anything malformed."""
    try:
        _, kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = _unb64(digest)
        got = hashlib.scrypt(
            secret.encode("utf-8"),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


PEPPER_FILE = "pin-pepper.key"  # beside the store; 64 hex digits and a newline
_PEPPER_BYTES = 32
_PEPPERED = "scrypt-p"


class PepperError(StoreError):
    """A PIN cannot be checked: the pepper file is missing, unreadable, or not the one it was made with."""


@dataclass(frozen=True)
class Pepper:
    """The centre's PIN pepper and the file it is kept in."""

    key: bytes
    path: Path

    @property
    def id(self) -> str:
        """Names this pepper in the PIN hashes made with it (a digest: nothing of the key)."""
        return hashlib.sha256(b"childsafe pin pepper id\0" + self.key).hexdigest()[:12]


def read_pepper(path: Path) -> Pepper | None:
    """The pepper in `path`; None if there is no such file. Raises PepperError if it is unreadable or
    not a pepper (it is never replaced: PINs made with it would all stop working)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise PepperError(f"{path}: the PIN pepper file cannot be read: {e}") from e
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != _PEPPER_BYTES:
        raise PepperError(f"{path}: not a PIN pepper (it holds {2 * _PEPPER_BYTES} hex digits)")
    return Pepper(key, path)


def ensure_pepper(path: Path) -> Pepper:
    """The pepper in `path`, made now if there is none: written whole to a temporary file (mode 0600),
    then linked into place, which fails if another process made one first (then that one is used).
    Never overwrites a pepper. Raises PepperError."""
    found = read_pepper(path)
    if found is not None:
        return found
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(_PEPPER_BYTES).hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process: that one is used
            os.link(tmp, path)
        fsync_path(path.parent)
    except OSError as e:
        raise PepperError(f"{path}: cannot make the PIN pepper file: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)
    made = read_pepper(path)
    if made is None:
        raise PepperError(f"{path}: the PIN pepper file vanished as it was made")
    return made


def _peppered(pin: str, key: bytes) -> bytes:
    return hmac.new(key, pin.encode("utf-8"), hashlib.sha256).digest()


def hash_pin(pin: str, pepper_file: Path) -> str:
    """`$scrypt-p$<pepper id>$N$r$p$salt$hash` of `pin` keyed with the pepper in `pepper_file` (made now if
    there is none), with a fresh random salt. Raises PepperError."""
    pepper = ensure_pepper(pepper_file)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(_peppered(pin, pepper.key), salt=salt, n=N, r=R, p=P, maxmem=_MAXMEM, dklen=32)
    return f"${_PEPPERED}${pepper.id}${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def is_peppered(stored: str) -> bool:
    return stored.startswith(f"${_PEPPERED}$")


def verify_pin(pin: str, stored: str, pepper_file: Path) -> bool:
    """Does `pin` match `stored`: a peppered hash (from hash_pin), or one from before the pepper (from
    hash_secret; the caller replaces it with a peppered one)? False for anything malformed. Raises
    PepperError if `stored` was made with a pepper that `pepper_file` does not hold (or cannot give)."""
    if not is_peppered(stored):
        return verify_secret(pin, stored)
    try:
        _, _, made_with, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    pepper = read_pepper(pepper_file)
    if pepper is None or pepper.id != made_with:
        now = "is missing" if pepper is None else f"holds another one ({pepper.id})"
        raise PepperError(
            f"{pepper_file}: a PIN was made with the pepper {made_with} and this file {now}: put back the "
            "pepper file kept with the store's backup, or set a new PIN for the child"
        )
    try:
        expected = _unb64(digest)
        got = hashlib.scrypt(
            _peppered(pin, pepper.key),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


# Compared against when a user does not exist, so a wrong name takes as long as a wrong password.
DUMMY_HASH = hash_secret(secrets.token_urlsafe(16))


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> str:
    """What is stored of a one-time token: its SHA-256, so a copy of the store cannot use it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
