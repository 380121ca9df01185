"""`appliance explain`: the verdict on a host or URL for a profile at a time, with every reason (worked
out by appliance.explain)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from appliance.explain import explain
from appliance.in_force.head_office import load_config_in_force
from appliance.policy_files import read_policy_files
from appliance.storage import open_index


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `explain` on the `appliance` parser."""
    command = commands.add_parser(
        "explain", parents=[common], help="the verdict on a host or URL for a profile, and every reason"
    )
    command.add_argument("--profile", required=True, help="profile name, e.g. 13-17")
    command.add_argument("--at", help="when, as an ISO time (centre time unless an offset is given)")
    command.add_argument("--from", dest="source_url", help="URL of the page that made the request")
    command.add_argument("--type", default="document", help="request type (document, script, image, ...)")
    command.add_argument("--send", help="text the child is sending (checked for personal information)")
    command.add_argument("--json", action="store_true")
    command.add_argument("host_or_url")
    command.set_defaults(run=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    """The verdict on a host or URL for a profile at a time, with every reason."""
    config = load_config_in_force(args.config)
    files = read_policy_files(config.policy)
    policy = files.bind(open_index(config.index_path))
    found = explain(
        files,
        policy,
        args.profile,
        args.host_or_url,
        args.at,
        source_url=args.source_url,
        request_type=args.type,
        send=args.send,
    )
    verdict = found.verdict
    if args.json:
        out: dict[str, Any] = {
            "subject": found.subject,
            "at": found.at.isoformat(),
            "verdict": verdict.as_json(),
        }
        out["intercept_tls_on_managed_devices"] = found.intercept_tls
        print(json.dumps(out))
        return 0
    print(f"{found.subject}")
    print(f"  profile {verdict.profile!r} at {found.local:%A %Y-%m-%d %H:%M} ({found.zone.key})")
    print(
        f"  verdict: {found.action_words}" + (f" (severity {verdict.severity})" if verdict.severity else "")
    )
    if verdict.safe_search is not None:
        target = verdict.safe_search
        print(f"  safe search: {target.engine} answered as {target.host}")
    if not verdict.reasons:
        print("  why: no list and no rule of this profile mentions it")
    for reason in verdict.reasons:
        print(f"  - {reason}")
    print(f"  logged as: {verdict.log.value}")
    return 0
