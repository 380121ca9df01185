"""The event log's values: who asked (an `askers` row) and what was answered (an `answers` row), each
made once and named by a key in every event that repeats it; the web event's row; and which blocked
domain a block is "under".

The dataclasses are the one description of the two tables' rows: `ASKER_COLUMNS` and `ANSWER_COLUMNS`
(their fields, in order) are what the writer inserts and the store's feed reads. Pure values: no I/O.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, fields
from typing import Any

from profiles.identity import Identity
from profiles.verdict import Action, LogDetail, Verdict

# Keys one writer may use: a trillion askers and answers before it restarts. Each writer claims a range
# of this many ids above everything in the file (`key_ranges`), so several writers never choose one twice.
KEY_RANGE = 1 << 40

# A web event: when, asker's key, answer's key, seconds taken, method, URL, status, bytes, search terms.
RequestRow = tuple[float, int, int, float, str, str, int, int, str]

_NOT_A_COLUMN: dict[str, Any] = {"column": False}

_KEYS = itertools.count(1)


def _next_key() -> int:
    return next(_KEYS)


@dataclass(frozen=True)
class AskerRow:
    """The columns of an `askers` row but its id: address, pseudonymous subject, how found. Shared by
    the log's `Asker` and the store's feed event (appliance/store/feed.py)."""

    client: str
    subject: str
    via: str


@dataclass(frozen=True)
class AnswerRow:
    """The columns of an `answers` row but its id, `reasons` (JSON text in the table, a list once read)
    and `notable` (the writer's): shared by the log's `Answer` and the store's feed event."""

    channel: str
    profile: str
    host: str
    detail: str
    action: str
    severity: str
    category: str
    flagged: bool


@dataclass(frozen=True)
class Asker(AskerRow):
    """The asking side of an event, made once per client: address, pseudonymous subject, how found.
    `key` names it between the answering process and the writer (see appliance/events/recording.py)."""

    key: int = field(default_factory=_next_key, compare=False, metadata=_NOT_A_COLUMN)

    @classmethod
    def of(cls, client: str, identity: Identity) -> Asker:
        return cls(client, identity.subject, str(identity.via))


@dataclass(frozen=True)
class Answer(AnswerRow):
    """The answered side of an event, made once per verdict and reused for every repeat of it.
    `under`: for a block by a rule naming a parent domain of `host` (`pornhub.com` for `a1.pornhub.com`),
    that domain, by which the event log puts together one device's names under it (`recording`); ''
    for anything else, a flagged block included (staff must see each of those)."""

    reasons: str  # the verdict's, as JSON
    keep: LogDetail = field(metadata=_NOT_A_COLUMN)
    under: str = field(default="", metadata=_NOT_A_COLUMN)
    key: int = field(default_factory=_next_key, compare=False, metadata=_NOT_A_COLUMN)

    @property
    def kept(self) -> bool:
        """Kept as an event (else, unless `keep` is none, only counted in the day's totals)."""
        return self.keep is LogDetail.EVENT or self.flagged

    @classmethod
    def of(cls, channel: str, host: str, detail: str, verdict: Verdict) -> Answer:
        category = next((r.category for r in verdict.reasons if r.category), "")
        reasons = json.dumps([r.as_json(grid=False) for r in verdict.reasons])
        return cls(
            channel,
            verdict.profile,
            host,
            detail,
            str(verdict.action),
            str(verdict.severity),
            category,
            verdict.flagged,
            reasons,
            verdict.log,
            under=blocked_under(host, verdict),
        )


_DOMAIN_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")


def blocked_under(host: str, verdict: Verdict) -> str:
    """The parent domain of `host` whose rule blocks it: the first blocking rule that is a domain (as a
    domain list, or an adblock `||domain^` rule, writes it) and a parent of `host`. '' when a rule
    names `host` itself, for a flagged block, and when nothing blocks."""
    if verdict.action is not Action.BLOCK or verdict.flagged:
        return ""
    host = host.lower().rstrip(".")
    under = ""
    for reason in verdict.reasons:
        if reason.effect is not Action.BLOCK:
            continue
        rule = reason.rule.lower()
        if rule.startswith("||"):
            rule = rule[2:].removesuffix("^")
        domain = rule.strip(".")
        if domain == host:
            return ""  # listed by name: each is its own event
        if not under and domain and _DOMAIN_CHARACTERS.issuperset(domain) and host.endswith("." + domain):
            under = domain
    return under


def _columns(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.metadata.get("column", True))


ASKER_COLUMNS = _columns(Asker)  # client, subject, via
ANSWER_COLUMNS = _columns(Answer)  # channel, profile, host, ..., reasons
