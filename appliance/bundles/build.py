"""`appliance bundle build`: head office's folder of lists (with its bundle.yaml) checked and turned
into a bundle ready to sign: the files, and `bundle.json` naming each with its length and SHA-256, the
version, and when it was made and expires. The lists are compiled and the health names decided exactly
as every centre will, so a bundle that would fail there fails here first."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from appliance.bundles.errors import BundleError
from appliance.bundles.health import decision_problems
from appliance.bundles.spec import SPEC_NAME, BundleSpec, read_spec
from appliance.bundles.state import MANIFEST, manifest_entry
from appliance.config import Config, FetchSettings, PolicySettings
from appliance.lists import UT1_FILES, CompileError, CompileResult, compile_lists
from appliance.policy_files import read_policy_files
from filters.errors import ApplianceError
from filters.sources import Format

FORMAT = 1


@dataclass(frozen=True)
class Built:
    version: int
    folder: Path
    files: int
    compiled: CompileResult


def build(source_dir: Path, out: Path, version: int, now: datetime) -> Built:
    """Copy what `source_dir`'s bundle.yaml names into `out` (which must not exist), check that copy
    exactly as a centre will, and write its bundle.json. Raises BundleError (or ConfigError naming
    file:line) and leaves nothing at `out` if a file is missing or a link, or any list, the policy or a
    health name fails."""
    spec = read_spec(source_dir)
    if out.exists():
        raise BundleError(f"{out} exists already: give a new folder")
    links = [p for p in source_dir.rglob("*") if p.is_symlink()]
    if links:
        raise BundleError(f"{links[0]} is a link: a bundle carries plain files only (copy the file in)")
    files = _files(spec)
    staging = out.with_name(f".{out.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        listed = {}
        for relative in files:
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source_dir / relative, target)
            listed[relative] = manifest_entry(target.read_bytes())
        with tempfile.TemporaryDirectory(prefix="bundle-check-") as scratch:
            compiled = check(read_spec(staging), Path(scratch), now)  # what ships, not the source folder
        manifest = {
            "format": FORMAT,
            "version": version,
            "created": now.isoformat(timespec="seconds"),
            "expires": (now + timedelta(days=spec.expires_days)).isoformat(timespec="seconds"),
            "files": listed,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Built(version, out, len(listed), compiled)


def check(spec: BundleSpec, scratch: Path, now: datetime) -> CompileResult:
    """Compile the bundle's lists in `scratch` and decide its health names. Raises BundleError."""
    policy = PolicySettings()
    if spec.categories is not None:
        policy = replace(policy, categories=spec.categories)
    config = Config(
        origin=str(spec.folder / SPEC_NAME),
        data_dir=scratch,
        sources=spec.sources,
        fetch=FetchSettings(),
        policy=policy,
    )
    try:
        compiled = compile_lists(config, now=now)
    except CompileError as e:
        raise BundleError(f"{spec.folder}: every list failed: {e}") from e
    failed = [r for r in compiled.reports if r.rejected or not r.entries]
    if len(failed) == len(compiled.reports):
        raise BundleError(f"{spec.folder}: no list in the bundle gave an entry")
    if failed:
        why = "; ".join(f"{r.source}: {r.rejected or 'no entries'}" for r in failed)
        raise BundleError(f"{spec.folder}: lists that give nothing would be shipped to every centre: {why}")
    problems = decision_problems(config, spec.blocked, spec.allowed)
    if spec.profiles is not None:
        try:
            read_policy_files(replace(policy, profiles=spec.profiles))
        except ApplianceError as e:
            problems.append(f"the profile templates do not load: {e}")
    if problems:
        raise BundleError(f"{spec.folder}: the health check failed: {'; '.join(problems)}")
    return compiled


def _files(spec: BundleSpec) -> list[str]:
    """Every file the bundle carries, relative to its folder, sorted: bundle.yaml, each list (a UT1
    folder's known files, a phrase list's `.Include<...>` files), the policy files. Raises BundleError
    for a link, a folder where a file belongs, or anything outside the folder."""
    found = {SPEC_NAME}
    for source in spec.sources:
        location = Path(source.location)
        if source.format is Format.UT1 and source.archive is None:  # a folder (an archive is one file)
            members = [location / n for n in (*UT1_FILES, "usage") if (location / n).exists()]
        elif source.format is Format.PHRASES:
            members = _with_includes(location, spec.folder)
        else:
            members = [location]
        found |= {_inside(member, spec.folder) for member in members}
    found |= {_inside(path, spec.folder) for path in (spec.categories, spec.profiles) if path is not None}
    return sorted(found)


def _inside(path: Path, folder: Path) -> str:
    """`path` relative to `folder`, if it is a plain file inside it."""
    if path.is_symlink() or not path.is_file():
        raise BundleError(f"{path}: not a plain file (a link or a folder cannot go in a bundle)")
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError as e:
        raise BundleError(f"{path} is outside the bundle's folder {folder}") from e


_INCLUDE = re.compile(r"\.Include<([^>]+)>")


def _with_includes(path: Path, folder: Path, seen: frozenset[Path] = frozenset()) -> list[Path]:
    """A phrase list and every list it includes (e2guardian's `.Include<file>`, relative to it)."""
    if path in seen or len(seen) > 64:
        return []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise BundleError(f"{path}: cannot read: {e.strerror}") from e
    out = [path]
    for target in _INCLUDE.findall(text):
        out += _with_includes((path.parent / target.strip()), folder, seen | {path})
    return out
