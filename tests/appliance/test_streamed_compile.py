"""The compile as it runs on the full-size set: UT1 files read a line at a time, adblock lists compiled
first, the index written in parts; every answer still names its list and line, and an index of the
old format is refused with what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.cli import main
from filters.index import FORMAT_VERSION

NAMES = 30_000


def centre(tmp_path: Path) -> Path:
    big = tmp_path / "adult"
    big.mkdir()
    (big / "usage").write_text("black\n")
    # CR LF endings and a comment, as UT1 files come; entry n is on line n + 1.
    (big / "domains").write_bytes(
        b"# generated\r\n" + b"".join(b"site%d.example\r\n" % n for n in range(1, NAMES + 1))
    )
    (big / "urls").write_text("video.example/adult\n")
    (tmp_path / "ads.txt").write_text("! EasyList-like\n||ads.example^\n/banner/*\n")
    (tmp_path / "porn.hosts").write_text("0.0.0.0 site29999.example\n")
    config = tmp_path / "appliance.yaml"
    config.write_text(
        """data_dir: state
lists:
  sources:
    - {name: porn, format: hosts, category: adult, path: porn.hosts}
    - {name: ut1-adult, format: ut1, category: adult, path: adult}
    - {name: easylist, format: adblock, category: ads, path: ads.txt}
"""
    )
    return config


def test_answers_name_the_list_and_line_of_every_entry_that_matched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = centre(tmp_path)
    assert main(["lists", "compile", "--config", str(config), "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [(r["source"], r["entries"]) for r in reports] == [
        ("porn", 1),
        ("ut1-adult", NAMES + 1),
        ("easylist", 2),
    ]

    assert main(["lists", "match", "www.site29999.example", "--config", str(config), "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [(h["source"], h["line"], h["rule"]) for h in hits] == [
        ("porn", 1, "site29999.example"),
        ("ut1-adult", 30_000, "site29999.example"),
    ]
    assert main(["lists", "match", "http://video.example/adult/x", "--config", str(config)]) == 0
    assert "block adult: url 'video.example/adult' from ut1-adult:1" in capsys.readouterr().out
    assert (
        main(["lists", "match", "http://ads.example/x.js", "--type", "script", "--config", str(config)]) == 0
    )
    assert "from easylist:2" in capsys.readouterr().out
    assert main(["lists", "match", "site30001.example", "--config", str(config)]) == 0
    assert "not on any list" in capsys.readouterr().out


def test_an_index_of_the_old_format_is_refused_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = centre(tmp_path)
    assert main(["lists", "compile", "--config", str(config)]) == 0
    index = tmp_path / "state" / "index" / "filters.idx"
    data = index.read_bytes()
    index.write_bytes(data.replace(b'"version":%d' % FORMAT_VERSION, b'"version":1', 1))
    capsys.readouterr()
    assert main(["lists", "match", "site1.example", "--config", str(config)]) == 2
    assert f"compiled index format 1 is not {FORMAT_VERSION}: compile again" in capsys.readouterr().err
