"""A disk of the test's own that can be filled: a small tmpfs mounted by the test (root only; skipped
cleanly without), unmounted afterwards whatever happens; and the check that an event store is whole."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.store.schema import connect

SMALL_DISK_MB = 16


def assert_store_whole(path: Path) -> None:
    """The event store at `path` passes SQLite's integrity and foreign-key checks."""
    db = connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        db.close()


@dataclass
class SmallDisk:
    """A mounted tmpfs of SMALL_DISK_MB at `path`; `fill` takes every free byte, `free` gives it back."""

    path: Path

    @property
    def filler(self) -> Path:
        return self.path / "filler.bin"

    def fill(self) -> None:
        """Write until the disk says it is full (ENOSPC), down to its last page."""
        chunk = 1 << 20
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while chunk >= 512:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    chunk //= 2
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk to fill needs root")
    where = tmp_path / "small-disk"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_MB}m,mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield SmallDisk(where)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", str(where)], check=True, capture_output=True)
        if os.path.ismount(where):  # something still holds it open: detach it lazily
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
