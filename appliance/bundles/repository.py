"""Head office's repository: TUF metadata (root, targets, snapshot, timestamp; python-tuf's Metadata
API) and the bundles' files as TUF targets, all plain static files under one folder:

    metadata/1.root.json ...  N.targets.json  N.snapshot.json  timestamp.json
    targets/bundles/<version>/<sha256>.<file>   targets/<sha256>.rings.json

Consistent snapshots: every file but timestamp.json is named by its version or hash and never changes,
so a web server, CDN or object store may cache all of it for ever and timestamp.json for minutes.
`rings.json` (a target, so signed like the rest) names the bundle version each ring takes.

Keys (Ed25519, PKCS#8 PEM, 0600) live in a folder of their own at head office, one per role; the root
key belongs offline. No key ever goes to a centre: a centre is installed with `1.root.json` only."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from appliance.bundles.errors import BundleError
from appliance.bundles.sets import MAX_VERSION
from appliance.bundles.state import MANIFEST, manifest_entry
from appliance.files import write_atomically

ROLES = ("root", "targets", "snapshot", "timestamp")
LIFETIME = {  # how long each role's signature holds: the timestamp is short (a frozen mirror shows)
    "root": timedelta(days=365),
    "targets": timedelta(days=120),
    "snapshot": timedelta(days=120),
    "timestamp": timedelta(days=7),
}
RINGS = "rings.json"
KEEP_NEWEST = 3  # bundles kept in the signed list besides those a ring points at


class Repository:
    """The repository folder `repo`, signed with the keys in `keys`."""

    def __init__(self, repo: Path, keys: Path) -> None:
        if keys.resolve().is_relative_to(repo.resolve()):
            raise BundleError(
                f"{keys} is inside {repo}: the keys would be published with it; keep them apart"
            )
        self.repo, self.keys = repo, keys
        self.metadata = repo / "metadata"

    # -- making it --------------------------------------------------------------------------------

    @classmethod
    def create(cls, repo: Path, keys: Path, now: datetime) -> Repository:
        """New keys and a new, empty repository. Refuses to overwrite either."""
        if (keys / "root.pem").exists() or (repo / "metadata").exists():
            raise BundleError(f"{keys} or {repo}/metadata exists already: keys are made once")
        made = cls(repo, keys)
        keys.mkdir(parents=True, exist_ok=True)
        os.chmod(keys, 0o700)
        signers = {role: CryptoSigner.generate_ed25519() for role in ROLES}
        for role, signer in signers.items():
            path = keys / f"{role}.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(signer.private_bytes)
        root = Root(expires=now + LIFETIME["root"], consistent_snapshot=True)
        for role, signer in signers.items():
            root.add_key(signer.public_key, role)
        made.metadata.mkdir(parents=True)
        (repo / "targets").mkdir(exist_ok=True)
        made._sign_and_write(Metadata(root), "root")
        made._sign_and_write(Metadata(Targets(expires=now + LIFETIME["targets"])), "targets")
        made._publish_snapshot_and_timestamp(now, targets_version=1)
        return made

    # -- publishing -------------------------------------------------------------------------------

    def publish(self, staged: Path, rings: Sequence[str], now: datetime) -> int:
        """Add the built bundle in `staged` and point `rings` at it (none: every ring and the default).
        Returns its version. Refuses a version not newer than every one published."""
        manifest = _manifest(staged)
        version = int(manifest["version"])
        files = {MANIFEST: (staged / MANIFEST).read_bytes(), **_checked_files(staged, manifest)}
        with self._lock():
            targets = self._targets()
            published = self.versions(targets.signed)
            if published and version <= max(published):
                raise BundleError(f"version {version} is not newer than {max(published)}, already published")
            for relative, data in files.items():
                path = f"bundles/{version}/{relative}"
                target = TargetFile.from_data(path, data)
                self._store_target(target, data)
                targets.signed.targets[path] = target
            self._point_rings(targets.signed, version, rings)
            self._commit_targets(targets, now)
        return version

    def promote(self, version: int, rings: Sequence[str], now: datetime) -> None:
        """Point `rings` (none: every ring and the default) at an already published `version`."""
        with self._lock():
            targets = self._targets()
            if version not in self.versions(targets.signed):
                raise BundleError(
                    f"version {version} is not published (published: {self.versions(targets.signed)})"
                )
            self._point_rings(targets.signed, version, rings)
            self._commit_targets(targets, now)

    def refresh(self, now: datetime) -> list[str]:
        """Keep the repository's signatures from expiring (run daily): a new snapshot and timestamp;
        the targets signed again when they have less than 30 days left; the root renewed when it has less
        than 60, if its key is here. Returns what it did, and a warning if the root needs its key."""
        done = []
        with self._lock():
            root = Metadata[Root].from_file(str(self.metadata / "root.json"))
            if root.signed.expires - now < timedelta(days=60):
                if (self.keys / "root.pem").exists():
                    root.signed.version += 1
                    root.signed.expires = now + LIFETIME["root"]
                    self._sign_and_write(root, "root")
                    done.append(
                        f"root renewed (version {root.signed.version}) until {root.signed.expires:%Y-%m-%d}"
                    )
                else:
                    done.append(
                        f"warning: the root expires on {root.signed.expires:%Y-%m-%d}: run `appliance bundle "
                        "refresh` once with root.pem in the keys folder, or every centre stops updating then"
                    )
            targets = self._targets()
            if targets.signed.expires - now < timedelta(days=30):
                self._commit_targets(targets, now)
                done.append(f"targets signed again until {targets.signed.expires:%Y-%m-%d}")
            else:
                self._publish_snapshot_and_timestamp(now, targets_version=targets.signed.version)
            done.append(f"snapshot and timestamp signed until {(now + LIFETIME['timestamp']):%Y-%m-%d}")
        return done

    def rotate(self, role: str, now: datetime) -> Path:
        """Replace `role`'s key (see _rotate)."""
        with self._lock():
            return self._rotate(role, now)

    def _rotate(self, role: str, now: datetime) -> Path:
        """Replace `role`'s key. A new root version (signed by the old root key, and by the new one when
        root itself is replaced) names the new key, and the role's metadata is signed anew with it;
        centres follow the chain of roots by themselves. Returns where the old key was moved, to be
        destroyed deliberately."""
        if role not in ROLES:
            raise BundleError(f"no role {role!r} (roles: {', '.join(ROLES)})")
        root = Metadata[Root].from_file(str(self.metadata / "root.json"))
        old_root = self._signer("root")
        new = CryptoSigner.generate_ed25519()
        for keyid in list(root.signed.roles[role].keyids):
            root.signed.revoke_key(keyid, role)
        root.signed.add_key(new.public_key, role)
        root.signed.version += 1
        root.signed.expires = now + LIFETIME["root"]
        root.signatures.clear()
        root.sign(old_root, append=True)  # the old root vouches for the new one
        if role == "root":
            root.sign(new, append=True)  # and the new root key signs itself
        key = self.keys / f"{role}.pem"
        fresh = key.with_name(f"{role}.pem.new")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(new.private_bytes)
        data = root.to_bytes(JSONSerializer(compact=False))
        write_atomically(self.metadata / f"{root.signed.version}.root.json", data)
        write_atomically(self.metadata / "root.json", data)
        retired = key.with_name(f"{role}.pem.replaced-{now.strftime('%Y%m%dT%H%M%S')}")
        os.replace(key, retired)
        os.replace(fresh, key)
        if role == "targets":
            self._commit_targets(self._targets(), now)
        elif role in ("snapshot", "timestamp"):
            self._publish_snapshot_and_timestamp(now, targets_version=self._targets().signed.version)
        return retired

    def rings(self) -> dict[str, Any]:
        """What rings.json says now: {"default": version, "rings": {ring: version}}."""
        targets = self._targets().signed
        if RINGS not in targets.targets:
            return {"default": None, "rings": {}}
        return _read_rings(self._target_file(targets.targets[RINGS]))

    @staticmethod
    def versions(targets: Targets) -> list[int]:
        return sorted(
            {
                int(p.split("/")[1])
                for p in targets.targets
                if p.startswith("bundles/") and p.endswith(MANIFEST)
            }
        )

    # -- the parts --------------------------------------------------------------------------------

    def _signer(self, role: str) -> CryptoSigner:
        path = self.keys / f"{role}.pem"
        try:
            key = load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as e:
            raise BundleError(f"{path}: cannot read the {role} key: {e}") from e
        return CryptoSigner(key)

    def _sign_and_write(self, md: Metadata[Any], role: str) -> None:
        md.signatures.clear()
        md.sign(self._signer(role))
        data = md.to_bytes(JSONSerializer(compact=False))
        if role == "timestamp":
            write_atomically(self.metadata / "timestamp.json", data)
            return
        write_atomically(self.metadata / f"{md.signed.version}.{role}.json", data)
        if role == "root":
            write_atomically(self.metadata / "root.json", data)

    def _latest(self, role: str) -> int:
        timestamp = Metadata[Timestamp].from_file(str(self.metadata / "timestamp.json"))
        if role == "snapshot":
            return timestamp.signed.snapshot_meta.version
        snapshot = Metadata[Snapshot].from_file(
            str(self.metadata / f"{timestamp.signed.snapshot_meta.version}.snapshot.json")
        )
        return snapshot.signed.meta["targets.json"].version

    def _targets(self) -> Metadata[Targets]:
        if not (self.metadata / "timestamp.json").exists():
            raise BundleError(f"{self.repo} is not a repository: run `appliance bundle init` first")
        return Metadata[Targets].from_file(str(self.metadata / f"{self._latest('targets')}.targets.json"))

    def _published(self, target: TargetFile) -> Path:
        """Where a target is published: named by its hash (consistent snapshots)."""
        folder, _, name = target.path.rpartition("/")
        return self.repo / "targets" / folder / f"{target.hashes['sha256']}.{name}"

    def _store_target(self, target: TargetFile, data: bytes) -> None:
        path = self._published(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            write_atomically(path, data)

    def _target_file(self, target: TargetFile) -> bytes:
        return self._published(target).read_bytes()

    def _point_rings(self, targets: Targets, version: int, rings: Sequence[str]) -> None:
        current = (
            _read_rings(self._target_file(targets.targets[RINGS]))
            if RINGS in targets.targets
            else {"default": None, "rings": {}}
        )
        if rings:
            current["rings"].update({ring: version for ring in rings})
        else:
            current = {"default": version, "rings": dict.fromkeys(current["rings"], version)}
        data = json.dumps(current, indent=1, sort_keys=True).encode("utf-8")
        target = TargetFile.from_data(RINGS, data)
        self._store_target(target, data)
        targets.targets[RINGS] = target

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One change to the repository at a time (two at once would rewrite a published file)."""
        self.keys.mkdir(parents=True, exist_ok=True)
        with open(self.keys / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise BundleError("another signing is under way on this repository") from e
            yield

    def _prune(self, targets: Targets) -> None:
        """Keep in the signed list only the bundles a ring points at and the newest few: the list must
        stay small (a centre refuses metadata over 5 MB), and older bundles are never taken again."""
        rings = _read_rings(self._target_file(targets.targets[RINGS])) if RINGS in targets.targets else {}
        wanted = {rings.get("default"), *rings.get("rings", {}).values()}
        keep = wanted | set(self.versions(targets)[-KEEP_NEWEST:])
        for path in [p for p in targets.targets if p.startswith("bundles/")]:
            if int(path.split("/")[1]) not in keep:
                del targets.targets[path]

    def _commit_targets(self, targets: Metadata[Targets], now: datetime) -> None:
        self._prune(targets.signed)
        targets.signed.version += 1
        targets.signed.expires = now + LIFETIME["targets"]
        self._sign_and_write(targets, "targets")
        self._publish_snapshot_and_timestamp(now, targets_version=targets.signed.version)

    def _publish_snapshot_and_timestamp(self, now: datetime, targets_version: int) -> None:
        # Written last, timestamp.json is the switch: a centre reading during a publish sees the old
        # or the new repository, each whole (the files it names are all there before it).
        stamp = self.metadata / "timestamp.json"
        last_snapshot = self._latest("snapshot") if stamp.exists() else 0
        last_timestamp = Metadata[Timestamp].from_file(str(stamp)).signed.version if stamp.exists() else 0
        snapshot = Snapshot(
            version=last_snapshot + 1,
            expires=now + LIFETIME["snapshot"],
            meta={"targets.json": MetaFile(version=targets_version)},
        )
        self._sign_and_write(Metadata(snapshot), "snapshot")
        timestamp = Timestamp(
            version=last_timestamp + 1,
            expires=now + LIFETIME["timestamp"],
            snapshot_meta=MetaFile(version=snapshot.version),
        )
        self._sign_and_write(Metadata(timestamp), "timestamp")


def _checked_files(staged: Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    """The bundle's files as `bundle build` listed them: each inside `staged`, a plain file (no link), of
    the length and SHA-256 its bundle.json gives. Raises BundleError for anything else."""
    files = {}
    base = staged.resolve()
    for relative, entry in manifest["files"].items():
        path = staged / str(relative)
        if (
            not isinstance(relative, str)
            or relative.startswith("/")
            or ".." in Path(relative).parts
            or not path.resolve().is_relative_to(base)
            or path.is_symlink()
            or not path.is_file()
        ):
            raise BundleError(f"{staged}: {relative!r} is not a plain file inside the bundle")
        data = path.read_bytes()
        if entry != manifest_entry(data):
            raise BundleError(f"{path}: changed since `appliance bundle build` (length or hash): build again")
        files[relative] = data
    return files


def _manifest(staged: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((staged / MANIFEST).read_text(encoding="utf-8"))
        version = manifest["version"]
        if isinstance(version, bool) or not isinstance(version, int) or not 0 < version <= MAX_VERSION:
            raise ValueError(f"version {version!r} is not a whole number from 1 to {MAX_VERSION}")
        if not isinstance(manifest["files"], dict):
            raise TypeError("files is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BundleError(f"{staged}: not a built bundle (run `appliance bundle build` first): {e}") from e
    return dict(manifest)


def _read_rings(data: bytes) -> dict[str, Any]:
    try:
        rings = json.loads(data)
        named = rings.get("rings") or {}
        if not isinstance(named, dict):
            raise TypeError("rings is not a mapping")
    except (ValueError, TypeError, AttributeError) as e:
        raise BundleError(f"the repository's rings.json is damaged ({e}): restore the repository") from e
    return {"default": rings.get("default"), "rings": dict(named)}


def copy_root(repo: Path, destination: Path) -> None:
    """The repository's first root, to install on a centre as its trust anchor."""
    shutil.copyfile(repo / "metadata" / "1.root.json", destination)
