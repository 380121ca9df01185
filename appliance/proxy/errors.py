"""The proxy's errors, in the appliance's one hierarchy."""

from __future__ import annotations

from filters.errors import ApplianceError


class ProxyError(ApplianceError):
    """The proxy cannot start or serve: its certificate authority, its address, its settings."""
