"""What is being asked: a request value, built by an adapter (DNS server, proxy) and given to `decide`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from filters.urls import split_url


class Channel(StrEnum):
    """Where the request was seen: a DNS query, a TLS hello (the SNI name only), or a web request."""

    DNS = "dns"
    TLS = "tls"
    HTTP = "http"


@dataclass(frozen=True, init=False)
class Request:
    """One request. `host` is lower case without a trailing dot.

    `url` is given for web requests (absolute, with its query); `source_url` is the page that made it,
    `request_type` its adblock resource type (`document`, `script`, ...). `outbound_text` is what the
    child is sending (a form post, a message), checked for personal information.
    """

    host: str
    url: str | None = None
    channel: Channel = Channel.DNS
    source_url: str | None = None
    request_type: str = "document"
    outbound_text: str | None = None

    def __init__(
        self,
        host: str,
        url: str | None = None,
        channel: Channel = Channel.DNS,
        source_url: str | None = None,
        request_type: str = "document",
        outbound_text: str | None = None,
    ) -> None:
        # One request per web request: filling the instance dict in one step costs half of what the
        # generated frozen __init__ does (one guarded set per field).
        self.__dict__.update(
            host=host,
            url=url,
            channel=channel,
            source_url=source_url,
            request_type=request_type,
            outbound_text=outbound_text,
        )

    @classmethod
    def web(
        cls,
        url: str,
        *,
        source_url: str | None = None,
        request_type: str = "document",
        outbound_text: str | None = None,
    ) -> Request:
        """A web request for an absolute URL (the host is taken from it)."""
        return cls(split_url(url)[0], url, Channel.HTTP, source_url, request_type, outbound_text)
