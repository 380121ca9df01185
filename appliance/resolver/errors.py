"""What goes wrong resolving a name upstream."""

from __future__ import annotations

from filters.errors import ApplianceError


class UpstreamFailed(ApplianceError):
    """No upstream answered in time, and nothing stale was there to serve."""
