"""Turning a downloaded or read list into text lines, refusing what is not a list at all."""

from __future__ import annotations

import re

from filters.errors import SourceRejected

_SNIFF = 4096
_HTML = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<\?xml|<!--)", re.IGNORECASE)
MAX_LINE = 8192  # longer lines are skipped: no real list entry is this long


def decode_list(source: str, data: bytes) -> list[str]:
    """Decode a list source into lines, or raise SourceRejected if it is HTML or binary.

    UTF-8 is expected; bytes that are not UTF-8 are decoded as Latin-1 (older UT1 files),
    never silently dropped.
    """
    head = data[:_SNIFF]
    if data.startswith(b"\x1f\x8b") or data.startswith(b"PK\x03\x04"):
        raise SourceRejected(source, "compressed archive, not a text list (unpack it first)")
    if b"\x00" in head:
        raise SourceRejected(source, "binary data, not a text list")
    if _HTML.match(head.lstrip(b"\xef\xbb\xbf")):
        raise SourceRejected(source, "an HTML page, not a list (a login or error page served instead?)")
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    if head and controls > len(head) // 100:
        raise SourceRejected(source, "binary data, not a text list")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    # Only newlines end a line: str.splitlines() would also split on NEL (0x85), form feeds and
    # Unicode separators, which occur inside Latin-1 and Shift-JIS list entries.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines
