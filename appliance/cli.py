"""The `appliance` command: one console script, one subcommand per real task."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from appliance.bundles.cli import add_commands as add_bundle_commands
from appliance.dns.command import add_commands as add_dns_commands
from appliance.in_force.head_office import load_config_in_force as load_config
from appliance.lists_cli import add_commands as add_lists_commands
from appliance.lists_cli import compile_with_fallback
from appliance.policy_cli import MINIMAL, add_commands
from appliance.proxy.command import add_commands as add_proxy_commands
from appliance.router import add_commands as add_router_commands
from appliance.storage import open_index
from appliance.store_cli import add_commands as add_store_commands
from filters.errors import ApplianceError
from filters.index import Match
from filters.network_index import REQUEST_TYPES
from filters.report import SourceReport


def _print_report(report: SourceReport) -> None:
    status = "REJECTED" if report.rejected and not report.entries else "ok"
    if report.rejected and report.entries:
        status = "STALE (last good copy)"
    print(f"  {report.source:<28} {status:<8} entries {report.entries:>9,}  skipped {report.skipped:>7,}")
    if report.rejected:
        print(f"      rejected: {report.rejected}")
    for skipped in report.first_skipped:
        print(f"      skipped {skipped}")
    if report.skipped > len(report.first_skipped):
        print(f"      ... and {report.skipped - len(report.first_skipped):,} more skipped lines")
        for reason, count in report.skipped_by_reason[:6]:
            print(f"      {count:>9,} x {reason}")
    for warning in report.warnings:
        print(f"      warning: {warning}")
    if report.fetch is not None:
        print(f"      download: {report.fetch}")


def _lists_compile(args: argparse.Namespace) -> int:
    compiled = compile_with_fallback(load_config(args.config), now=datetime.now(UTC))
    config, result = compiled.config, compiled.result
    if compiled.stood_in:
        print(f"Not downloaded ({len(compiled.not_downloaded) or 'none of the'} lists):")
        for report in compiled.not_downloaded:
            _print_report(report)
        print(
            f"{MINIMAL}: no list could be downloaded, so the bundled demo lists are compiled in their "
            "place; the next compile (the nightly update, or this command) tries again",
            file=sys.stderr,
        )
    if args.json:
        print(
            json.dumps(
                [
                    r.__dict__
                    | {
                        "first_skipped": [str(s) for s in r.first_skipped],
                        "fetch": None if r.fetch is None else dataclasses.asdict(r.fetch),
                    }
                    for r in result.reports
                ]
            )
        )
    else:
        print(f"Compiled {len(result.reports)} sources from {config.origin}")
        for report in result.reports:
            _print_report(report)
        size = result.index_bytes
        shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
        print(f"Index: {result.index_path} ({shown}) in {result.seconds:.1f} s")
        fetched = [r.fetch for r in result.reports if r.fetch is not None]
        if fetched:
            total = sum(f.bytes_fetched for f in fetched)
            counts = Counter(f.outcome.value for f in fetched)
            tally = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
            print(f"Downloads: {total:,} bytes over the link for {len(fetched)} sources ({tally})")
    failed = compiled.stood_in or any(r.rejected and not r.entries for r in result.reports)
    return 1 if failed else 0


def _describe(match: Match, subject: str) -> list[str]:
    if not match:
        return [f"{subject}: not on any list"]
    lines = [f"{subject}:"]
    blocking = match.blocking
    allowing = match.allowing
    if blocking and not allowing:
        lines[0] += " listed as blocked"
    elif allowing and not blocking:
        lines[0] += " listed as allowed"
    else:
        lines[0] += " on both block and allow lists (the profile decides which wins)"
    lines += [f"  {hit}" for hit in match.hits]
    return lines


def _lists_match(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    index = open_index(config.index_path)
    subject: str = args.host_or_url
    is_url = "/" in subject or "://" in subject
    if is_url:
        url = subject if "://" in subject else "http://" + subject
        match = index.match_url(url, source_url=args.source_url, request_type=args.type)
    else:
        match = index.match_host(subject.strip().rstrip(".").lower())
    if args.json:
        print(json.dumps({"subject": subject, "hits": [h.__dict__ for h in match.hits]}))
    else:
        print("\n".join(_describe(match, subject)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance", description="Filtering and monitoring appliance for children's internet centres."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        help="configuration file (default: $APPLIANCE_CONFIG, "
        "/etc/appliance/appliance.yaml, else the bundled demo)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    lists = commands.add_parser("lists", help="filter lists: compile and query").add_subparsers(
        dest="lists_command", required=True
    )
    compile_cmd = lists.add_parser(
        "compile", parents=[common], help="compile the configured list sources into the index"
    )
    compile_cmd.add_argument("--json", action="store_true", help="print the per-source report as JSON")
    compile_cmd.set_defaults(run=_lists_compile)

    match_cmd = lists.add_parser(
        "match", parents=[common], help="what the compiled lists say about a host or URL, and why"
    )
    match_cmd.add_argument("host_or_url")
    match_cmd.add_argument(
        "--type",
        default="document",
        choices=sorted(REQUEST_TYPES),
        help="request type for adblock rules (default: document)",
    )
    match_cmd.add_argument("--from", dest="source_url", help="URL of the page that made the request")
    match_cmd.add_argument("--json", action="store_true")
    match_cmd.set_defaults(run=_lists_match)
    add_lists_commands(lists, common)
    add_commands(commands, common)
    add_dns_commands(commands, common)
    add_proxy_commands(commands, common)
    add_store_commands(commands, common)
    add_router_commands(commands, common)
    add_bundle_commands(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ApplianceError as e:
        print(f"appliance: {e}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
