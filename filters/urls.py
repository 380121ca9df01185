"""Cheap URL splitting for the hot path (urllib.parse.urlsplit costs several times more)."""

from __future__ import annotations


def split_url(url: str) -> tuple[str, str]:
    """Return (host, path) of an absolute URL or a scheme-less `host/path`.

    The host is lower case, without user info, port, brackets or trailing dot; the path keeps its
    query and always starts with `/`. A fragment is dropped: it never reaches a server.
    """
    start = url.find("://")
    start = start + 3 if start >= 0 else 0
    end = len(url)
    for sep in "/?#":
        cut = url.find(sep, start)
        if 0 <= cut < end:
            end = cut
    authority = url[start:end]
    at = authority.rfind("@")
    if at >= 0:
        authority = authority[at + 1 :]
    if authority.startswith("["):
        host = authority[1 : authority.find("]")] if "]" in authority else authority[1:]
    else:
        colon = authority.find(":")
        host = authority[:colon] if colon >= 0 else authority
    path = url[end:]
    hash_at = path.find("#")
    if hash_at >= 0:
        path = path[:hash_at]
    if not path.startswith("/"):
        path = "/" + path
    return host.lower().rstrip("."), path
