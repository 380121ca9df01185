"""What `appliance check` and the dashboard judge a centre's configuration by: mistakes in the policy files
and list sources, and the gaps in protection, in the dashboard's serving and in head office's sync."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from appliance.config import Config, device_problems
from appliance.config.catalogue import DEMO
from appliance.config.proxy import ProxyMode
from appliance.lists import CompileReport
from appliance.net import split_host_port
from appliance.policy_files import (
    ChannelCheck,
    PolicyFileErrors,
    PolicyFiles,
    catalogue_ranks,
    read_policy_files,
    unmapped_sources,
)
from filters.sources import Format, Rank
from profiles.alerts import ON_DUTY


def source_problems(config: Config) -> list[str]:
    """The list sources on disk that are missing, or a file where a folder is wanted (or the reverse)."""
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


def policy_problems(
    config: Config, *, channel_check: ChannelCheck | None = None
) -> tuple[PolicyFiles | None, list[str]]:
    """The policy files read under `config`, and every mistake in them or between them and the
    configuration (list sources no category takes, devices with an unknown profile).

    The files are None when they have mistakes; the list is empty when they have none. `appliance check`
    and the dashboard's profile editor both judge a policy by this; `channel_check` (`appliance check`:
    `apprise_check`) also asks Apprise about each of alerts.yaml's channels."""
    errors: list[str] = []
    try:
        files = read_policy_files(config.policy, channel_check=channel_check)
    except PolicyFileErrors as e:
        errors += e.errors
        if e.categories is not None:
            errors += unmapped_sources(config, e.categories)
        return None, errors
    errors += unmapped_sources(config, files.categories)
    errors += device_problems(config, files.profiles)
    return (None if errors else files), errors


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


def alert_warnings(files: PolicyFiles) -> list[str]:
    """Where alerts.yaml leaves an alert told to no one but the dashboard's banner (docs/alerts.md). An
    unknown contact in the ladder or the rota is a mistake of the file itself (`policy_problems`)."""
    alerts, path = files.alerts, files.settings.alerts
    if not alerts.contacts:
        return [
            f"{path} names no contacts: alerts show on the staff dashboard's banner only, and no one is "
            "told by push (e-mail, ntfy, SMS) while no staff page is open; write contacts and a ladder"
        ]
    out = []
    if not alerts.ladder:
        out.append(f"{path} has contacts but no ladder: none of them is ever told of an alert")
    elif any(step.notify == ON_DUTY for step in alerts.ladder) and not (alerts.rota or alerts.out_of_hours):
        out.append(
            f"{path}: the ladder tells whoever is on duty, but there is no rota and no out_of_hours"
            " contact: that step tells no one"
        )
    if not alerts.link_base:
        out.append(f"{path} has no link_base: messages carry no link to the alert or to acknowledge it")
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
