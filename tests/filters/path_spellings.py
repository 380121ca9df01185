"""Random spellings of a path, and what a loose web server serves for each: for the properties that
no spelling gets round a URL-prefix entry (tests/filters/test_canonical.py, and a profile's own entries
in tests/profiles/test_canonical_entries.py)."""

from __future__ import annotations

import re

from hypothesis import strategies as st

_SEGMENTS = st.sampled_from(["adult", "ADULT", "Adult", "bitesize", "BiteSize", "news", "kids", "x", ""])
_SEPARATORS = st.sampled_from(["/", "/", "/", "//", "%2F", "%2f", "%5C", "%5c", "\\"])
_DOTS = st.sampled_from([".", "..", "%2e", "%2E%2e", "..;", "..;x", ".;"])

# Segments, separators in every spelling, dot segments and capitals: what a child scripting requests
# against the filter would try.
spellings = st.lists(st.tuples(_SEPARATORS, st.one_of(_SEGMENTS, _DOTS)), min_size=1, max_size=8).map(
    lambda parts: "/" + "".join(sep + segment for sep, segment in parts)
)


def served(path: str) -> str:
    """The page a loose server serves for `path`, worked out independently of filters.urls: every
    escape decoded, backslashes as slashes, repeated slashes merged, `;x` dropped from dot segments,
    dot segments resolved."""
    decoded = re.sub("%([0-9A-Fa-f]{2})", lambda m: chr(int(m[1], 16)), path).replace("\\", "/")
    out: list[str] = []
    for segment in decoded.split("/")[1:]:
        segment = segment.split(";")[0] if segment.startswith(".") else segment
        if segment == "..":
            out = out[:-1]
        elif segment not in (".", ""):
            out.append(segment)
    return "/" + "/".join(out)
