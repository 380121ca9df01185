"""`appliance check`: every mistake in the configuration, the policy files and the list sources, and the
gaps in protection (the judging is in appliance.checks)."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.checks import (
    alert_warnings,
    blocked_categories,
    dashboard_warnings,
    policy_problems,
    protection_warnings,
    source_problems,
    sync_warnings,
)
from appliance.config import ConfigError
from appliance.health import health_problems
from appliance.in_force.head_office import load_config_in_force
from appliance.lists import read_compile_report
from appliance.policy_files import apprise_check
from appliance.storage import index_problem, open_index
from filters.errors import FilterError


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `check` on the `appliance` parser."""
    check = commands.add_parser(
        "check", parents=[common], help="check the configuration, policy files and list sources"
    )
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Every mistake in the configuration, the policy files and the list sources; 0 if none."""
    try:
        config = load_config_in_force(args.config)
    except ConfigError as e:
        print(f"error: {e}")
        print("1 problem found: the configuration must be fixed before anything else can be checked")
        return 1
    files, errors = policy_problems(config, channel_check=apprise_check)
    errors += source_problems(config)
    for error in errors:
        print(f"error: {error}")
    if errors:
        print(f"{len(errors)} problem{'s' if len(errors) != 1 else ''} found; nothing was changed")
        return 1
    assert files is not None
    gaps = protection_warnings(config, files, read_compile_report(config))
    if gaps:
        count = f"{len(gaps)} warning{'s' if len(gaps) != 1 else ''}"
        print(f"configuration valid, but protection has gaps ({count} below): {config.origin}")
    else:
        print(f"configuration ok: {config.origin}")
    chosen = config.catalogue
    preset = f"preset {chosen.preset}, " if chosen.preset else ""
    print(
        f"  {len(config.sources)} list sources ({preset}{len(chosen.entries)} from the catalogue), "
        f"{len(files.categories.categories)} categories, {len(files.watch_lists)} watch lists, "
        f"time zone {files.zone.key}"
    )
    print(f"  profiles: {', '.join(files.profiles)}")
    for warning in gaps:
        print(f"  warning: {warning}")
    fed = {c.name for s in config.sources if (c := files.categories.for_source(s.name, s.category))}
    fed |= {w.category for w in files.watch_lists.values()}
    idle = sorted(
        c.name
        for c in files.categories.values()
        if c.name not in fed and c.name != "personal-info" and c.name not in blocked_categories(files)
    )
    if idle:
        # Not a mistake (no profile blocks them), but a category with no list matches nothing.
        print(f"  note: no configured list feeds these categories, so they match nothing: {', '.join(idle)}")
    if index_problem(config.index_path) is None:  # (a damaged one is among the machine's problems)
        try:
            files.bind(open_index(config.index_path))
        except FilterError as e:
            print(f"  note: no usable compiled index yet ({e}); run `appliance lists compile`")
    for warning in [
        *health_problems(config),
        *dashboard_warnings(config),
        *sync_warnings(config),
        *alert_warnings(files),
    ]:
        print(f"  warning: {warning}")
    return 0
