"""The block page's "report a problem" button: a signed token naming what was blocked (the flagged event
staff see when a child presses it is `profiles.decide.child_report`).

The token is made by the proxy when it shows the block page and checked when the form comes back, so a
report always names a block that really happened (a web page cannot forge one for a child). It is bound
to the blocked host (the form is posted to that host), to the device that was shown the page, and to that
one block (a random nonce, spent on first use across every proxy worker), and it lasts a day. The page
carries no id of the child: the proxy identifies them again from their device.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from profiles.verdict import Action, Verdict

REPORT_PATH = "/.well-known/childsafe/report"  # answered by the proxy on every host it blocks
TOKEN_TTL_S = 24 * 3600
MAX_TOKEN_CHARS = 2048
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True)
class Blocked:
    """What the block page was about: the host, the blocking reasons in short, when, for which device
    (its address), and the block's own nonce."""

    host: str
    why: str
    ts: float
    device: str = ""
    nonce: str = ""


def make_token(key: bytes, blocked: Blocked) -> str:
    nonce = blocked.nonce or secrets.token_urlsafe(12)
    fields = [blocked.host, blocked.why, round(blocked.ts), blocked.device, nonce]
    body = base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode()).decode()
    return f"{body}.{_sign(key, body)}"


def read_token(key: bytes, token: str, now: float) -> Blocked | None:
    """The block a token names, or None if it is forged, damaged, of another shape or older than a day.
    Never raises, whatever the text."""
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        return None
    body, _, mac = token.partition(".")
    if not body or not hmac.compare_digest(mac.encode(), _sign(key, body).encode()):
        return None
    try:
        fields = json.loads(base64.urlsafe_b64decode(body.encode()))
    except (ValueError, TypeError, binascii.Error):
        return None
    if not isinstance(fields, list) or len(fields) != 5:
        return None
    host, why, ts, device, nonce = fields
    if not all(isinstance(x, str) for x in (host, why, device, nonce)) or type(ts) is not int:
        return None
    if not -60 <= now - ts <= TOKEN_TTL_S:  # rounded to the second; workers share a clock
        return None
    return Blocked(host, why, float(ts), device, nonce)


def _sign(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]


def blocked_summary(verdict: Verdict) -> str:
    """The blocking reasons in a line (for the token and the report)."""
    parts = [f"{r.step}: {r.category or r.detail}" for r in verdict.reasons if r.effect is Action.BLOCK]
    return "; ".join(parts)[:300]


class SpentTokens:
    """Report tokens already used, shared by every proxy worker: one empty file per nonce in `folder`,
    made with O_EXCL (so two workers cannot both accept one token), removed once the token has expired."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._pruned = 0.0

    def spend(self, nonce: str, now: float) -> bool:
        """Mark `nonce` used; False if it already was (or cannot be recorded: a report is then refused,
        never counted twice)."""
        if not nonce or not all(c.isalnum() or c in "-_" for c in nonce):
            return False
        if now - self._pruned > PRUNE_EVERY_S:
            self._prune(now)
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.folder / nonce, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError:
            return False
        return True

    def _prune(self, now: float) -> None:
        self._pruned = now
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.folder):
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < time.time() - TOKEN_TTL_S - 120:
                        os.unlink(entry.path)
