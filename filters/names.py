"""Host name normalisation: lower case, no trailing dot, IDN as punycode, syntax checked."""

from __future__ import annotations

import re

import idna

_ASCII_LABELS = re.compile(
    r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$"
)


class BadName(ValueError):
    """The text is not a usable host name; the message says why."""


def normalise_host(name: str) -> str:
    """Return `name` as a lower-case ASCII host name without a trailing dot.

    Internationalised names become punycode the way browsers do it (IDNA 2008 with UTS #46 mapping),
    and `xn--` labels must be valid punycode.
    Raises BadName with a reason for anything that is not a host name.
    """
    host = name.strip().rstrip(".").lower()
    if not host:
        raise BadName("empty host name")
    if len(host) > 253:
        raise BadName("host name longer than 253 characters")
    if not host.isascii() or "xn--" in host:
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as e:
            raise BadName(f"not a valid internationalised name: {e}") from e
    if _ASCII_LABELS.match(host) is None:
        raise BadName(f"not a host name: {name.strip()[:80]!r}")
    return host
