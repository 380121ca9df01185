"""`appliance bundle build`: head office's folder of lists (with its bundle.yaml) checked and turned
into a bundle ready to sign: the files, and `bundle.json` naming each with its length and SHA-256, the
version, and when it was made and expires. The lists are compiled and the health names decided exactly
as every centre will, so a bundle that would fail there fails here first."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from appliance.bundles.errors import BundleError
from appliance.bundles.health import decision_problems
from appliance.bundles.spec import SPEC_NAME, BundleSpec, read_spec
from appliance.bundles.state import MANIFEST
from appliance.config import Config, FetchSettings, PolicySettings
from appliance.lists import CompileError, CompileResult, compile_lists
from appliance.policy_files import read_policy_files
from filters.errors import ApplianceError

FORMAT = 1


@dataclass(frozen=True)
class Built:
    version: int
    folder: Path
    files: int
    compiled: CompileResult


def build(source_dir: Path, out: Path, version: int, now: datetime) -> Built:
    """Check `source_dir` and write the bundle to `out` (which must not exist). Raises BundleError (or
    ConfigError naming file:line) and writes nothing if any list, the policy or a health name fails."""
    spec = read_spec(source_dir)
    if out.exists():
        raise BundleError(f"{out} exists already: give a new folder")
    with tempfile.TemporaryDirectory(prefix="bundle-check-") as scratch:
        compiled = check(spec, Path(scratch), now)
    files = _files(spec)
    out.mkdir(parents=True)
    listed = {}
    for relative in files:
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source_dir / relative, target)
        data = target.read_bytes()
        listed[relative] = {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {
        "format": FORMAT,
        "version": version,
        "created": now.isoformat(timespec="seconds"),
        "expires": (now + timedelta(days=spec.expires_days)).isoformat(timespec="seconds"),
        "files": listed,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
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
    """Every file the bundle carries, relative to its folder, sorted."""
    found = {SPEC_NAME}
    for path in [*(Path(s.location) for s in spec.sources), spec.categories, spec.profiles]:
        if path is None:
            continue
        members = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        found |= {str(p.resolve().relative_to(spec.folder.resolve())) for p in members}
    return sorted(found)
