"""Turning a downloaded or read list into text lines, refusing what is not a list at all."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from itertools import chain

from filters.errors import SourceRejected

_SNIFF = 4096
_HTML = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<\?xml|<!--)", re.IGNORECASE)
MAX_LINE = 8192  # longer lines are skipped: no real list entry is this long


def decode_list(source: str, data: bytes) -> list[str]:
    """Decode a whole list source into lines (`decode_lines`), or raise SourceRejected."""
    return list(decode_lines(source, data.splitlines(keepends=True)))


def decode_lines(source: str, raw_lines: Iterable[bytes]) -> Iterator[str]:
    """Decode a list source given as raw lines (a file opened in binary, `io.BytesIO(data)`, or any
    pieces each ending at a newline) into its text lines, lazily: a list of millions of lines is never
    held whole. Raises SourceRejected at once, before the first line, if it is HTML or binary.

    UTF-8 is expected; a line that is not UTF-8 is decoded as Latin-1 (older UT1 files), never
    silently dropped. Only newlines (LF, CR LF, or a lone CR) end a line: str.splitlines() would also
    split on NEL (0x85), form feeds and Unicode separators, which occur inside Latin-1 and Shift-JIS
    list entries.
    """
    pieces = iter(raw_lines)
    head: list[bytes] = []
    size = 0
    for piece in pieces:
        head.append(piece)
        size += len(piece)
        if size >= _SNIFF:
            break
    _sniff(source, b"".join(head)[:_SNIFF])
    return _lines(chain(head, pieces))


def _sniff(source: str, head: bytes) -> None:
    if head.startswith(b"\x1f\x8b") or head.startswith(b"PK\x03\x04"):
        raise SourceRejected(source, "compressed archive, not a text list (unpack it first)")
    if b"\x00" in head:
        raise SourceRejected(source, "binary data, not a text list")
    if _HTML.match(head.lstrip(b"\xef\xbb\xbf")):
        raise SourceRejected(source, "an HTML page, not a list (a login or error page served instead?)")
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    if head and controls > len(head) // 100:
        raise SourceRejected(source, "binary data, not a text list")


def _lines(pieces: Iterable[bytes]) -> Iterator[str]:
    first = True
    for piece in pieces:
        if piece.endswith(b"\n"):
            piece = piece[:-1]
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        if first:
            first = False
            piece = piece.removeprefix(b"\xef\xbb\xbf")
        for raw in piece.split(b"\r") if b"\r" in piece else (piece,):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                yield raw.decode("latin-1")
