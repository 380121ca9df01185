"""The alerts documentation keeps up with the code: every key alerts.yaml's reader accepts is in
docs/configuration.md's table, and every `appliance alerts` and `appliance router` command is in the
README and docs/alerts.md (fails when a key or a command is added and the docs are not)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance import policy_files

REPO = Path(__file__).resolve().parents[3]
CONFIGURATION = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
SECTION = CONFIGURATION[CONFIGURATION.index("## `alerts.yaml`") : CONFIGURATION.index("## `store`")]

# The keys of the nested mappings, as policy_files._read_alerts and _read_contacts accept them.
NESTED = {
    "contacts": ("name", "channels"),
    "rota": ("contact", "days", "hours"),
    "ladder": ("after_minutes", "notify", "min_severity"),
    "digest": ("to", "every", "at", "day"),
    "share": ("child_name", "site", "search_terms"),
    "repeats": ("count", "within_minutes"),
}


@pytest.mark.parametrize("key", sorted(policy_files._ALERT_KEYS))
def test_every_top_level_key_of_alerts_yaml_has_its_row(key):
    assert f"| `{key}` |" in SECTION


@pytest.mark.parametrize("key", sorted(policy_files._RULE_KEYS))
def test_every_key_of_a_rule_has_its_row(key):
    assert f"| `rules[].{key}` |" in SECTION


@pytest.mark.parametrize("key", sorted(policy_files._WHEN_KEYS))
def test_every_condition_of_a_rules_when_is_explained(key):
    row = next(line for line in SECTION.splitlines() if line.startswith("| `rules[].when` |"))
    assert f"`{key}:" in row


@pytest.mark.parametrize(("parent", "key"), [(p, k) for p, keys in NESTED.items() for k in keys])
def test_every_nested_key_is_named_in_its_row(parent, key):
    row = next(line for line in SECTION.splitlines() if re.match(rf"\| `(rules\[\]\.)?{parent}` \|", line))
    assert key in row


def test_policy_alerts_is_in_the_policy_table():
    assert "| `policy.alerts` | path |" in CONFIGURATION


@pytest.mark.parametrize(
    "command",
    ["appliance alerts", "appliance alerts test", "appliance alerts digest", "appliance router refusals"],
)
def test_every_alerts_command_is_documented(command):
    for doc in ("README.md", "docs/alerts.md"):
        assert f"`{command}" in (REPO / doc).read_text(encoding="utf-8"), doc
