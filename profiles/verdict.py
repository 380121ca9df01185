"""What `decide` answers: a frozen verdict with every reason, for acting, logging and explaining."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from profiles.categories import Severity


class Action(StrEnum):
    """What the adapter does. `rewrite` sends the request to a safe-search target; `flag` allows and flags."""

    ALLOW = "allow"
    BLOCK = "block"
    REWRITE = "rewrite"
    FLAG = "flag"


class Step(StrEnum):
    """The step of the decision order that produced a reason (design.md, "The decision, in order")."""

    HELP_SERVICE = "help-service"
    PORTAL = "portal"
    STAFF_BYPASS = "staff-bypass"
    SCHEDULE = "schedule"
    ALWAYS_BLOCKED = "always-blocked"
    BYPASS_CANARY = "bypass-canary"
    SAFE_SEARCH = "safe-search"
    SAFE_SEARCH_UNSUPPORTED = "safe-search-unsupported"
    OVERRIDE = "override"
    ALLOWLIST = "allowlist"
    CATEGORY = "category"
    NOT_ALLOWLISTED = "not-on-allowlist"
    DOWNLOAD = "download"
    FLAG_CATEGORY = "flag-category"
    WATCH_LIST = "watch-list"
    PERSONAL_INFO = "personal-info"
    PHRASES = "phrases"
    CHILD_REPORT = "child-report"  # a child pressed "report a problem" on the block page
    # A connection that named one site and went to another, or that no list can judge (not web traffic,
    # no site name): a way round the filter, refused for children and shown to staff.
    BYPASS_ATTEMPT = "bypass-attempt"
    PAUSED = "paused"  # staff switched the internet off for this device, child, profile or centre
    GRANT = "grant"  # staff let this child or device use this site or category for a while
    BUDGET = "budget"  # a time budget: used up (block), or counting this request (allow)


class LogDetail(StrEnum):
    """How much the event log may keep of this request (the privacy setting).

    `none`: nothing at all (help services); `count`: only the daily aggregate; `event`: the event itself,
    under the child's pseudonymous id.
    """

    NONE = "none"
    COUNT = "count"
    EVENT = "event"


@dataclass(frozen=True)
class Reason:
    """Why: the step, its effect, and where a list is involved, which category, source, line and rule."""

    step: Step
    effect: Action
    detail: str
    category: str = ""
    grid: str = ""
    severity: Severity = Severity.NONE
    source: str = ""
    line: int = 0
    rule: str = ""

    def __str__(self) -> str:
        text = f"{self.effect}: {self.detail}"
        if self.category:
            grid = f": {self.grid}" if self.grid else ""
            severity = f", {self.severity}" if self.severity else ""
            text += f" [{self.category}{grid}{severity}]"
        if self.source and self.line:
            text += f" ({self.source}:{self.line}: {self.rule})"
        elif self.rule:
            text += f" ({self.source + ': ' if self.source else ''}{self.rule})"
        return text

    def as_json(self, *, grid: bool = True) -> dict[str, Any]:
        """The reason as JSON-ready values (enums as their words), its fields in order. `grid=False`
        leaves the grid out, as the event log keeps it: the category says it."""
        out: dict[str, Any] = {
            "step": str(self.step),
            "effect": str(self.effect),
            "detail": self.detail,
            "category": self.category,
            "grid": self.grid,
            "severity": str(self.severity),
            "source": self.source,
            "line": self.line,
            "rule": self.rule,
        }
        if not grid:
            del out["grid"]
        return out


@dataclass(frozen=True)
class SafeTarget:
    """Where safe search sends a search engine: a DNS name (CNAME target) and, for the proxy, the
    query parameters and headers that force safe results."""

    engine: str
    host: str
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The target as JSON-ready values (its pairs as lists)."""
        params, headers = [list(p) for p in self.params], [list(h) for h in self.headers]
        return {"engine": self.engine, "host": self.host, "params": params, "headers": headers}


@dataclass(frozen=True)
class Verdict:
    """The decision on one request. `severity` is the highest of the reasons'."""

    action: Action
    profile: str
    reasons: tuple[Reason, ...] = ()
    severity: Severity = Severity.NONE
    safe_search: SafeTarget | None = None
    log: LogDetail = LogDetail.COUNT

    @property
    def flagged(self) -> bool:
        """Something staff should look at rides along: a flag category, a watch-list word, personal
        information (on an allowed, rewritten or blocked request alike)."""
        return any(r.effect is Action.FLAG for r in self.reasons)

    def as_json(self) -> dict[str, Any]:
        """The verdict as JSON-ready values, as `appliance explain --json` prints it; `flagged` last."""
        return {
            "action": str(self.action),
            "profile": self.profile,
            "reasons": [r.as_json() for r in self.reasons],
            "severity": str(self.severity),
            "safe_search": None if self.safe_search is None else self.safe_search.as_json(),
            "log": str(self.log),
            "flagged": self.flagged,
        }
