"""The centre's side of head office's bundles (the `sync:` section of appliance.yaml; used by
appliance/bundles/sync.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.config.reader import ConfigError, Reader
from appliance.config.reader import Mapping as _Mapping

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


def parse_sync(raw: Any, r: Reader, data: _Mapping) -> SyncSettings | None:
    keys = {"url", "trusted_root", "ring", "jitter_minutes", "timeout_s", "deadline_s"}
    keys |= {"health_timeout_s", "check_dns"}
    node = r.section(raw, data, "sync", keys)
    if node is None:
        return None
    url = node.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"{r.where(node, 'url')}: sync.url must be head office's http(s):// address")
    ring = r.setting_text(node, "ring", "sync", "stable")
    if not ring or not all(c.isalnum() or c in "-_" for c in ring):
        raise ConfigError(f"{r.where(node, 'ring')}: sync.ring: use letters, digits, - and _")
    root = node.get("trusted_root", str(DEFAULT_TRUSTED_ROOT))
    if not isinstance(root, str) or not root:
        raise ConfigError(f"{r.where(node, 'trusted_root')}: sync.trusted_root must be a file path")
    return SyncSettings(
        url=url.rstrip("/"),
        trusted_root=(r.path.parent / os.path.expanduser(root)).resolve(),
        ring=ring,
        jitter_minutes=r.number(node, "jitter_minutes", 60, 0, 24 * 60, "sync"),
        timeout_s=r.number(node, "timeout_s", 60, 1, 3600, "sync"),
        deadline_s=r.number(node, "deadline_s", 900, 1, 24 * 3600, "sync"),
        health_timeout_s=r.number(node, "health_timeout_s", 30, 1, 600, "sync"),
        check_dns=r.setting_flag(node, "check_dns", "sync", True),
    )
