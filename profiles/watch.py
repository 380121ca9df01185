"""Watch lists: words and phrases in what a child searches for that staff should know about
(self-harm, grooming, bullying, violence). A hit flags the request (or blocks it, where the list says
so) and carries the list's category and severity."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from profiles.categories import Severity
from profiles.verdict import Action


def normalise_terms(text: str) -> str:
    """Lower case, punctuation as spaces, runs of spaces as one: how terms are compared."""
    return " ".join(re.sub(r"[^\w']+", " ", text.casefold()).split())


@dataclass(frozen=True)
class WatchList:
    """A named list of terms; each term matches as whole words (`kill myself` not in `skill myselfie`).

    A trailing `*` matches any ending (`suicid*` matches suicide, suicidal).
    """

    name: str
    category: str
    severity: Severity
    action: Action
    terms: tuple[str, ...]
    description: str = ""
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = []
        for term in sorted(self.terms, key=len, reverse=True):
            stem = term.endswith("*")
            words = normalise_terms(term.rstrip("*")).split()
            if words:
                parts.append(r"\s".join(re.escape(w) for w in words) + (r"\w*" if stem else ""))
        pattern = r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)" if parts else r"(?!x)x"
        object.__setattr__(self, "_pattern", re.compile(pattern))

    def find(self, normalised: str) -> str | None:
        """The first term found in already-normalised text, as it appears there; None if none."""
        found = self._pattern.search(normalised)
        return found.group(0) if found else None


def watch_hits(text: str, lists: Iterable[WatchList]) -> list[tuple[WatchList, str]]:
    """Every list with a term in `text`, and the term found."""
    normalised = normalise_terms(text)
    hits = []
    for watch in lists:
        term = watch.find(normalised)
        if term is not None:
            hits.append((watch, term))
    return hits
