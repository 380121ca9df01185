"""Cheap URL splitting for the hot path (urllib.parse.urlsplit costs several times more)."""

from __future__ import annotations


def split_url(url: str) -> tuple[str, str]:
    """Return (host, path) of an absolute URL or a scheme-less `host/path`.

    The host is lower case, without user info, port, brackets or trailing dot; the path keeps its
    query and always starts with `/`. A fragment is dropped: it never reaches a server.
    """
    start = url.find("://")
    start = start + 3 if start >= 0 else 0
    # The authority ends at the first "/", "?" or "#": find "/" first (nearly always there), then
    # look for the others only before it.
    end = url.find("/", start)
    if end < 0:
        end = len(url)
    cut = url.find("?", start, end)
    if cut >= 0:
        end = cut
    cut = url.find("#", start, end)
    if cut >= 0:
        end = cut
    authority = url[start:end]
    if "@" in authority:
        authority = authority[authority.rfind("@") + 1 :]
    if authority.startswith("["):
        host = authority[1 : authority.find("]")] if "]" in authority else authority[1:]
    elif ":" in authority:
        host = authority[: authority.find(":")]
    else:
        host = authority
    path = url[end:]
    if "#" in path:
        path = path[: path.find("#")]
    if not path.startswith("/"):
        path = "/" + path
    return host.lower().rstrip("."), path


def canonical_host(host: str) -> str:
    """`host` as matching sees it: lower case, no trailing dot or brackets. (Placeholder: the full
    canonical form of IP literals comes with the canonicalisation work.)"""
    return host.strip("[]").lower().rstrip(".")
