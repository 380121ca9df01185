"""`appliance sync`: the centre's side. Fetch head office's metadata and the bundle for this centre's
ring through python-tuf's client (every file checked against the signed hashes, metadata against the
trusted root, older or expired metadata refused), compile it beside the set in force with the centre's
own lists, check it, swap it in atomically, check the running DNS filter took it, and roll back by itself
if not. The state (what is in force, the last success, the last error) is kept for `--status` and the
dashboard.

Steps of a swap and what a power cut at each leaves (sets.py explains the pointers): the new set is made
in `v<N>.partial/` (cut: the old set stays, the partial folder is removed next time); renamed whole to
`v<N>/`; `previous` then `current` rewritten atomically (cut before `current`: old set; after: new set,
and the next sync re-runs the pending check, rolling back if it fails)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from tuf.api import exceptions as tuf_errors
from tuf.ngclient import Updater, Urllib3Fetcher

from appliance.bundles.errors import BundleError
from appliance.bundles.health import decision_problems, dns_problems
from appliance.bundles.repository import RINGS
from appliance.bundles.sets import (
    MAX_VERSION,
    PARTIAL,
    point,
    pointed,
    set_name,
    sets_dir,
    version_of,
)
from appliance.bundles.spec import read_spec
from appliance.bundles.state import MANIFEST, SyncState, iso, manifest_entry, read_state, save_state
from appliance.config import HEAD_OFFICE_PREFIX, Config, ConfigError
from appliance.config.sync import SyncSettings
from appliance.files import fsync_path, write_atomically
from appliance.in_force.head_office import load_config_in_force
from appliance.lists import REPORT_NAME, CompileError, compile_lists

log = logging.getLogger(__name__)

ROLL_BACKS_BEFORE_REFUSAL = 3  # a set rolled back this often is refused until a newer one comes
CRASH_AT = "APPLIANCE_SYNC_CRASH_AT"  # tests: the step at which sync kills itself (SIGKILL)


def _step(name: str) -> None:
    if os.environ.get(CRASH_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Outcome:
    version: int | None  # in force afterwards
    changed: bool
    message: str


def sync(config: Config, now: datetime) -> Outcome:
    """One sync. Raises BundleError (recorded as the last error) when a bundle is refused or rolled
    back, head office cannot be reached, or it took longer than `sync.deadline_s`; what was in force
    stays in force."""
    settings = _settings(config)
    with _only_one(config.data_dir):
        config = load_config_in_force(Path(config.origin))  # the set in force now, read under the lock
        state = replace(read_state(config.data_dir), last_attempt=iso(now), unfinished=True)
        save_state(config.data_dir, state)  # a sync killed from outside (its unit's time limit) shows
        try:
            state = _recover(config, state)
            with _watchdog(settings.deadline_s) as watch:
                prepared = _prepare(config, settings, state, now, watch)
            if isinstance(prepared, _Made):
                outcome, state = _swap(config, state, prepared, now)
            else:
                outcome = prepared
        except _OutOfTime as e:
            error = str(e)
        except _Stop as e:
            state, error = e.state, str(e)
        except BundleError as e:
            error = str(e)
        else:
            done = replace(
                state, last_success=iso(now), last_error=None, last_error_at=None, unfinished=False
            )
            save_state(config.data_dir, done)
            return outcome
        save_state(
            config.data_dir, replace(state, last_error=error, last_error_at=iso(now), unfinished=False)
        )
        raise BundleError(error)


class _OutOfTime(BaseException):
    """The watchdog's alarm, raised wherever the sync is. A BaseException (as KeyboardInterrupt is), so
    that no `except Exception` or `except OSError` on the way (python-tuf has several) swallows it."""


@dataclass
class _Watch:
    """The whole-sync deadline, and what the sync is doing (for the message when it is hit)."""

    seconds: float
    ends: float  # time.monotonic()
    doing: str = "reaching head office"

    def check(self) -> None:
        """Raise _OutOfTime if the deadline has passed (between steps, where no alarm can reach)."""
        if time.monotonic() >= self.ends:
            raise self.out_of_time()

    def out_of_time(self) -> _OutOfTime:
        local = self.doing.startswith(("compiling", "checking"))
        why = (
            "this appliance is too busy or short of memory"
            if local
            else "head office's server, or the line to it, is too slow or stalled"
        )
        return _OutOfTime(
            f"gave up after {self.seconds:g} s (sync.deadline_s) while {self.doing}: {why}; nothing in "
            "force changed"
        )


@contextmanager
def _watchdog(seconds: float) -> Iterator[_Watch]:
    """Bound the body by `seconds` of wall time: SIGALRM interrupts even a read that is waiting on a
    trickling socket. Signals reach only the main thread (where `appliance sync` runs); elsewhere the
    deadline is checked between steps only."""
    watch = _Watch(seconds, time.monotonic() + seconds)
    if threading.current_thread() is not threading.main_thread():
        yield watch
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise watch.out_of_time()

    before = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield watch
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


class _Refusal(BundleError):
    """The bundle itself is bad (not the link): remembered, and not fetched again."""


class _Stop(BundleError):
    """A sync ended with `state` to record (a refusal remembered, a roll-back done)."""

    def __init__(self, message: str, state: SyncState) -> None:
        super().__init__(message)
        self.state = state


def _settings(config: Config) -> SyncSettings:
    if config.sync is None:
        raise BundleError(f"{config.origin}: no sync: section (head office's address): nothing to sync from")
    return config.sync


@contextmanager
def _only_one(data_dir: Path) -> Iterator[None]:
    folder = data_dir / "sync"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise BundleError("another sync is running") from e
        yield


def _recover(config: Config, state: SyncState) -> SyncState:
    """Tidy after a sync that was cut off: partial sets go; a swap whose check never finished is
    checked now (and rolled back if it fails)."""
    folder = sets_dir(config.data_dir)
    if folder.is_dir():
        for partial in folder.glob(f"v*{PARTIAL}"):
            shutil.rmtree(partial, ignore_errors=True)
    if state.checking is None:
        return state
    current = pointed(config.data_dir, "current")
    if current is None or version_of(current) != state.checking:
        return replace(state, checking=None)
    log.warning("set %s was swapped in but not checked (cut off): checking it now", current.name)
    return _check_or_roll_back(config, state, state.checking)


def _prepare(
    config: Config, settings: SyncSettings, state: SyncState, now: datetime, watch: _Watch
) -> Outcome | _Made:
    """What head office offers: an Outcome when there is nothing to swap, else the new set, made and
    checked in its partial folder."""
    updater = _updater(config, settings)
    rings = _json(_fetch(updater, RINGS, config.data_dir / "sync" / "rings.json", watch), RINGS)
    named = rings.get("rings")
    offered = (named if isinstance(named, dict) else {}).get(settings.ring, rings.get("default"))
    if isinstance(offered, bool) or not isinstance(offered, int) or not 0 < offered <= MAX_VERSION:
        raise BundleError(f"head office offers no bundle for ring {settings.ring!r} (rings.json: {rings})")
    # What runs is config.set_dir: the set `current` names, or the one before it if that one is damaged.
    in_force = version_of(config.set_dir) if config.set_dir else None
    if in_force is not None and offered < in_force:
        message = f"head office offers bundle {offered}, older than {in_force} in force: kept {in_force}"
        return Outcome(in_force, False, message)
    if in_force is not None and offered == in_force:
        if config.set_note:  # `current` names a damaged set; the whole one running is what head office offers
            point(config.data_dir, "current", config.set_dir)
            return Outcome(in_force, True, f"repaired: {config.set_note}; bundle {in_force} in force")
        return Outcome(in_force, False, f"up to date: bundle {in_force} is in force")
    if state.refused and str(offered) in state.refused:
        raise BundleError(
            f"bundle {offered} was refused before ({state.refused[str(offered)]}); waiting for a newer one"
        )
    try:
        return _make_set(config, updater, offered, now, watch)
    except _Refusal as e:
        raise _Stop(str(e), replace(state, refused={**(state.refused or {}), str(offered): str(e)})) from e


def _updater(config: Config, settings: SyncSettings) -> Updater:
    metadata = config.data_dir / "sync" / "metadata"
    metadata.mkdir(parents=True, exist_ok=True)
    try:
        installed = settings.trusted_root.read_bytes()
    except OSError as e:
        raise BundleError(
            f"{settings.trusted_root}: head office's root (sync.trusted_root) is unreadable: {e.strerror}"
        ) from e
    anchor = metadata / "installed-root.json"
    if not (metadata / "root.json").exists() or not anchor.exists() or anchor.read_bytes() != installed:
        # First use, or the centre's administrator installed another root on purpose (head office made a
        # new repository): trust starts again from that file, which only root can write.
        write_atomically(metadata / "root.json", installed)
        write_atomically(anchor, installed)
    try:
        updater = Updater(
            metadata_dir=str(metadata),
            metadata_base_url=f"{settings.url}/metadata/",
            target_base_url=f"{settings.url}/targets/",
            target_dir=str(config.data_dir / "sync"),
            fetcher=Urllib3Fetcher(
                socket_timeout=round(settings.timeout_s), app_user_agent="childsafe-appliance sync"
            ),
            bootstrap=None,
        )
        updater.refresh()
    except tuf_errors.DownloadLengthMismatchError as e:
        raise BundleError(
            f"head office's metadata is larger than a centre accepts ({e}): head office should publish "
            "again with a current version of the appliance, which keeps only recent bundles in it"
        ) from e
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError, OSError) as e:
        raise BundleError(_why(e)) from e
    return updater


def _fetch(updater: Updater, path: str, destination: Path, watch: _Watch) -> bytes:
    """Download one target (checked against its signed length and hash) to `destination`."""
    watch.check()
    watch.doing = f"downloading {path}"
    try:
        info = updater.get_targetinfo(path)
        if info is None:
            raise _Refusal(f"head office's signed list of files has no {path}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        # A file already here and matching its signed hash (rings.json, unchanged) is not fetched again.
        if updater.find_cached_target(info, str(destination)) is None:
            updater.download_target(info, filepath=str(destination))
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError, OSError) as e:
        raise BundleError(f"{path}: {_why(e)}") from e
    return destination.read_bytes()


def _why(e: Exception) -> str:
    """A sentence for staff about a python-tuf error."""
    if isinstance(e, tuf_errors.UnsignedMetadataError):
        return f"head office's signature does not verify (wrong key or tampered metadata): {e}"
    if isinstance(e, tuf_errors.ExpiredMetadataError):
        return f"head office's signed metadata has expired (head office: `appliance bundle refresh`): {e}"
    if isinstance(e, tuf_errors.BadVersionNumberError):
        return f"older metadata than this centre has already seen (a stale mirror or a replay): {e}"
    if isinstance(e, tuf_errors.LengthOrHashMismatchError | tuf_errors.DownloadLengthMismatchError):
        return f"a file does not match its signed length and hash (tampered or cut short): {e}"
    if isinstance(e, tuf_errors.DownloadHTTPError):
        return f"head office's server answered HTTP {e.status_code}: {e}"
    if isinstance(e, tuf_errors.DownloadError):
        return f"head office cannot be reached: {e}"
    if isinstance(e, tuf_errors.RepositoryError):
        return f"head office's server sent something that is not valid signed metadata: {e}"
    return f"{type(e).__name__}: {e}"


def _json(data: bytes, name: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as e:
        raise _Refusal(f"{name} is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise _Refusal(f"{name} is not a JSON object")
    return value


@dataclass(frozen=True)
class _Made:
    version: int
    folder: Path  # the partial folder, whole and checked


def _make_set(config: Config, updater: Updater, version: int, now: datetime, watch: _Watch) -> _Made:
    """Download, compile and check bundle `version` in its partial folder. Raises BundleError."""
    partial = sets_dir(config.data_dir) / f"{set_name(version)}{PARTIAL}"
    shutil.rmtree(partial, ignore_errors=True)
    bundle = partial / "bundle"
    manifest = _json(_fetch(updater, f"bundles/{version}/{MANIFEST}", bundle / MANIFEST, watch), MANIFEST)
    if manifest.get("version") != version:
        raise _Refusal(f"bundle {version}'s bundle.json says version {manifest.get('version')!r}")
    try:
        expires = datetime.fromisoformat(str(manifest["expires"]))
        files = dict(manifest["files"])
    except (KeyError, ValueError, TypeError) as e:
        raise _Refusal(f"bundle {version}'s bundle.json is incomplete: {e}") from e
    if expires.tzinfo is None:
        raise _Refusal(f"bundle {version}'s bundle.json gives its expiry without a time zone")
    if expires <= now:
        raise _Refusal(
            f"bundle {version} expired on {expires.isoformat()}: head office must publish a new one"
        )
    for relative, entry in files.items():
        if not isinstance(relative, str) or relative.startswith("/") or ".." in Path(relative).parts:
            raise _Refusal(f"bundle {version} names a file outside itself: {relative!r}")
        data = _fetch(updater, f"bundles/{version}/{relative}", bundle / relative, watch)
        if entry != manifest_entry(data):
            raise _Refusal(f"bundle {version}: {relative} differs from what its bundle.json says")
    _step("downloaded")
    watch.check()
    watch.doing = f"compiling bundle {version}"
    try:
        spec = read_spec(bundle, prefix=HEAD_OFFICE_PREFIX)
        new = load_config_in_force(Path(config.origin), set_dir=partial)
    except ConfigError as e:
        raise _Refusal(f"bundle {version}: {e}") from e
    try:
        compiled = compile_lists(new, now=now)
    except CompileError as e:
        raise _Refusal(f"bundle {version}: {e}") from e
    ours = [r for r in compiled.reports if r.source.startswith(HEAD_OFFICE_PREFIX)]
    if not any(r.entries and not r.rejected for r in ours):
        why = "; ".join(f"{r.source}: {r.rejected or 'no entries'}" for r in ours)
        raise _Refusal(f"bundle {version}: every list failed to parse ({why})")
    watch.check()
    watch.doing = f"checking bundle {version} before its swap"
    problems = decision_problems(new, spec.blocked, spec.allowed)
    if problems:
        raise _Refusal(f"bundle {version} failed its check before the swap: {'; '.join(problems)}")
    _step("compiled")
    return _Made(version, partial)


def _sync_tree(folder: Path) -> None:
    """Everything under `folder`, and `folder` itself, on disk before it is renamed into place."""
    for path in [*sorted(folder.rglob("*"), key=lambda p: -len(p.parts)), folder]:
        fsync_path(path)


def _swap(config: Config, state: SyncState, made: _Made, now: datetime) -> tuple[Outcome, SyncState]:
    _sync_tree(made.folder)
    final = made.folder.with_name(set_name(made.version))
    shutil.rmtree(final, ignore_errors=True)  # a set rolled back earlier, or damaged, being made again
    os.replace(made.folder, final)
    fsync_path(final.parent)
    report = final / "index" / REPORT_NAME  # its sources' paths as they are now, not the partial folder's
    if report.exists():
        write_atomically(report, report.read_bytes().replace(str(made.folder).encode(), str(final).encode()))
    _step("renamed")
    old = config.set_dir  # what runs now (never the folder just replaced: that one was not whole)
    if old is not None and old != final:
        point(config.data_dir, "previous", old)
    _step("previous")
    state = replace(state, checking=made.version)
    save_state(config.data_dir, state)
    point(config.data_dir, "current", final)
    _step("switched")
    log.info("set %s in force; checking it", final.name)
    state = _check_or_roll_back(config, state, made.version)
    _step("checked")
    _prune(config.data_dir)
    return Outcome(
        made.version, True, f"bundle {made.version} in force (was {old.name if old else 'none'})"
    ), state


def _check_or_roll_back(config: Config, state: SyncState, version: int) -> SyncState:
    """Check the set in force (version `version`) through the running DNS filter; on a problem put the
    previous set back and raise BundleError."""
    settings = _settings(config)
    now_config = load_config_in_force(Path(config.origin))
    problems: list[str] = []
    if now_config.set_dir is None or version_of(now_config.set_dir) != version:
        problems = [f"set v{version} does not load ({now_config.set_note})"]
    elif settings.check_dns:
        spec = read_spec(now_config.set_dir / "bundle")
        problems = dns_problems(now_config, spec.blocked, spec.allowed, settings.health_timeout_s)
    if not problems:
        return replace(state, checking=None)
    previous = pointed(config.data_dir, "previous")
    point(config.data_dir, "current", previous)
    tries = {**(state.rolled_back or {}), str(version): (state.rolled_back or {}).get(str(version), 0) + 1}
    why = f"bundle {version} rolled back after its check failed: {'; '.join(problems)}"
    log.error("%s; %s in force again", why, previous.name if previous else "no set")
    state = replace(state, checking=None, rolled_back=tries)
    if tries[str(version)] >= ROLL_BACKS_BEFORE_REFUSAL:
        # Not a passing hitch (a restart, a slow reload): the bundle is not tried again.
        state = replace(state, refused={**(state.refused or {}), str(version): why})
    raise _Stop(why, state)


def _prune(data_dir: Path) -> None:
    """Keep the set in force and the one before it; remove older ones."""
    keep = {pointed(data_dir, "current"), pointed(data_dir, "previous")}
    for folder in sets_dir(data_dir).glob("v*"):
        if folder.is_dir() and folder not in keep and not folder.name.endswith(PARTIAL):
            shutil.rmtree(folder, ignore_errors=True)
