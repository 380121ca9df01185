"""What goes wrong in the DNS filter, as values the server answers with rather than crashes on."""

from __future__ import annotations

from filters.errors import ApplianceError


class DnsError(ApplianceError):
    """A DNS filter error."""


class Malformed(DnsError):
    """A query we will not read: `rcode` is what to answer (None: drop it), `question` the raw
    question section when it was read."""

    def __init__(self, rcode: int | None, reason: str, question: bytes = b"", *, edns: bool = False) -> None:
        super().__init__(reason)
        self.rcode = rcode
        self.question = question
        self.edns = edns  # the query had an OPT record: so must the answer
