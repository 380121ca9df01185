"""`appliance bundle init|build|sign|promote|refresh|rotate`: head office's signed filter-list bundles."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.bundles.errors import BundleError
from appliance.bundles.sets import MAX_VERSION

# The signing and syncing machinery (TUF, its cryptography) is imported by the commands that use it,
# not by every `appliance` command: the DNS filter, the dashboard and the nightly compile run through
# the same console script on a 1 GB Pi.


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `bundle init|build|sign|promote|refresh|rotate` on the `appliance` parser."""
    bundle = commands.add_parser(
        "bundle", help="head office: build, sign and publish filter-list bundles"
    ).add_subparsers(dest="bundle_command", required=True)
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--repo", type=Path, required=True, help="the repository folder to publish as static files"
    )
    where.add_argument(
        "--keys", type=Path, required=True, help="the folder of signing keys (never on a centre)"
    )

    init = bundle.add_parser("init", parents=[where], help="make the signing keys and an empty repository")
    init.set_defaults(run=_init)

    made = bundle.add_parser("build", help="check a folder of lists (with its bundle.yaml) and make a bundle")
    made.add_argument("source_dir", type=Path)
    made.add_argument("--out", type=Path, required=True, help="the new bundle's folder (must not exist)")
    made.add_argument(
        "--version", type=int, help="a whole number above every published one (default: now, UTC)"
    )
    made.set_defaults(run=_build)

    sign = bundle.add_parser("sign", parents=[where], help="sign a built bundle into the repository")
    sign.add_argument("built", type=Path, help="the folder `bundle build` made")
    sign.add_argument("--ring", action="append", default=[], help="only these rings take it (default: all)")
    sign.set_defaults(run=_sign)

    promote = bundle.add_parser("promote", parents=[where], help="let more rings take a published bundle")
    promote.add_argument("version", type=int)
    promote.add_argument("--ring", action="append", default=[], help="these rings (default: all)")
    promote.set_defaults(run=_promote)

    refresh = bundle.add_parser(
        "refresh", parents=[where], help="re-sign the snapshot and timestamp (daily: they expire in 7 days)"
    )
    refresh.set_defaults(run=_refresh)

    rotate = bundle.add_parser(
        "rotate", parents=[where], help="replace a role's key (root, targets, snapshot or timestamp)"
    )
    rotate.add_argument("role", choices=["root", "targets", "snapshot", "timestamp"])
    rotate.set_defaults(run=_rotate)


def _now() -> datetime:
    return datetime.now(UTC)


def _init(args: argparse.Namespace) -> int:
    from appliance.bundles.repository import Repository

    Repository.create(args.repo, args.keys, _now())
    root = args.repo / "metadata" / "1.root.json"
    print(f"Keys in {args.keys} (keep root.pem offline). Repository in {args.repo}.")
    print(f"Install {root} on every appliance as /etc/appliance/head-office-root.json.")
    return 0


def _build(args: argparse.Namespace) -> int:
    from appliance.bundles.build import build

    now = _now()
    version = args.version if args.version is not None else int(now.strftime("%Y%m%d%H%M"))
    if not 0 < version <= MAX_VERSION:
        raise BundleError(f"--version must be a whole number from 1 to {MAX_VERSION}")
    built = build(args.source_dir, args.out, version, now)
    entries = sum(r.entries for r in built.compiled.reports)
    skipped = sum(r.skipped for r in built.compiled.reports)
    print(
        f"bundle {built.version}: {built.files} files, {entries:,} entries "
        f"({skipped:,} lines skipped) in {args.out}"
    )
    for report in built.compiled.reports:
        for line in report.first_skipped:
            print(f"  skipped {line.origin}:{line.line}: {line.reason}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from appliance.bundles.repository import Repository

    repo = Repository(args.repo, args.keys)
    version = repo.publish(args.built, args.ring, _now())
    print(f"bundle {version} signed for {', '.join(args.ring) or 'every ring'}; rings now {repo.rings()}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from appliance.bundles.repository import Repository

    repo = Repository(args.repo, args.keys)
    repo.promote(args.version, args.ring, _now())
    print(f"rings now {repo.rings()}")
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from appliance.bundles.repository import Repository

    for line in Repository(args.repo, args.keys).refresh(_now()):
        print(line)
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from appliance.bundles.repository import Repository

    retired = Repository(args.repo, args.keys).rotate(args.role, _now())
    print(
        f"new {args.role} key in force; the old one is {retired}: destroy it once the repository is published"
    )
    return 0
