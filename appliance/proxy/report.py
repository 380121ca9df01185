"""The block page's "report a problem" button: a signed token naming what was blocked (the flagged event
staff see when a child presses it is `profiles.decide.child_report`).

The token is made by the proxy when it shows the block page and checked when the form comes back, so a
report always names a block that really happened (a web page cannot forge one for a child), and the
page carries no id of the child: the proxy identifies them again from their device.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from profiles.verdict import Action, Verdict

REPORT_PATH = "/.well-known/childsafe/report"  # answered by the proxy on every host it blocks
TOKEN_TTL_S = 24 * 3600


@dataclass(frozen=True)
class Blocked:
    """What the block page was about: the host, the blocking reasons in short, and when."""

    host: str
    why: str
    ts: float


def make_token(key: bytes, blocked: Blocked) -> str:
    body = base64.urlsafe_b64encode(
        json.dumps([blocked.host, blocked.why, round(blocked.ts)], separators=(",", ":")).encode()
    ).decode()
    return f"{body}.{_sign(key, body)}"


def read_token(key: bytes, token: str, now: float) -> Blocked | None:
    """The block a token names, or None if it is forged, damaged or older than a day."""
    body, _, mac = token.partition(".")
    if not body or not hmac.compare_digest(mac, _sign(key, body)):
        return None
    try:
        host, why, ts = json.loads(base64.urlsafe_b64decode(body.encode()))
    except (ValueError, TypeError):
        return None
    if not isinstance(host, str) or not isinstance(why, str) or not isinstance(ts, int):
        return None
    if not -60 <= now - ts <= TOKEN_TTL_S:  # rounded to the second; workers share a clock
        return None
    return Blocked(host, why, float(ts))


def _sign(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]


def blocked_summary(verdict: Verdict) -> str:
    """The blocking reasons in a line (for the token and the report)."""
    parts = [f"{r.step}: {r.category or r.detail}" for r in verdict.reasons if r.effect is Action.BLOCK]
    return "; ".join(parts)[:300]
