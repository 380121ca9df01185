"""What is being asked: a request value, built by an adapter (DNS server, proxy) and given to `decide`."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from filters.urls import canonical_url


class Channel(StrEnum):
    """Where the request was seen: a DNS query, a TLS hello (the SNI name only), or a web request."""

    DNS = "dns"
    TLS = "tls"
    HTTP = "http"


class Request(NamedTuple):
    """One request. `host` is in canonical form (`filters.urls.canonical_host`: lower case, no trailing
    dot, an IP address in one spelling).

    `url` is given for web requests (absolute, with its query); `source_url` is the page that made it,
    `request_type` its adblock resource type (`document`, `script`, ...). `outbound_text` is what the
    child is sending (a form post, a message), checked for personal information.

    An immutable named tuple rather than a frozen dataclass: the proxy builds one per request, and a
    tuple costs half as much to build (the decision's whole budget is a quarter of a list match).
    """

    host: str
    url: str | None = None
    channel: Channel = Channel.DNS
    source_url: str | None = None
    request_type: str = "document"
    outbound_text: str | None = None

    @classmethod
    def web(
        cls,
        url: str,
        *,
        source_url: str | None = None,
        request_type: str = "document",
        outbound_text: str | None = None,
    ) -> Request:
        """A web request for an absolute URL, kept in canonical form (`filters.urls.canonical_url`:
        `http://2130706433/%61ds` is `http://127.0.0.1/ads`), the host taken from it."""
        url, host, _ = canonical_url(url)
        return cls(host, url, Channel.HTTP, source_url, request_type, outbound_text)
