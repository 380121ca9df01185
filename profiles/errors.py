"""Errors of the policy layer, in the appliance's one hierarchy."""

from filters.errors import ApplianceError


class PolicyError(ApplianceError):
    """A policy file (categories, profiles, safe search, watch lists) is wrong, or names what does not exist.

    Raised with `file:line: what is wrong, and a hint` when the file is known; nothing of a refused
    policy is ever applied.
    """


class UnknownProfile(PolicyError):
    """A profile name that the policy in force does not define."""
