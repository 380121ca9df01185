"""The head-office sets on a centre's disk: `data_dir/sets/v<version>/` each hold a verified bundle
(`bundle/`) and the index compiled from it (`index/`). Two pointer files name the set in force
(`current`) and the one before it (`previous`); each is replaced atomically, so a power cut leaves one
whole set in force, never a mix. A set being made is `v<version>.partial/` until it is complete."""

from __future__ import annotations

import re
from pathlib import Path

from appliance.files import fsync_path, write_atomically

PARTIAL = ".partial"
_NAME = re.compile(r"v(\d{1,20})")


def sets_dir(data_dir: Path) -> Path:
    return data_dir / "sets"


def set_name(version: int) -> str:
    return f"v{version}"


def version_of(set_dir: Path) -> int:
    """The bundle version a set folder holds (from its name)."""
    found = _NAME.fullmatch(set_dir.name.removesuffix(PARTIAL))
    if not found:
        raise ValueError(f"{set_dir} is not a set folder")
    return int(found.group(1))


MAX_VERSION = 10**18 - 1  # bundle versions are 1 .. this everywhere (build, sign, sync, folder names)


def whole(set_dir: Path) -> bool:
    """Does `set_dir` hold a whole set: its bundle's description and its compiled index?"""
    return (set_dir / "bundle" / "bundle.yaml").is_file() and (set_dir / "index" / "filters.idx").is_file()


def pointed(data_dir: Path, which: str) -> Path | None:
    """The set `which` ("current" or "previous") names, if it names a whole set that is there."""
    try:
        name = (sets_dir(data_dir) / which).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    folder = sets_dir(data_dir) / name
    return folder if _NAME.fullmatch(name) and whole(folder) else None


def named(data_dir: Path, which: str) -> str | None:
    """The set name `which` names, whole or not (for messages about a damaged one)."""
    try:
        return (sets_dir(data_dir) / which).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def point(data_dir: Path, which: str, set_dir: Path | None) -> None:
    """Make `which` name `set_dir` (or nothing), atomically and durably."""
    pointer = sets_dir(data_dir) / which
    if set_dir is None:
        pointer.unlink(missing_ok=True)
        fsync_path(pointer.parent)
        return
    write_atomically(pointer, f"{set_dir.name}\n".encode("ascii"))


def pointer_path(data_dir: Path) -> Path:
    """The file whose change means another set is in force (watched by the DNS filter and the proxy)."""
    return sets_dir(data_dir) / "current"


def report_loaded(data_dir: Path, role: str, set_dir: Path | None) -> None:
    """Say which set this running `role` (the DNS filter) has loaded: after a swap, sync waits for it."""
    write_atomically(sets_dir(data_dir) / f"{role}.loaded", f"{set_dir.name if set_dir else '-'}\n".encode())


def loaded_by(data_dir: Path, role: str) -> str | None:
    """The set name the running `role` last reported loading, if any."""
    try:
        return (sets_dir(data_dir) / f"{role}.loaded").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
