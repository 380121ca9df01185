"""A service's heartbeat: a file of its own touched at most every BEAT_S seconds, read back by time."""

from __future__ import annotations

import os
from pathlib import Path

from appliance.heartbeat import BEAT_S, Heartbeat, last_beats


def test_a_beat_makes_the_file_and_the_next_moves_its_time_only_after_beat_s(tmp_path: Path) -> None:
    heart = Heartbeat(tmp_path, "proxy")
    assert last_beats(tmp_path) == {}
    heart.beat(100.0)
    os.utime(heart.path, (1_000.0, 1_000.0))
    heart.beat(100.0 + BEAT_S / 2)  # too soon: the disk is not written four times a second
    assert last_beats(tmp_path) == {"proxy": 1_000.0}
    heart.beat(100.0 + BEAT_S)
    assert last_beats(tmp_path)["proxy"] > 1_000.0


def test_a_data_folder_that_cannot_be_written_never_stops_the_service(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder", encoding="utf-8")
    Heartbeat(blocked, "dns").beat(0.0)  # no exception
    assert last_beats(blocked) == {}
