"""The appliance's own categories and their place in the "three Cs" grid of risks.

Lists name their categories as their authors do (UT1 `agressif`, e2guardian `IllegalDrugs`); a category
here gathers them under one name a centre's e-safety lead reads in reports ("contact / sexual").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Area(StrEnum):
    """Who acts, in the three Cs: the child receives content, takes part in contact, or acts (conduct)."""

    CONTENT = "content"
    CONTACT = "contact"
    CONDUCT = "conduct"


class Risk(StrEnum):
    """What kind of harm, the other axis of the grid."""

    COMMERCIAL = "commercial"
    AGGRESSIVE = "aggressive"
    SEXUAL = "sexual"
    VALUES = "values"


class Severity(IntEnum):
    """How urgently staff should look. Ordered: a verdict carries the highest of its reasons."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        """`low`, `medium`, ... (case-insensitive); ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError as e:
            raise ValueError(text) from e

    def __str__(self) -> str:
        return self.name.lower()


class Kind(StrEnum):
    """A category of risks, or a category of sites known to be good for children (an allowlist)."""

    RISK = "risk"
    ALLOWLIST = "allowlist"


@dataclass(frozen=True)
class Category:
    """One category: its grid place (risk categories only), severity, and which lists feed it.

    `sources` are list-source names from the configuration; `labels` are list authors' own category
    names (a source's `category:` or a phrase list's `#listcategory`), matched without regard to case.
    `always_blocked` categories are blocked for every profile except a `bypass` one (malware, bypass).
    """

    name: str
    title: str
    kind: Kind
    area: Area | None
    risk: Risk | None
    severity: Severity
    description: str = ""
    sources: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    always_blocked: bool = False

    @property
    def grid(self) -> str:
        """`contact / sexual`, or `allowlist` for allowlist categories."""
        if self.area is None or self.risk is None:
            return "allowlist"
        return f"{self.area} / {self.risk}"


@dataclass(frozen=True)
class CategoryMap:
    """The categories in force, and how list sources and list labels map onto them."""

    categories: Mapping[str, Category]
    _by_source: Mapping[str, Category] = field(init=False, repr=False, compare=False)
    _by_label: Mapping[str, Category] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_source: dict[str, Category] = {}
        by_label: dict[str, Category] = {}
        for category in self.categories.values():
            for source in category.sources:
                by_source[source] = category
            for label in (category.name, *category.labels):
                by_label[label.casefold()] = category
        object.__setattr__(self, "_by_source", by_source)
        object.__setattr__(self, "_by_label", by_label)

    def __getitem__(self, name: str) -> Category:
        return self.categories[name]

    def __contains__(self, name: object) -> bool:
        return name in self.categories

    def values(self) -> Iterable[Category]:
        return self.categories.values()

    def areas(self) -> dict[str, str]:
        """Each category's three-Cs area by name (content, contact, conduct); those without one (the
        allowlist categories) left out."""
        return {c.name: str(c.area) for c in self.categories.values() if c.area is not None}

    def for_source(self, source: str, label: str) -> Category | None:
        """The category a list source feeds: named by the category's `sources`, else by its label."""
        found = self._by_source.get(source)
        return found if found is not None else self.for_label(label)

    def for_label(self, label: str) -> Category | None:
        """The category a list author's label (UT1 folder, `#listcategory`) stands for, if any."""
        return self._by_label.get(label.casefold())
