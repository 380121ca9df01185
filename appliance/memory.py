"""Giving freed memory back to the system, for the long compile on a 1 GB Pi.

CPython hands objects of more than 512 bytes (list and dict tables, marshalled buckets, arrays) to
glibc's malloc, which keeps freed pages in its heap unless asked: after the adblock rules are compiled
and let go, some 60 MB of freed heap would stay resident beside the domain tables that follow.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc (musl has no malloc_trim, and gives memory back by itself)
    trim.argtypes = [ctypes.c_size_t]  # type: ignore[attr-defined]
    trim.restype = ctypes.c_int  # type: ignore[attr-defined]
    return trim


def give_freed_memory_back() -> None:
    """Release the heap's free pages to the system now (glibc's `malloc_trim`; nothing elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
