"""The centre's side of head office's bundles (the `sync:` section of appliance.yaml; used by
appliance/bundles/sync.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_TRUSTED_ROOT = Path("/etc/appliance/head-office-root.json")


@dataclass(frozen=True)
class SyncSettings:
    url: str  # where head office publishes: `metadata/` and `targets/` under it, plain static files
    trusted_root: Path = DEFAULT_TRUSTED_ROOT  # head office's root.json, installed with the appliance
    ring: str = "stable"  # the rollout ring this centre belongs to (canary centres take bundles first)
    jitter_minutes: float = 60  # `appliance sync --jitter` waits up to this long first (a thousand centres)
    timeout_s: float = 60  # per download: the longest wait for a byte (a trickle never trips it)
    deadline_s: float = 900  # the whole sync, from reaching head office to the set checked before its swap
    health_timeout_s: float = 30  # how long the DNS filter has to take a new set before it is rolled back
    check_dns: bool = True  # after a swap, ask the running DNS filter (off only where none runs)
