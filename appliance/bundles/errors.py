"""Why a bundle was refused, built wrong, or could not be fetched."""

from __future__ import annotations

from filters.errors import ApplianceError


class BundleError(ApplianceError):
    """A bundle or head office's repository is not usable; nothing in force was changed."""
