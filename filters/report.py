"""What parsing one list source found: entries kept, lines skipped (with file:line reasons), warnings."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

FIRST_REASONS = 5  # how many skipped lines a report names; the rest are only counted


@dataclass(frozen=True)
class SkippedLine:
    """One line a parser refused, and why."""

    origin: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.origin}:{self.line}: {self.reason}"


class FetchOutcome(StrEnum):
    """What downloading a URL source gave."""

    UNCHANGED = "unchanged"  # not modified since the last good copy (a 304), or the same bytes again
    UPDATED = "updated"  # new bytes, taken as the last good copy
    FAILED = "failed"  # no usable download: the last good copy stood in, if there is one


@dataclass(frozen=True)
class FetchSummary:
    """One URL source's download, as a compile report gives it: what it gave and what it cost the link."""

    outcome: FetchOutcome
    url: str  # where the copy came from (the mirror or the source's own URL); the last tried, on failure
    from_mirror: bool
    bytes_fetched: int  # bytes received over the link, every try counted (compressed, as sent)
    attempts: int  # requests made, the mirror's included
    reason: str | None = None  # why it failed
    mirror_problem: str | None = None  # why the mirror was passed over for the source's own URL

    def __str__(self) -> str:
        where = "from the mirror" if self.from_mirror else "from its own URL"
        cost = f"{_size(self.bytes_fetched)} fetched in {self.attempts} request{'s' * (self.attempts != 1)}"
        if self.outcome is FetchOutcome.FAILED:
            text = f"failed ({self.reason}), {cost}"
        elif self.outcome is FetchOutcome.UNCHANGED:
            text = f"unchanged {where}, {cost}"
        else:
            text = f"updated {where}, {cost}"
        if self.mirror_problem:
            text += f"; mirror passed over: {self.mirror_problem}"
        return text


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f} MB"
    if n >= 1_000:
        return f"{n / 1e3:.1f} kB"
    return f"{n} bytes"


@dataclass(frozen=True)
class SourceReport:
    """The outcome of reading one source. `rejected` is set when the whole source was refused."""

    source: str
    entries: int
    skipped: int
    first_skipped: tuple[SkippedLine, ...]
    warnings: tuple[str, ...]
    rejected: str | None = None
    skipped_by_reason: tuple[tuple[str, int], ...] = ()  # most frequent first
    fetch: FetchSummary | None = None  # a URL source's download; None for files read where they are

    @property
    def ok(self) -> bool:
        return self.rejected is None


@dataclass
class ReportBuilder:
    """Collects counts while a parser runs; `freeze()` gives the immutable report."""

    source: str
    entries: int = 0
    skipped: int = 0
    first_skipped: list[SkippedLine] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)

    def skip(self, origin: str, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.first_skipped) < FIRST_REASONS:
            self.first_skipped.append(SkippedLine(origin, line, reason))
        # Tallied by the reason's general part ("not a host name: 'x'" -> "not a host name"), so a
        # report can say that 23,000 of 27,000 skipped lines were cosmetic rules.
        kind = reason.split(":", 1)[0]
        self.reasons[kind] = self.reasons.get(kind, 0) + 1

    def merge(self, other: ReportBuilder) -> None:
        """Add what another builder for the same source counted."""
        self.entries += other.entries
        self.skipped += other.skipped
        self.first_skipped += other.first_skipped[: FIRST_REASONS - len(self.first_skipped)]
        self.warnings += other.warnings
        for kind, count in other.reasons.items():
            self.reasons[kind] = self.reasons.get(kind, 0) + count

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def freeze(self, rejected: str | None = None, fetch: FetchSummary | None = None) -> SourceReport:
        warnings = list(self.warnings)
        if rejected is None and self.entries == 0:
            warnings.append(f"{self.source}: no entries (empty source?)")
        return SourceReport(
            source=self.source,
            entries=self.entries,
            skipped=self.skipped,
            first_skipped=tuple(self.first_skipped),
            warnings=tuple(warnings),
            rejected=rejected,
            skipped_by_reason=tuple(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            fetch=fetch,
        )
