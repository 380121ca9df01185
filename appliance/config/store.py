"""How long the event store keeps what (the `store:` section of appliance.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.config.reader import Mapping as _Mapping
from appliance.config.reader import Reader


@dataclass(frozen=True)
class StoreSettings:
    retention_days: int = 30  # events (blocked, flagged, detailed browsing) are purged after this
    incident_retention_days: int = 7 * 365  # an incident's record, with the events it was opened from
    audit_retention_days: int = 7 * 365
    daily_counts_days: int = 2 * 366  # the allowed-browsing aggregates the yearly report reads
    # One device's blocked names under one blocked domain (`a1.pornhub.com`, `b2.pornhub.com`, ...): the
    # first is an event, the others for this long after it only add to the day's totals.
    aggregate_minutes: int = 10


def parse_store(raw: Any, r: Reader, data: _Mapping) -> StoreSettings:
    d = StoreSettings()
    node = r.section(raw, data, "store", set(d.__dict__))
    if node is None:
        return d
    values = {k: int(r.number(node, k, v, 1, 36_500, "store")) for k, v in d.__dict__.items()}
    return StoreSettings(**values)
