"""Linear-time regular expressions (RE2) with a lean call path for the hot loop.

The `re2` package's Python wrapper costs about a microsecond per search on top of RE2 itself (it
re-encodes text and builds match objects). The hot path only asks "does it match?", so this calls the
compiled RE2 object directly on bytes, with no capture groups, and falls back to the wrapper if the
package's internals ever change.
"""

from __future__ import annotations

from typing import Any

import re2

try:
    from re2 import _re2

    _UNANCHORED: Any = _re2.RE2.Anchor.UNANCHORED
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed re2 build
    _re2 = None


class LinearRegex:
    """A compiled RE2 pattern answering only whether it occurs in a byte string."""

    __slots__ = ("_fallback", "_raw", "pattern")

    def __init__(self, pattern: str, *, ignore_case: bool = False) -> None:
        """Compile `pattern`; raises `re2.error` if RE2 refuses it (backreferences, lookarounds...)."""
        self.pattern = pattern
        self._raw: Any = None
        self._fallback: Any = re2.compile(("(?i)" if ignore_case else "") + pattern)
        if _re2 is not None:
            options = re2.Options()
            options.never_capture = True
            options.case_sensitive = not ignore_case
            raw = _re2.RE2(pattern.encode("utf-8"), options)
            if raw.ok():
                self._raw = raw

    def search(self, data: bytes) -> bool:
        """True if the pattern occurs anywhere in `data`."""
        if self._raw is not None:
            return bool(self._raw.Match(_UNANCHORED, data, 0, len(data))[0][0] >= 0)
        return self._fallback.search(data.decode("utf-8", "surrogateescape")) is not None
