"""`appliance lists compile|match|catalogue|preset`: the filter lists compiled, queried, and chosen from the
catalogue (the work is in appliance.lists, appliance.stand_in, appliance.config.catalogue and
appliance.presets)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from appliance.checks import MINIMAL
from appliance.config import default_config_path
from appliance.config.catalogue import Catalogue, catalogue_markdown, load_catalogue
from appliance.in_force.head_office import load_config_in_force
from appliance.presets import choose_preset
from appliance.stand_in import compile_with_fallback
from appliance.storage import open_index
from filters.index import Match
from filters.network_index import REQUEST_TYPES
from filters.report import SourceReport


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `lists compile|match|catalogue|preset` on the `appliance` parser."""
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

    catalogue = lists.add_parser(
        "catalogue", parents=[common], help="the list catalogue: presets, entries, and which are in force"
    )
    out = catalogue.add_mutually_exclusive_group()
    out.add_argument("--markdown", action="store_true", help="the tables of docs/lists.md")
    out.add_argument("--json", action="store_true", help="every entry as JSON (with its mirror path)")
    catalogue.set_defaults(run=_catalogue)
    preset = lists.add_parser(
        "preset", parents=[common], help="choose the catalogue preset in the configuration file"
    )
    preset.add_argument("name", help="recommended, minimal or demo (see `appliance lists catalogue`)")
    preset.add_argument(
        "--mirror", help="also set lists.fetch.mirror: a head office's or local copy of the lists"
    )
    preset.set_defaults(run=_preset)


# ---- appliance lists compile, appliance lists match ----


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
    compiled = compile_with_fallback(load_config_in_force(args.config), now=datetime.now(UTC))
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
    config = load_config_in_force(args.config)
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


# ---- appliance lists catalogue ----


def _size(catalogue: Catalogue, name: str) -> str:
    entry = catalogue.entries[name]
    return f"{'~' if entry.counted == 'upstream' else ''}{entry.entries:,}"


def _catalogue(args: argparse.Namespace) -> int:
    catalogue = load_catalogue()
    if args.markdown:
        print(catalogue_markdown(catalogue), end="")
        return 0
    config = load_config_in_force(args.config)
    chosen = config.catalogue
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "category": e.category,
                        "format": e.format.value,
                        "url": e.url,
                        "path": e.path,
                        "members": list(e.members),
                        "mirror_path": catalogue.source(e.name).mirror_path if e.url else None,
                        "entries": e.entries,
                        "counted": e.counted,
                        "changes": e.changes,
                        "provider": e.provider.title,
                        "licence": e.licence,
                        "presets": list(catalogue.presets_of(e.name)),
                        "in_force": e.name in chosen.entries,
                        "why": chosen.why(e.name),
                    }
                    for e in catalogue.entries.values()
                ]
            )
        )
        return 0
    print("Presets (lists.preset):")
    for preset in catalogue.presets.values():
        total = catalogue.expected_entries(preset.entries)
        print(f"  {preset.name:<12} {len(preset.entries):>3} lists, about {total:>10,} entries")
    where = (
        f", switches in {chosen.switches_file}"
        if chosen.switches_file
        else (", switches in lists.catalogue" if chosen.inline else "")
    )
    print(
        f"\nEntries (* in force in {config.origin}: preset {chosen.preset or 'none'}{where}; "
        f"{len(chosen.entries)} lists, about {catalogue.expected_entries(chosen.entries):,} entries):"
    )
    for e in catalogue.entries.values():
        mark = "*" if e.name in chosen.entries else " "
        print(
            f"{mark} {e.name:<28} {e.category:<16} {_size(catalogue, e.name):>11}  {e.changes:<20} "
            f"{chosen.why(e.name)}"
        )
    for line in chosen.unknown:
        print(f"warning: {line}")
    return 0


# ---- appliance lists preset ----


def _preset(args: argparse.Namespace) -> int:
    path = (args.config or default_config_path()).resolve()
    config = choose_preset(path, args.name, args.mirror)
    chosen = config.catalogue
    total = load_catalogue().expected_entries(chosen.entries)
    print(f"lists.preset is {args.name} in {path}: {len(chosen.entries)} lists, about {total:,} entries")
    if any(s.is_url for s in config.sources):
        print("run `appliance lists compile` to fetch and compile them (the nightly update does it too)")
    return 0
