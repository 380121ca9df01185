"""What a list source is: a name, a format, a category, and where its text comes from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Format(StrEnum):
    """The list formats the appliance reads (see docs/configuration.md for what each accepts)."""

    HOSTS = "hosts"
    DOMAINS = "domains"
    ADBLOCK_DNS = "adblock-dns"
    ADBLOCK = "adblock"
    UT1 = "ut1"
    PHRASES = "e2guardian-phrases"


@dataclass(frozen=True)
class Source:
    """One configured list source. `location` is a file or folder path, or an http(s) URL."""

    name: str
    format: Format
    category: str
    location: str
    # For an archive (.tar.gz, .tgz, .gz, .zip): the members to take, by path inside it; a path ending in
    # "/" takes a folder (a UT1 category archive: "adult/"). Empty: the archive's one file.
    members: tuple[str, ...] = ()

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))
