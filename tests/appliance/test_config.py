"""The configuration file: what it accepts, and mistakes refused with file:line and a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import ConfigError, load_config
from filters.sources import Format


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "appliance.yaml"
    path.write_text(text)
    return path


def test_sources_are_read_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
data_dir: state
lists:
  fetch: {timeout_s: 5, max_mb: 10}
  sources:
    - {name: porn, format: hosts, category: adult, path: lists/porn.hosts}
    - {name: easylist, format: adblock, category: ads, url: "https://lists.example/easylist.txt"}
""",
    )
    config = load_config(path)
    assert config.data_dir == tmp_path / "state"
    assert config.index_path == tmp_path / "state" / "index" / "filters.idx"
    assert [(s.name, s.format, s.category) for s in config.sources] == [
        ("porn", Format.HOSTS, "adult"),
        ("easylist", Format.ADBLOCK, "ads"),
    ]
    assert config.sources[0].location == str(tmp_path / "lists" / "porn.hosts")
    assert config.sources[1].is_url
    assert config.fetch.timeout_s == 5 and config.fetch.max_bytes == 10 * 1024 * 1024


def test_the_embedded_demo_configuration_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("APPLIANCE_CONFIG", raising=False)
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path))
    config = load_config()
    assert config.data_dir == tmp_path
    assert {s.format for s in config.sources} == set(Format)
    for source in config.sources:
        assert Path(source.location).exists(), source


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            "lists:\n  sources:\n    - {name: a, format: hostz, category: c, path: x}\n",
            3,
            "unknown format 'hostz'",
        ),
        ("lists:\n  sources:\n    - name: a\n      format: hosts\n      path: x\n", 3, "missing 'category'"),
        (
            "lists:\n  sources:\n    - {name: a, format: hosts, category: c}\n",
            3,
            "exactly one of path or url",
        ),
        ("lists:\n  sources:\n    - {name: a, format: hosts, category: c, url: ftp://x}\n", 3, "http(s)"),
        ("lists:\n  sourcs: []\n", 2, "unknown key 'sourcs'"),
        ("data_dir: var\nlist: {}\n", 2, "unknown key 'list'"),
        ("lists:\n  sources:\n    - {name: a, format: ut1, category: c, url: 'https://x/y'}\n", 3, "folders"),
        (
            "lists:\n  sources:\n    - {name: a, format: hosts, category: c, path: x}\n"
            "    - {name: a, format: hosts, category: c, path: y}\n",
            4,
            "second source named 'a'",
        ),
        ("lists:\n  fetch:\n    timeout_s: -1\n", 3, "timeout_s"),
        ("lists: [1, 2\n", 2, "not valid YAML"),
        ("- just\n- a list\n", 1, "must be a mapping"),
        ("policy:\n  help_services: [https://www.childline.org.uk/]\n", 2, "not a domain name"),
        ("policy:\n  timezone: 3\n", 2, "non-empty text"),
        ("policy:\n  profils: x.yaml\n", 2, "did you mean 'profiles'"),
        ("data_dir: a\ndata_dir: b\n", 2, "'data_dir' appears twice"),
    ],
)
def test_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}:{line}: ")
    assert words in str(e.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")
