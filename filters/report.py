"""What parsing one list source found: entries kept, lines skipped (with file:line reasons), warnings."""

from __future__ import annotations

from dataclasses import dataclass, field

FIRST_REASONS = 5  # how many skipped lines a report names; the rest are only counted


@dataclass(frozen=True)
class SkippedLine:
    """One line a parser refused, and why."""

    origin: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.origin}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class SourceReport:
    """The outcome of reading one source. `rejected` is set when the whole source was refused."""

    source: str
    entries: int
    skipped: int
    first_skipped: tuple[SkippedLine, ...]
    warnings: tuple[str, ...]
    rejected: str | None = None

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

    def skip(self, origin: str, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.first_skipped) < FIRST_REASONS:
            self.first_skipped.append(SkippedLine(origin, line, reason))

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def freeze(self, rejected: str | None = None) -> SourceReport:
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
        )
