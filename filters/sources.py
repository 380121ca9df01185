"""What a list source is: a name, a format, a category, and where its text comes from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".gz")  # ".gz" last: ".tar.gz" ends with it too


class Format(StrEnum):
    """The list formats the appliance reads (see docs/configuration.md for what each accepts)."""

    HOSTS = "hosts"
    DOMAINS = "domains"
    ADBLOCK_DNS = "adblock-dns"
    ADBLOCK = "adblock"
    UT1 = "ut1"
    PHRASES = "e2guardian-phrases"


class Rank(IntEnum):
    """How far a list's word goes when several lists name the same host (docs/lists.md, "When lists
    disagree"). Ordered: a higher rank names the host before a lower one.

    `stale`: no longer kept up to date; `broad`: names many sites beyond its category; `specific`: a
    list that names what it is about (the default); `exceptions`: the appliance's own reviewed names
    another list gets wrong, whose allow entries (`@@||name^`) take the name out of that category.
    """

    STALE = 0
    BROAD = 1
    SPECIFIC = 2
    EXCEPTIONS = 3

    @classmethod
    def parse(cls, text: str) -> Rank:
        """`stale`, `broad`, `specific` or `exceptions`; ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError as e:
            raise ValueError(text) from e

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Source:
    """One configured list source. `location` is a file or folder path, or an http(s) URL."""

    name: str
    format: Format
    category: str
    location: str
    # For an archive (.tar.gz, .tgz, .gz, .zip): the members to take, by path inside it; a path ending in
    # "/" takes a folder (a UT1 category archive: "adult/"). Empty: the archive's one file (for a ut1
    # source, its one folder).
    members: tuple[str, ...] = ()

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))

    @property
    def archive(self) -> str | None:
        """The archive kind (".tar.gz", ".tgz", ".zip", ".gz") its file or URL names, if it is one."""
        path = self.location
        if self.is_url:
            path = path.split("#", 1)[0].split("?", 1)[0]
        lowered = path.lower()
        return next((suffix for suffix in ARCHIVE_SUFFIXES if lowered.endswith(suffix)), None)

    @property
    def mirror_path(self) -> str:
        """Where a mirror (head office, a local cache) keeps this source, below its base URL: the source's
        name and its archive suffix (`ut1-adult.tar.gz`, `stevenblack-porn`). The one place that says so."""
        return f"{self.name}{self.archive or ''}"
