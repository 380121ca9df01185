"""Passwords and PINs, hashed with scrypt (memory-hard: 16 MiB per guess), and random tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

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


# Compared against when a user does not exist, so a wrong name takes as long as a wrong password.
DUMMY_HASH = hash_secret(secrets.token_urlsafe(16))


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> str:
    """What is stored of a one-time token: its SHA-256, so a copy of the store cannot use it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
