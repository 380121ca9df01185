"""Test configurations that add a list file of the test's own to the demo configuration's sources."""

from __future__ import annotations

from pathlib import Path


def with_own_list(text: str, hosts: Path, *, name: str = "centre-adult", category: str = "adult") -> str:
    """The configuration `text` (the demo configuration's `lists:` section, preset and all) with `hosts`,
    a hosts-format file, as the centre's own source `name` of `category`."""
    marker = "\n  sources:\n"
    assert marker in text, "the configuration has no lists.sources key to add to"
    own = f"    - {{name: {name}, format: hosts, category: {category}, path: {hosts}}}\n"
    return text.replace(marker, marker + own, 1)
