"""`appliance lists compile` and `appliance lists match`, as a centre's admin would use them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.cli import main
from tests.appliance.list_server import ListServer, list_server


@pytest.fixture
def served() -> Iterator[ListServer]:
    """A list server on loopback; tests put bodies under paths (others get a 404)."""
    with list_server() as server:
        yield server


def centre(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "porn.hosts").write_text("0.0.0.0 porn.example\n0.0.0.0 bad..name\n0.0.0.0 cams.example\n")
    child = tmp_path / "child"
    child.mkdir()
    (child / "usage").write_text("white\n")
    (child / "domains").write_text("school.example\n")
    config = tmp_path / "appliance.yaml"
    config.write_text(
        f"""data_dir: state
lists:
  sources:
    - {{name: porn, format: hosts, category: adult, path: porn.hosts}}
    - {{name: child, format: ut1, category: child, path: child}}
{extra}"""
    )
    return config


def test_compile_reports_each_source_and_match_explains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = centre(tmp_path)
    assert main(["lists", "compile", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "porn" in out and "entries         2" in out and "skipped       1" in out
    assert "porn.hosts:2: not a host name" in out
    assert (tmp_path / "state" / "index" / "filters.idx").exists()

    assert main(["lists", "match", "www.porn.example", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "listed as blocked" in out
    assert "block adult: domain 'porn.example' from porn:1" in out

    assert main(["lists", "match", "https://school.example/maths", "--config", str(config)]) == 0
    assert "allow child: domain 'school.example' from child:1" in capsys.readouterr().out

    assert main(["lists", "match", "kittens.example", "--config", str(config)]) == 0
    assert "not on any list" in capsys.readouterr().out


def test_an_html_page_served_as_a_list_is_rejected_and_the_last_good_copy_stays(
    tmp_path: Path, served: ListServer, capsys: pytest.CaptureFixture[str]
) -> None:
    base = served.base
    config = centre(
        tmp_path, f"    - {{name: remote, format: domains, category: gambling, url: '{base}/list'}}\n"
    )
    served.bodies["/list"] = b"casino.example\npoker.example\n"
    assert main(["lists", "compile", "--config", str(config)]) == 0
    capsys.readouterr()

    served.bodies["/list"] = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
    assert main(["lists", "compile", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "STALE" in out and "an HTML page" in out and "last good copy" in out
    assert main(["lists", "match", "poker.example", "--config", str(config)]) == 0
    assert "block gambling" in capsys.readouterr().out

    del served.bodies["/list"]
    assert main(["lists", "compile", "--config", str(config)]) == 0
    assert "HTTP 404" in capsys.readouterr().out


def test_a_source_with_no_good_copy_is_rejected_and_the_rest_compiled(
    tmp_path: Path, served: ListServer, capsys: pytest.CaptureFixture[str]
) -> None:
    base = served.base
    config = centre(
        tmp_path, f"    - {{name: remote, format: domains, category: gambling, url: '{base}/bin'}}\n"
    )
    served.bodies["/bin"] = b"\x00\x01\x02\x03" * 100
    assert main(["lists", "compile", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "REJECTED" in out and "binary data" in out
    assert main(["lists", "match", "porn.example", "--config", str(config)]) == 0
    assert "block adult" in capsys.readouterr().out


def test_when_nothing_compiles_the_index_in_force_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = centre(tmp_path)
    assert main(["lists", "compile", "--config", str(config)]) == 0
    index = tmp_path / "state" / "index" / "filters.idx"
    before = index.read_bytes()
    (tmp_path / "porn.hosts").write_text("<html><body>oops</body></html>")
    (tmp_path / "child" / "domains").write_text("")
    # porn.hosts has a last good copy, so make it go away too: nothing good is left
    for cached in (tmp_path / "state" / "lists").iterdir():
        cached.unlink()
    assert main(["lists", "compile", "--config", str(config)]) == 2
    assert "left unchanged" in capsys.readouterr().err
    assert index.read_bytes() == before


def test_a_damaged_index_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = centre(tmp_path)
    assert main(["lists", "match", "a.example", "--config", str(config)]) == 2
    assert "run `appliance lists compile`" in capsys.readouterr().err
    assert main(["lists", "compile", "--config", str(config)]) == 0
    index = tmp_path / "state" / "index" / "filters.idx"
    index.write_bytes(index.read_bytes()[:-10])
    assert main(["lists", "match", "a.example", "--config", str(config)]) == 2
    assert "truncated" in capsys.readouterr().err


def test_bad_configuration_is_refused_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text("lists:\n  sources:\n    - {name: a, format: nope, category: c, path: x}\n")
    assert main(["lists", "compile", "--config", str(config)]) == 2
    assert f"{config}:3: source 'a': unknown format 'nope'" in capsys.readouterr().err


def test_many_skipped_lines_are_summed_up_by_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = ["||ads.example^"] + [f"example{i}.com##.banner" for i in range(20)] + ["||x.example^$popup"] * 3
    (tmp_path / "easy.txt").write_text("\n".join(rules) + "\n")
    config = tmp_path / "appliance.yaml"
    config.write_text(
        "lists:\n  sources:\n    - {name: easy, format: adblock, category: ads, path: easy.txt}\n"
    )
    assert main(["lists", "compile", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "skipped      23" in out
    assert "easy.txt:2: element hiding" in out
    assert "... and 18 more skipped lines" in out
    assert "20 x element hiding rule (##)" in out
    assert "3 x unsupported option $popup" in out


def test_a_download_with_no_valid_entry_does_not_replace_the_last_good_copy(
    tmp_path: Path, served: ListServer, capsys: pytest.CaptureFixture[str]
) -> None:
    base = served.base
    config = centre(
        tmp_path, f"    - {{name: remote, format: hosts, category: gambling, url: '{base}/hosts'}}\n"
    )
    served.bodies["/hosts"] = b"0.0.0.0 casino.example\n"
    assert main(["lists", "compile", "--config", str(config)]) == 0
    served.bodies["/hosts"] = b'{"error": "rate limited", "retry": 3600}\n'
    for _ in range(2):  # and again: the good copy must survive repeated bad downloads
        assert main(["lists", "compile", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert "STALE" in out and "no valid entries (" in out
    assert main(["lists", "match", "casino.example", "--config", str(config)]) == 0
    assert "block gambling" in capsys.readouterr().out
