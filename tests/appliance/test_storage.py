"""The compiled index on disk: replaced by rename only, read-only, the previous good one kept beside it
and served when the current one fails its checks; and what a full disk does to a compile."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.files import DiskFull, WriteFailed, write_atomically
from appliance.lists import compile_lists
from appliance.storage import INDEX_MODE, index_problem, install_index, open_index, previous_index
from filters.compile import IndexBuilder
from filters.errors import IndexFormatError
from filters.index import SourceInfo
from tests.conftest import SmallDisk


def artefact(*hosts: str, created: str = "2026-01-01T00:00:00+00:00") -> bytes:
    builder = IndexBuilder()
    sid = builder.add_source(SourceInfo("test", "adult", "domains", "test.txt"))
    builder.add_hosts(sid, [(host, line, 0) for line, host in enumerate(hosts, 1)])
    return builder.build(created=created)


OLD = artefact("old.example", created="2026-01-01T00:00:00+00:00")
NEW = artefact("old.example", "new.example", created="2026-02-01T00:00:00+00:00")


def listed(path: Path, host: str) -> bool:
    return bool(open_index(path).match_host(host))


def test_installing_an_index_keeps_the_one_it_replaces_as_the_previous_good_one(tmp_path: Path):
    path = tmp_path / "index" / "filters.idx"
    install_index(path, OLD)
    assert not previous_index(path).exists()  # the first has none
    install_index(path, NEW)
    assert previous_index(path).read_bytes() == OLD
    assert path.read_bytes() == NEW
    assert os.stat(path).st_mode & 0o777 == INDEX_MODE == 0o444
    assert sorted(p.name for p in path.parent.iterdir()) == ["filters.idx", "filters.idx.previous"]


def test_without_hard_links_the_replaced_index_is_moved_to_the_previous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "filters.idx"
    install_index(path, OLD)

    def refused(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")  # protected_hardlinks, another owner's file

    monkeypatch.setattr(os, "link", refused)
    install_index(path, NEW)
    assert (path.read_bytes(), previous_index(path).read_bytes()) == (NEW, OLD)


def test_a_damaged_index_is_never_kept_as_the_previous_good_one(tmp_path: Path):
    path = tmp_path / "filters.idx"
    install_index(path, OLD)
    install_index(path, NEW)
    os.truncate(path, 100)  # the new one damaged in place
    install_index(path, artefact("third.example"))
    assert previous_index(path).read_bytes() == OLD  # not the damaged one


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        pytest.param(lambda p: os.truncate(p, 0), "empty file", id="truncated-to-nothing"),
        pytest.param(lambda p: os.truncate(p, os.path.getsize(p) - 8), "truncated", id="truncated"),
        pytest.param(lambda p: p.write_bytes(b"<html>not an index</html>"), "bad magic", id="copied-over"),
        pytest.param(lambda p: p.write_bytes(NEW[:-1] + bytes([NEW[-1] ^ 1])), "checksum", id="one-bit"),
        pytest.param(lambda p: p.unlink(), "no compiled index yet", id="deleted"),
    ],
)
def test_a_damaged_index_is_refused_and_the_previous_good_one_served(tmp_path: Path, caplog, damage, why):
    path = tmp_path / "filters.idx"
    install_index(path, OLD)
    install_index(path, NEW)
    assert listed(path, "new.example")
    os.chmod(path, 0o644) if path.exists() else None  # as root's `cp` writes through 0444
    damage(path)
    with caplog.at_level(logging.WARNING, logger="appliance.storage"):
        served = open_index(path)
    assert served.match_host("old.example") and not served.match_host("new.example")
    assert why in caplog.text and "serving the previous good index" in caplog.text
    assert "compiled 2026-01-01T00:00:00+00:00" in caplog.text
    problem = index_problem(path)
    assert problem is not None and why in problem
    assert "serve the previous good lists (filters.idx.previous, compiled 2026-01-01" in problem


def test_without_a_usable_previous_index_the_damage_is_an_error_naming_both(tmp_path: Path):
    path = tmp_path / "filters.idx"
    install_index(path, OLD)
    with pytest.raises(IndexFormatError, match="truncated"):
        os.chmod(path, 0o644)
        os.truncate(path, 50)
        open_index(path)
    install_index(path, NEW)  # (the damaged one is not kept: still no previous)
    assert not previous_index(path).exists()
    previous_index(path).write_bytes(b"junk")
    os.chmod(path, 0o644)
    os.truncate(path, 0)
    with pytest.raises(IndexFormatError, match=r"empty file; the previous index is no better: .*bad magic"):
        open_index(path)
    problem = index_problem(path) or ""
    assert "no usable previous index: the DNS filter and the proxy cannot start" in problem


def test_a_sound_index_and_one_never_compiled_are_no_problem(tmp_path: Path):
    path = tmp_path / "filters.idx"
    assert index_problem(path) is None
    install_index(path, OLD)
    assert index_problem(path) is None


# ---- a full disk ----


def test_a_disk_gone_read_only_is_named_and_the_files_left_whole(small_disk: SmallDisk):
    """An SD card the kernel stopped writing to (remounted read-only): a plain error naming it, for the
    compile and the dashboard to show, not a traceback; the files in force stay."""
    path = small_disk.path / "index" / "filters.idx"
    install_index(path, OLD)
    profiles = small_disk.path / "profiles.yaml"
    write_atomically(profiles, b"profiles: {}\n")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk.path)], check=True)
    try:
        with pytest.raises(WriteFailed, match=r"cannot write .*filters.idx: .*the disk has become read-only"):
            install_index(path, NEW)
        with pytest.raises(WriteFailed, match=r"profiles.yaml: .*read-only.*profiles.yaml is unchanged"):
            write_atomically(profiles, b"x")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk.path)], check=True)
    assert listed(path, "old.example") and not listed(path, "new.example")
    assert profiles.read_bytes() == b"profiles: {}\n"


def test_an_index_installed_on_a_full_disk_leaves_the_index_in_force_untouched(small_disk: SmallDisk):
    path = small_disk.path / "index" / "filters.idx"
    install_index(path, OLD)
    install_index(path, NEW)
    small_disk.fill()
    full = r"filters.idx: the disk is full \(0 kB free there, [0-9.]+ [kM]B needed"
    with pytest.raises(DiskFull, match=full):
        install_index(path, artefact(*[f"h{i}.example" for i in range(2000)]))
    assert path.read_bytes() == NEW and previous_index(path).read_bytes() == OLD
    assert sorted(p.name for p in path.parent.iterdir()) == ["filters.idx", "filters.idx.previous"]
    small_disk.free()
    install_index(path, artefact("after.example"))
    assert listed(path, "after.example")


def demo_config(tmp_path: Path, data_dir: Path) -> Path:
    """The shipped demo configuration with its data in `data_dir`, compiled."""
    from importlib import resources

    shipped = resources.files("appliance") / "defaults"
    text = (shipped / "appliance.yaml").read_text(encoding="utf-8")
    text = text.replace("path: lists/", f"path: {shipped / 'lists'}/")
    config = tmp_path / "appliance.yaml"
    config.write_text(text + f"\ndata_dir: {data_dir}\n", encoding="utf-8")
    compile_lists(load_config(config), now=datetime.now(UTC))
    return config


def appliance(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_the_compile_command_on_a_full_disk_says_so_without_a_traceback(
    tmp_path: Path, small_disk: SmallDisk
):
    config = demo_config(tmp_path, small_disk.path)
    index = load_config(config).index_path
    before = index.read_bytes()
    small_disk.fill()
    done = appliance("lists", "compile", "--config", str(config))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"appliance: cannot write {index}: the disk is full (0 kB free there" in done.stderr
    assert "is unchanged: free some space and try again" in done.stderr
    assert index.read_bytes() == before


def test_check_says_the_disk_is_full(tmp_path: Path, small_disk: SmallDisk):
    config = demo_config(tmp_path, small_disk.path)
    before = appliance("check", "--config", str(config)).stdout
    assert "warning: disk nearly full: 1" in before  # 16 MB in all: less than a nightly compile may need
    assert "warning: disk full" not in before
    small_disk.fill()
    done = appliance("check", "--config", str(config))
    assert f"  warning: disk full: 0 kB free for {small_disk.path}. Filtering goes on" in done.stdout


def test_check_names_a_damaged_index_and_what_is_served_instead(tmp_path: Path):
    config = demo_config(tmp_path, tmp_path / "var")
    compile_lists(load_config(config), now=datetime.now(UTC))  # a second: the first is kept
    index = load_config(config).index_path
    os.chmod(index, 0o644)
    os.truncate(index, 0)
    done = appliance("check", "--config", str(config))
    assert done.returncode == 0 and "configuration ok" not in done.stdout  # (valid, with warnings)
    assert (
        f"  warning: the compiled lists are damaged: {index}: empty file: the DNS filter and the proxy"
        " serve the previous good lists (filters.idx.previous, compiled "
    ) in done.stdout
    assert "no usable compiled index yet" not in done.stdout
