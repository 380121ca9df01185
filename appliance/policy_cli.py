"""`appliance check` and `appliance explain`: the policy, checked and explained for staff and support."""

from __future__ import annotations

import argparse
import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from appliance.config import Config, ConfigError, device_problems
from appliance.config.catalogue import DEMO
from appliance.config.proxy import ProxyMode
from appliance.health import health_problems
from appliance.in_force.head_office import load_config_in_force as load_config
from appliance.lists import CompileReport, read_compile_report
from appliance.net import split_host_port
from appliance.policy_files import (
    PolicyFileErrors,
    PolicyFiles,
    catalogue_ranks,
    read_policy_files,
    unmapped_sources,
)
from appliance.storage import index_problem, open_index
from filters.errors import FilterError
from filters.names import BadName, normalise_host
from filters.sources import Format, Rank
from profiles.decide import decide
from profiles.identity import GUEST, Identity, Via
from profiles.policy import Policy
from profiles.request import Channel, Request
from profiles.verdict import Action, Verdict


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


def policy_problems(config: Config) -> tuple[PolicyFiles | None, list[str]]:
    """The policy files read under `config`, and every mistake in them or between them and the
    configuration (list sources no category takes, devices with an unknown profile).

    The files are None when they have mistakes; the list is empty when they have none. `appliance check`
    and the dashboard's profile editor both judge a policy by this."""
    errors: list[str] = []
    try:
        files = read_policy_files(config.policy)
    except PolicyFileErrors as e:
        errors += e.errors
        if e.categories is not None:
            errors += unmapped_sources(config, e.categories)
        return None, errors
    errors += unmapped_sources(config, files.categories)
    errors += device_problems(config, files.profiles)
    return (None if errors else files), errors


def run_check(args: argparse.Namespace) -> int:
    """Every mistake in the configuration, the policy files and the list sources; 0 if none."""
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"error: {e}")
        print("1 problem found: the configuration must be fixed before anything else can be checked")
        return 1
    files, errors = policy_problems(config)
    errors += _source_problems(config)
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
    for warning in [*health_problems(config), *dashboard_warnings(config), *sync_warnings(config)]:
        print(f"  warning: {warning}")
    return 0


MINIMAL = "protection is minimal: lists not downloaded yet"


def blocked_categories(files: PolicyFiles) -> dict[str, list[str]]:
    """Each category some profile blocks (always-blocked ones included), with the profiles that do."""
    out: dict[str, list[str]] = {}
    filtering = [p for p in files.profiles.values() if not p.bypass]
    for category in files.categories.values():
        if category.always_blocked:
            out[category.name] = [p.name for p in filtering]
    for profile in filtering:
        for name in sorted(profile.blocked_categories):
            if profile.name not in out.setdefault(name, []):
                out[name].append(profile.name)
    return out


def protection_warnings(config: Config, files: PolicyFiles, report: CompileReport | None) -> list[str]:
    """What leaves children less protected than the configuration promises, for `appliance check` and
    the dashboard's Lists page: the downloaded lists have never come in (MINIMAL), a category some
    profile blocks has no list at all, or none of its lists gave an entry in the last compile; and
    catalogue switches naming entries the catalogue no longer has."""
    out = []
    downloaded = [s.name for s in config.sources if s.is_url]
    compiled = {s.report.source: s.report for s in report.sources} if report else {}
    # As compile_with_fallback sees it: lists to download, and none went into the index in force.
    minimal = bool(downloaded) and not any(
        s.report.entries
        for s in (report.sources if report else ())
        if s.location.startswith(("http://", "https://"))
    )
    if minimal:
        what = "the bundled demo lists are in force" if report else "nothing is compiled yet"
        out.append(
            f"{MINIMAL} ({what}; none of the {len(downloaded)} lists to download has come in: "
            "`appliance lists compile` fetches them, the nightly update tries again)"
        )
    elif config.catalogue.preset == DEMO and not downloaded:
        out.append(
            "protection is minimal: only the bundled demo lists (lists.preset: demo), a dozen names a "
            "category; a centre runs the recommended preset (docs/lists.md)"
        )
    everyone = sorted(p.name for p in files.profiles.values() if not p.bypass)
    # An exceptions list takes names out of a category: it feeds it nothing.
    ranks = catalogue_ranks()
    for name, profiles in blocked_categories(files).items():
        category = files.categories.categories.get(name)
        if category is None or name == "personal-info":
            continue
        if sorted(profiles) == everyone:
            who = "every profile blocks"
        elif len(profiles) == 1:
            who = f"profile {profiles[0]} blocks"
        else:
            who = f"profiles {', '.join(profiles)} block"
        feeding = [
            s.name
            for s in config.sources
            if files.categories.for_source(s.name, s.category) == category
            and ranks.get(s.name) is not Rank.EXCEPTIONS
        ]
        if not feeding:
            out.append(f"no list feeds category {name!r} ({category.title}), which {who}: it blocks nothing")
        elif not minimal and all(n in compiled and not compiled[n].entries for n in feeding):
            why = "; ".join(f"{n}: {compiled[n].rejected or 'no entries'}" for n in feeding)
            out.append(
                f"category {name!r} ({category.title}), which {who}: none of its lists gave an entry in "
                f"the last compile ({why})"
            )
    out += [f"{line}: switched in lists.catalogue" for line in config.catalogue.unknown]
    return out


def sync_warnings(config: Config) -> list[str]:
    """What will stop head office's bundles from arriving."""
    if config.sync is None:
        return []
    out = []
    if not config.sync.trusted_root.is_file():
        out.append(
            f"sync.trusted_root {config.sync.trusted_root} is missing: install head office's 1.root.json "
            "there (docs/head-office.md), or `appliance sync` refuses every bundle"
        )
    if config.set_note:
        running = config.set_dir.name if config.set_dir else "the own lists"
        out.append(f"{config.set_note}: running {running} until `appliance sync` makes it again")
    return out


def dashboard_warnings(config: Config) -> list[str]:
    """What is allowed but unsafe in how the dashboard is served."""
    out = []
    d = config.dashboard
    staff_pages = d.staff_listen or d.listen
    host, _ = split_host_port(staff_pages, 80)
    https = d.staff_listen is not None and d.staff_tls
    if not https and not d.secure_cookies and not ipaddress.ip_address(host).is_loopback:
        out.append(
            f"the staff pages are served on {staff_pages} over plain HTTP: staff passwords and sign-in"
            " cookies cross the network readable; give them a port of their own (dashboard.staff_listen)"
            " with dashboard.staff_tls: true (HTTPS with the appliance's own certificate), or, behind an"
            " HTTPS front end of your own, set dashboard.secure_cookies: true"
        )
    if config.proxy.mode is ProxyMode.TRANSPARENT and d.staff_listen and not config.router.staff_interface:
        out.append(
            "router mode without router.staff_interface: the staff pages' port is open to no network"
            " (set the staff network's own interface, a VLAN like eth1.60 or a second port)"
        )
    everyone = [n for n in config.dashboard.admin_networks if ipaddress.ip_network(n).prefixlen == 0]
    if everyone:
        out.append(
            f"dashboard.admin_networks includes {', '.join(everyone)}: every device reaches the staff pages"
        )
    return out


def parse_time(text: str | None, zone: tzinfo) -> datetime:
    """An ISO time (centre time unless it has an offset) as an aware datetime; now if None or empty."""
    if not text:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise ConfigError(f"--at {text!r}: give an ISO time like 2026-11-24T16:30 (centre time)") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when


@dataclass(frozen=True)
class Explanation:
    """The verdict on one host or URL for one profile at one time, as `appliance explain` shows it."""

    subject: str
    at: datetime  # aware
    zone: ZoneInfo
    verdict: Verdict
    intercept_tls: bool  # may the profile's traffic be decrypted on centre-managed devices

    @property
    def local(self) -> datetime:
        """The time in the centre's time zone."""
        return self.at.astimezone(self.zone)

    @property
    def action_words(self) -> str:
        """`BLOCK`, `ALLOW and FLAG`, ... as the explanation's headline."""
        what = self.verdict.action.value.upper()
        if self.verdict.flagged and self.verdict.action is not Action.FLAG:
            what += " and FLAG"
        return what


def explain_request(
    subject: str,
    *,
    source_url: str | None = None,
    request_type: str = "document",
    send: str | None = None,
) -> Request:
    """The request `appliance explain` judges: a URL (with a `/`) as a web request, else a DNS name.
    Raises ConfigError if the subject is not a host name or URL."""
    subject = subject.strip()
    if "/" in subject or "://" in subject:
        url = subject if "://" in subject else "https://" + subject
        request = Request.web(url, source_url=source_url, request_type=request_type, outbound_text=send)
    else:
        request = Request(subject.lower().rstrip("."), channel=Channel.DNS)
    try:
        ipaddress.ip_address(request.host)
    except ValueError:
        try:
            normalise_host(request.host)
        except BadName as e:
            raise ConfigError(f"{subject!r} is not a host name or URL ({e})") from e
    return request


def explain(
    files: PolicyFiles,
    policy: Policy,
    profile: str,
    subject: str,
    at: str | None = None,
    *,
    source_url: str | None = None,
    request_type: str = "document",
    send: str | None = None,
) -> Explanation:
    """The verdict on `subject` (a host or URL) for `profile` at `at` (ISO, centre time; None: now),
    with every reason. Raises ConfigError for an unknown profile, a bad time or a bad subject."""
    if profile not in files.profiles and profile != GUEST:  # `guest`: the policy names its own
        raise ConfigError(f"no profile {profile!r} (profiles: {', '.join(files.profiles)})")
    now = parse_time(at, files.zone)
    subject = subject.strip()
    request = explain_request(subject, source_url=source_url, request_type=request_type, send=send)
    verdict = decide(request, policy, Identity(profile, Via.ASSUMED), now)
    return Explanation(subject, now, files.zone, verdict, files.profiles[verdict.profile].intercept_tls)


def run_explain(args: argparse.Namespace) -> int:
    """The verdict on a host or URL for a profile at a time, with every reason."""
    config = load_config(args.config)
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
