"""`appliance check` and `appliance explain`: the policy, checked and explained for staff and support."""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import UTC, datetime, tzinfo
from enum import Enum
from pathlib import Path
from typing import Any

from appliance.config import Config, ConfigError, device_problems, load_config
from appliance.policy_files import PolicyFileErrors, read_policy_files, unmapped_sources
from appliance.storage import open_index
from filters.errors import FilterError
from filters.sources import Format
from profiles.decide import decide
from profiles.identity import GUEST, Identity, Via
from profiles.request import Channel, Request
from profiles.verdict import Verdict


def _source_problems(config: Config) -> list[str]:
    problems = []
    for source in config.sources:
        if source.location.startswith(("http://", "https://")):
            continue  # fetched and checked by `lists compile`
        path = Path(source.location)
        want_folder = source.format is Format.UT1
        if not path.exists():
            problems.append(f"{config.origin}: source {source.name!r}: {path} does not exist")
        elif want_folder and not path.is_dir():
            problems.append(
                f"{config.origin}: source {source.name!r}: a ut1 source is a folder; {path} is not"
            )
        elif not want_folder and not path.is_file():
            problems.append(f"{config.origin}: source {source.name!r}: {path} is not a file")
    return problems


def run_check(args: argparse.Namespace) -> int:
    """Every mistake in the configuration, the policy files and the list sources; 0 if none."""
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"error: {e}")
        print("1 problem found: the configuration must be fixed before anything else can be checked")
        return 1
    errors: list[str] = []
    try:
        files = read_policy_files(config.policy)
    except PolicyFileErrors as e:
        errors += e.errors
        files = None
        if e.categories is not None:
            errors += unmapped_sources(config, e.categories)
    if files is not None:
        errors += unmapped_sources(config, files.categories)
        errors += device_problems(config, files.profiles)
    errors += _source_problems(config)
    for error in errors:
        print(f"error: {error}")
    if errors:
        print(f"{len(errors)} problem{'s' if len(errors) != 1 else ''} found; nothing was changed")
        return 1
    assert files is not None
    print(f"configuration ok: {config.origin}")
    print(
        f"  {len(config.sources)} list sources, {len(files.categories.categories)} categories, "
        f"{len(files.watch_lists)} watch lists, time zone {files.zone.key}"
    )
    print(f"  profiles: {', '.join(files.profiles)}")
    fed = {c.name for s in config.sources if (c := files.categories.for_source(s.name, s.category))}
    fed |= {w.category for w in files.watch_lists.values()}
    idle = sorted(
        c.name for c in files.categories.values() if c.name not in fed and c.name != "personal-info"
    )
    if idle:
        # Not a mistake (a centre may not want every list), but a category with no list blocks nothing.
        print(f"  note: no configured list feeds these categories, so they match nothing: {', '.join(idle)}")
    try:
        files.bind(open_index(config.index_path))
    except FilterError as e:
        print(f"  note: no usable compiled index yet ({e}); run `appliance lists compile`")
    return 0


def _parse_time(text: str | None, zone: tzinfo) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as e:
        raise ConfigError(f"--at {text!r}: give an ISO time like 2026-11-24T16:30 (centre time)") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    """A verdict as plain JSON-ready values."""
    out: dict[str, Any] = _plain(dataclasses.asdict(verdict))
    out["severity"] = str(verdict.severity)
    for reason, raw in zip(out["reasons"], verdict.reasons, strict=True):
        reason["severity"] = str(raw.severity)
    out["flagged"] = verdict.flagged
    return out


def run_explain(args: argparse.Namespace) -> int:
    """The verdict on a host or URL for a profile at a time, with every reason."""
    config = load_config(args.config)
    files = read_policy_files(config.policy)
    policy = files.bind(open_index(config.index_path))
    if args.profile not in files.profiles and args.profile != GUEST:  # `guest`: the policy names its own
        raise ConfigError(f"no profile {args.profile!r} (profiles: {', '.join(files.profiles)})")
    now = _parse_time(args.at, files.zone)
    subject: str = args.host_or_url.strip()
    if "/" in subject or "://" in subject:
        url = subject if "://" in subject else "https://" + subject
        request = Request.web(
            url, source_url=args.source_url, request_type=args.type, outbound_text=args.send
        )
    else:
        request = Request(subject.lower().rstrip("."), channel=Channel.DNS)
    identity = Identity(args.profile, Via.ASSUMED)
    verdict = decide(request, policy, identity, now)
    if args.json:
        out: dict[str, Any] = {"subject": subject, "at": now.isoformat(), "verdict": verdict_json(verdict)}
        out["intercept_tls_on_managed_devices"] = files.profiles[verdict.profile].intercept_tls
        print(json.dumps(out))
        return 0
    local = now.astimezone(files.zone)
    print(f"{subject}")
    print(f"  profile {verdict.profile!r} at {local:%A %Y-%m-%d %H:%M} ({files.zone.key})")
    what = verdict.action.value.upper()
    if verdict.flagged and verdict.action.value != "flag":
        what += " and FLAG"
    print(f"  verdict: {what}" + (f" (severity {verdict.severity})" if verdict.severity else ""))
    if verdict.safe_search is not None:
        target = verdict.safe_search
        print(f"  safe search: {target.engine} answered as {target.host}")
    if not verdict.reasons:
        print("  why: no list and no rule of this profile mentions it")
    for reason in verdict.reasons:
        print(f"  - {reason}")
    print(f"  logged as: {verdict.log.value}")
    return 0


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `check` and `explain` on the `appliance` parser."""
    check = commands.add_parser(
        "check", parents=[common], help="check the configuration, policy files and list sources"
    )
    check.set_defaults(run=run_check)
    explain = commands.add_parser(
        "explain", parents=[common], help="the verdict on a host or URL for a profile, and every reason"
    )
    explain.add_argument("--profile", required=True, help="profile name, e.g. 13-17")
    explain.add_argument("--at", help="when, as an ISO time (centre time unless an offset is given)")
    explain.add_argument("--from", dest="source_url", help="URL of the page that made the request")
    explain.add_argument("--type", default="document", help="request type (document, script, image, ...)")
    explain.add_argument("--send", help="text the child is sending (checked for personal information)")
    explain.add_argument("--json", action="store_true")
    explain.add_argument("host_or_url")
    explain.set_defaults(run=run_explain)
