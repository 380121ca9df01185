"""The appliance's one exception hierarchy, rooted in the lowest layer so every layer can use it."""


class ApplianceError(Exception):
    """Root of every error the appliance raises on purpose."""


class FilterError(ApplianceError):
    """A filter list or compiled index could not be used."""


class SourceRejected(FilterError):
    """A whole list source was refused (HTML page, binary data, unreadable): the last good list stays."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: rejected whole: {reason}")
        self.source = source
        self.reason = reason


class IndexFormatError(FilterError):
    """A compiled index file is damaged, truncated or of another format version."""
