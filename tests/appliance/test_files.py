"""Atomic replacement: a file replaced on a full disk is refused in words (the space needed and free)
and left whole, with no temporary file left behind."""

from __future__ import annotations

import pytest

from appliance.files import DiskFull, write_atomically
from tests.conftest import SmallDisk


def test_a_file_replaced_on_a_full_disk_is_refused_with_the_space_and_left_whole(small_disk: SmallDisk):
    path = small_disk.path / "profiles.yaml"
    write_atomically(path, b"profiles: {}\n")
    small_disk.fill()
    with pytest.raises(DiskFull, match=r"cannot write .*profiles.yaml: the disk is full \(0 kB free there"):
        write_atomically(path, b"x" * 100_000)
    assert path.read_bytes() == b"profiles: {}\n"
    assert sorted(p.name for p in small_disk.path.iterdir()) == ["filler.bin", "profiles.yaml"]
