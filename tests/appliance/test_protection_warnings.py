"""Protection the centre does not have is said plainly: an appliance whose lists could not be downloaded
starts on the bundled demo lists and says "protection is minimal: lists not downloaded yet" until a
compile brings its lists in; `appliance check` warns of every category a profile blocks that no list
feeds, or whose lists all gave nothing. Lists are served by a loopback server in the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import load_config
from appliance.lists import read_compile_report
from tests.appliance.list_server import ListServer, list_server

MINIMAL = "protection is minimal: lists not downloaded yet"


@pytest.fixture
def served() -> Iterator[ListServer]:
    """A list server on loopback; tests put bodies under paths (others get a 404)."""
    with list_server() as server:
        yield server


def centre(tmp_path: Path, base: str, more: str = "") -> Path:
    config = tmp_path / "appliance.yaml"
    (tmp_path / "ours.domains").write_text("our-own-block.example\n")
    config.write_text(
        f"""data_dir: state
lists:
  sources:
    - {{name: phish, format: domains, category: phishing, url: {base}/phish.txt}}
    - {{name: porn, format: hosts, category: adult, url: {base}/porn.hosts}}
    - {{name: ours, format: domains, category: gambling, path: ours.domains}}
{more}"""
    )
    return config


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_without_a_download_the_appliance_filters_on_the_bundled_lists_and_says_so_until_one_succeeds(
    tmp_path: Path, served: ListServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(centre(tmp_path, served.base))
    # Installed with no connection: nothing compiled yet.
    code, out, _ = run(capsys, "check", "--config", config)
    assert (
        code == 0 and f"warning: {MINIMAL} (nothing is compiled yet" in out and "configuration ok" not in out
    )
    # Every download fails: the bundled demo lists are compiled in their place, and the compile says so.
    code, out, err = run(capsys, "lists", "compile", "--config", config)
    assert code == 1 and "Not downloaded (2 lists):" in out and "HTTP 404" in out and MINIMAL in err
    assert "demo-adult" in out and (tmp_path / "state" / "index" / "filters.idx").exists()
    code, out, _ = run(capsys, "lists", "match", "www.pornhub.com", "--config", config)
    assert "listed as blocked" in out and "demo-adult" in out
    code, out, _ = run(capsys, "check", "--config", config)
    assert f"warning: {MINIMAL} (the bundled demo lists are in force; none of the 2 lists" in out
    # Not until the lists come in: a later compile that fails again keeps the bundled lists and the warning.
    code, out, err = run(capsys, "lists", "compile", "--config", config)
    assert code == 1 and MINIMAL in err and "demo-adult" in out
    assert MINIMAL in run(capsys, "check", "--config", config)[1]

    # The connection comes back: the lists are compiled, the demo lists drop out, the warning goes.
    served.bodies["/phish.txt"] = b"login-verify.phish.example\n"
    served.bodies["/porn.hosts"] = b"0.0.0.0 cams.example\n"
    code, out, err = run(capsys, "lists", "compile", "--config", config)
    assert code == 0 and not err and "demo-adult" not in out
    report = read_compile_report(load_config(Path(config)))
    assert report is not None and [s.report.source for s in report.sources] == ["phish", "porn", "ours"]
    code, out, _ = run(capsys, "check", "--config", config)
    assert "protection is minimal" not in out
    assert (
        "listed as blocked"
        in run(capsys, "lists", "match", "login-verify.phish.example", "--config", config)[1]
    )
    assert "not on any list" in run(capsys, "lists", "match", "www.pornhub.com", "--config", config)[1]


def test_check_warns_of_a_blocked_category_whose_lists_all_gave_nothing(
    tmp_path: Path, served: ListServer, capsys: pytest.CaptureFixture[str]
) -> None:
    base = served.base
    more = f"    - {{name: guns, format: domains, category: weapons, url: {base}/guns.txt}}\n"
    config = str(centre(tmp_path, base, more))
    served.bodies["/phish.txt"] = b"login-verify.phish.example\n"
    served.bodies["/porn.hosts"] = b"0.0.0.0 cams.example\n"
    code, out, err = run(capsys, "lists", "compile", "--config", config)
    assert code == 1 and MINIMAL not in err  # one list failed, the others came in
    code, out, _ = run(capsys, "check", "--config", config)
    assert "protection has gaps" in out and MINIMAL not in out
    assert (
        "warning: category 'weapons' (Weapons and dangerous material), which profiles guest, under-10, "
        "10-12, 13-17 block: none of its lists gave an entry in the last compile (guns: HTTP 404 Not Found)"
    ) in out
    # And the categories no list feeds at all (this centre has no drugs list, say).
    assert "warning: no list feeds category 'drugs' (Drugs and vaping)" in out
    assert "category 'adult'" not in out and "category 'phishing'" not in out


# Each category the one profile blocks, with the list that feeds it (phishing, malware and filter-bypass
# are blocked for every profile).
FED = {"adult": "cams.example", "phishing": "login-verify.phish.example", "malware": "dropper.example",
       "filter-bypass": "vpn.example", "weapons": "guns.example"}  # fmt: skip


def one_profile_centre(tmp_path: Path, categories: list[str]) -> Path:
    """A centre whose one profile blocks adult and weapons, with a list for each of `categories`."""
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(
        "profiles:\n  kids:\n    description: Children.\n    blocked_categories: [adult, weapons]\n"
    )
    sources = ""
    for category in categories:
        (tmp_path / f"{category}.domains").write_text(FED[category] + "\n")
        sources += f"    - {{name: {category}-list, format: domains, category: {category}, "
        sources += f"path: {category}.domains}}\n"
    config = tmp_path / "appliance.yaml"
    config.write_text(
        f"data_dir: state\npolicy:\n  profiles: {profiles}\n  guest_profile: kids\n"
        f"lists:\n  sources:\n{sources}"
    )
    return config


@pytest.mark.parametrize(
    ("lists", "says"),
    [
        (list(FED), "configuration ok"),
        (
            [c for c in FED if c != "weapons"],
            "warning: no list feeds category 'weapons' (Weapons and dangerous material), which every "
            "profile blocks: it blocks nothing",
        ),
        (
            [c for c in FED if c != "phishing"],
            "warning: no list feeds category 'phishing' (Phishing), which every profile blocks",
        ),
    ],
    ids=["every-category-fed", "no-weapons-list", "no-phishing-list"],
)
def test_check_is_ok_only_when_every_category_a_profile_blocks_has_a_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lists: list[str], says: str
) -> None:
    config = str(one_profile_centre(tmp_path, lists))
    assert run(capsys, "lists", "compile", "--config", config)[0] == 0
    code, out, _ = run(capsys, "check", "--config", config)
    assert code == 0 and says in out  # a gap is a warning, not an error: the appliance still runs
    if len(lists) < len(FED):
        assert "configuration ok" not in out and "protection has gaps (1 warning below)" in out
