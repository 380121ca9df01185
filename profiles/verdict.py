"""What `decide` answers: a frozen verdict with every reason, for acting, logging and explaining."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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


@dataclass(frozen=True)
class SafeTarget:
    """Where safe search sends a search engine: a DNS name (CNAME target) and, for the proxy, the
    query parameters and headers that force safe results."""

    engine: str
    host: str
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()


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
