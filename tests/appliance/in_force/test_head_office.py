"""Head office's set in force is added to the configuration by `in_force.head_office`, not by
`load_config`: the file alone, then the set's lists before the centre's own, its category map unless the
file names one, and a note when `current` names a damaged set."""

from __future__ import annotations

from pathlib import Path

from appliance.bundles.sets import point, sets_dir
from appliance.config import load_config
from appliance.in_force.head_office import load_config_in_force


def centre(tmp_path: Path, policy: str = "") -> Path:
    (tmp_path / "own.hosts").write_text("0.0.0.0 own.example\n")
    path = tmp_path / "appliance.yaml"
    path.write_text(
        f"""data_dir: var
lists:
  sources:
    - {{name: own, format: hosts, category: adult, path: own.hosts}}
sync:
  url: https://head-office.example/
  trusted_root: root.json
{policy}"""
    )
    return path


def install_set(tmp_path: Path, version: int, *, whole: bool = True) -> Path:
    folder = sets_dir(tmp_path / "var") / f"v{version}"
    (folder / "bundle" / "lists").mkdir(parents=True)
    (folder / "bundle" / "lists" / "adult.hosts").write_text("0.0.0.0 adult.example\n")
    (folder / "bundle" / "policy").mkdir()
    (folder / "bundle" / "policy" / "categories.yaml").write_text("categories: {}\n")
    (folder / "bundle" / "bundle.yaml").write_text(
        "sources:\n  - {name: adult, format: hosts, category: adult, path: lists/adult.hosts}\n"
        "categories: policy/categories.yaml\n"
    )
    if whole:
        (folder / "index").mkdir()
        (folder / "index" / "filters.idx").write_bytes(b"")
    return folder


def test_load_config_reads_the_file_alone(tmp_path: Path) -> None:
    path = centre(tmp_path)
    point(tmp_path / "var", "current", install_set(tmp_path, 1))
    config = load_config(path)
    assert [s.name for s in config.sources] == ["own"]
    assert config.set_dir is None and config.set_note is None
    assert config.index_path == tmp_path / "var" / "index" / "filters.idx"


def test_the_set_in_force_adds_its_lists_first_and_its_category_map(tmp_path: Path) -> None:
    path = centre(tmp_path)
    folder = install_set(tmp_path, 1)
    point(tmp_path / "var", "current", folder)
    config = load_config_in_force(path)
    assert [s.name for s in config.sources] == ["hq.adult", "own"]
    assert [s.name for s in config.own_sources] == ["own"]
    assert config.set_dir == folder and config.set_note is None
    assert config.index_path == folder / "index" / "filters.idx"
    assert config.policy.categories == folder / "bundle" / "policy" / "categories.yaml"


def test_the_files_own_category_map_wins_over_the_sets(tmp_path: Path) -> None:
    (tmp_path / "categories.yaml").write_text("categories: {}\n")
    path = centre(tmp_path, "policy:\n  categories: categories.yaml\n")
    point(tmp_path / "var", "current", install_set(tmp_path, 1))
    assert load_config_in_force(path).policy.categories == tmp_path / "categories.yaml"


def test_a_damaged_current_set_falls_back_to_the_previous_with_a_note(tmp_path: Path) -> None:
    path = centre(tmp_path)
    point(tmp_path / "var", "previous", install_set(tmp_path, 1))
    point(tmp_path / "var", "current", install_set(tmp_path, 2, whole=False))
    config = load_config_in_force(path)
    assert config.set_dir is not None and config.set_dir.name == "v1"
    assert config.set_note == "set v2 (current) is damaged or missing"


def test_without_sync_there_is_no_set_in_force(tmp_path: Path) -> None:
    path = centre(tmp_path)
    path.write_text(path.read_text().split("sync:")[0])
    point(tmp_path / "var", "current", install_set(tmp_path, 1))
    config = load_config_in_force(path)
    assert [s.name for s in config.sources] == ["own"] and config.set_dir is None
