"""The list catalogue shipped with the product: what it holds, how a configuration takes from it, the
table in docs/lists.md, and `appliance lists catalogue` / `appliance lists preset`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.checks import blocked_categories, protection_warnings
from appliance.cli import main
from appliance.config import ConfigError, PolicySettings, load_config
from appliance.config.catalogue import (
    MARK_END,
    MARK_START,
    CatalogueError,
    catalogue_markdown,
    load_catalogue,
    shipped_path,
)
from appliance.policy_files import read_policy_files
from appliance.presets import with_preset
from filters.adblock import parse_adblock
from filters.formats import parse_adblock_dns, parse_domains, parse_expressions, parse_hosts, parse_ut1_urls
from filters.phrases import parse_phrase_list
from filters.report import ReportBuilder
from filters.sources import Format
from filters.text import decode_list
from tests.catalogue_mirror import REPO, shared_copy

CATALOGUE = load_catalogue()
SHIPPED_POLICY = read_policy_files(PolicySettings())


def config_file(tmp_path: Path, lists: str, name: str = "appliance.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"data_dir: state\nlists:\n{lists}", encoding="utf-8")
    return path


# ---- what the catalogue holds ----


def test_every_entry_is_filed_under_a_shipped_category_that_takes_its_entries() -> None:
    categories = SHIPPED_POLICY.categories
    for entry in CATALOGUE.entries.values():
        found = categories.for_source(entry.name, entry.category)
        assert found is not None and found.name == entry.category, entry.name


def test_the_categories_file_names_only_catalogue_entries_as_sources() -> None:
    named = {s for c in SHIPPED_POLICY.categories.values() for s in c.sources}
    # `educational-allowlist` is kept for head office's or a centre's own educational list.
    assert named - set(CATALOGUE.entries) == {"educational-allowlist"}


@pytest.mark.parametrize("preset", ["recommended", "minimal"])
def test_a_preset_for_a_centre_feeds_every_category_a_profile_blocks(preset: str, tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, f"  preset: {preset}\n"))
    warnings = protection_warnings(config, SHIPPED_POLICY, None)
    assert not [w for w in warnings if "no list feeds" in w], warnings
    assert len(blocked_categories(SHIPPED_POLICY)) >= 15  # adult ... phishing, malware, filter-bypass


def test_the_presets_differ_in_size_as_they_say() -> None:
    size = {name: CATALOGUE.expected_entries(p.entries) for name, p in CATALOGUE.presets.items()}
    # UT1 adult alone is about 4.6 million domains; the minimal set is about a tenth of the recommended.
    assert size["recommended"] > 6_000_000 and "ut1-adult" in CATALOGUE.presets["recommended"].entries
    assert (
        size["minimal"] < size["recommended"] / 8 and "ut1-adult" not in CATALOGUE.presets["minimal"].entries
    )
    assert all(not CATALOGUE.entries[n].downloaded for n in CATALOGUE.presets["demo"].entries)


def test_a_ut1_entry_is_its_category_archive_with_the_folder_to_take() -> None:
    source = CATALOGUE.source("ut1-adult")
    assert source.location == "https://dsi.ut-capitole.fr/blacklists/download/adult.tar.gz"
    assert source.members == ("adult/",) and source.format is Format.UT1 and source.category == "adult"
    for entry in CATALOGUE.entries.values():
        if entry.provider.key == "ut1" and entry.url:
            folder = entry.url.rsplit("/", 1)[1].removesuffix(".tar.gz")
            assert entry.members == (f"{folder}/",) and entry.format is Format.UT1, entry.name
    shipped = CATALOGUE.source("demo-ut1-child")
    assert Path(shipped.location).is_dir() and (Path(shipped.location) / "usage").exists()


def test_a_mirror_keeps_each_list_under_its_entry_name_and_archive_suffix() -> None:
    assert CATALOGUE.source("ut1-adult").mirror_path == "ut1-adult.tar.gz"
    assert CATALOGUE.source("stevenblack-porn").mirror_path == "stevenblack-porn"


PARSERS = {
    Format.HOSTS: parse_hosts,
    Format.DOMAINS: parse_domains,
    Format.ADBLOCK_DNS: parse_adblock_dns,
    Format.ADBLOCK: parse_adblock,
}


def _count(entry_format: Format, copy: Path, category: str) -> tuple[int, set[str]]:
    """Entries as the compile counts them, and a phrase list's categories."""
    report = ReportBuilder("x")
    labels: set[str] = set()
    if entry_format is Format.UT1:
        for name, parse in (
            ("domains", parse_domains),
            ("urls", parse_ut1_urls),
            ("expressions", parse_expressions),
        ):
            if (copy / name).exists():
                list(
                    parse(decode_list(name, (copy / name).read_bytes()), name, report)
                )  # (parsers yield lazily)
    elif entry_format is Format.PHRASES:
        lines = decode_list(copy.name, copy.read_bytes())
        labels = {p.category for p in parse_phrase_list(lines, copy.name, report, category=category)}
    else:
        list(PARSERS[entry_format](decode_list(copy.name, copy.read_bytes()), copy.name, report))
    return report.entries, labels


@pytest.mark.skipif(not (REPO.parent / "shared" / "data").exists(), reason="needs ../shared/data")
def test_expected_sizes_are_what_the_appliance_counts_in_the_real_lists() -> None:
    checked = 0
    for entry in CATALOGUE.entries.values():
        copy = shared_copy(entry)
        if copy is None:
            assert entry.counted != "data" or entry.provider.key == "malware-filter", entry.name
            continue
        count, labels = _count(entry.format, copy, entry.category)
        if entry.counted == "data":
            assert abs(count - entry.entries) <= max(10, entry.entries // 10), (entry.name, count)
            checked += 1
        # A phrase list's own #listcategory names must lead to the entry's category, or its phrases
        # would score for nothing.
        for label in labels:
            found = SHIPPED_POLICY.categories.for_label(label)
            assert found is not None and found.name == entry.category, (entry.name, label)
    assert checked > 60


# ---- the table in docs/lists.md ----


def test_docs_show_the_catalogue_as_the_file_has_it() -> None:
    """Fails when catalogue.yaml changes and docs/lists.md does not: run
    `appliance lists catalogue --markdown` and paste its output between the markers."""
    docs = (REPO / "docs" / "lists.md").read_text(encoding="utf-8")
    assert MARK_START in docs and MARK_END in docs
    shown = MARK_START + docs.split(MARK_START, 1)[1].split(MARK_END, 1)[0] + MARK_END + "\n"
    assert shown == catalogue_markdown(CATALOGUE)


def test_the_markdown_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lists", "catalogue", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out == catalogue_markdown(CATALOGUE)
    assert "| [`ut1-adult`](https://dsi.ut-capitole.fr/blacklists/download/adult.tar.gz) | adult |" in out
    assert "≈4,600,000" in out and "CC BY-SA 4.0" in out


# ---- mistakes in the catalogue file ----


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            (
                "provider: hagezi\n    category: adult\n    format: adblock-dns",
                "provider: hagesi\n    category: adult\n    format: adblock-dns",
            ),
            "no provider 'hagesi'",
        ),
        (
            (
                "format: adblock-dns\n    url: https://raw.githubusercontent.com/hagezi/dns-blocklists/main/adblock/nsfw.txt",
                "format: adblock-dns\n    members: [x/]\n    url: https://raw.githubusercontent.com/hagezi/dns-blocklists/main/adblock/nsfw.txt",
            ),
            "members are for an archive",
        ),
        (("    entries: 96090\n", "    entries: lots\n"), "entries must be a whole number"),
        (
            ("demo-malware, demo-ut1-child", "demo-malwre, demo-ut1-child"),
            "no entry 'demo-malwre' (did you mean demo-malware?)",
        ),
        (
            (
                "    counted: bundled\n    changes: with the software\n    licence: MIT",
                "    counted: data\n    changes: with the software\n    licence: MIT",
            ),
            "counted is data or upstream for a download",
        ),
        (
            (
                "    path: lists/adult.hosts\n",
                "    path: lists/adult.hosts\n    url: https://example.org/x\n",
            ),
            "exactly one of url and path",
        ),
        (
            ("  demo-adult:\n    provider: childsafe\n", "  demo-adult:\n    provder: childsafe\n"),
            "unknown key 'provder'",
        ),
    ],
)
def test_a_mistake_in_the_catalogue_names_its_line(
    tmp_path: Path, change: tuple[str, str], words: str
) -> None:
    text = shipped_path().read_text(encoding="utf-8")
    assert change[0] in text
    bad = tmp_path / "catalogue.yaml"
    bad.write_text(text.replace(change[0], change[1], 1), encoding="utf-8")
    (tmp_path / "lists").symlink_to(shipped_path().parent / "lists")
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(bad)
    message = str(caught.value)
    assert words in message and message.startswith(f"{bad}:"), message
    line = int(message.split(":")[1])
    assert 1 < line <= len(text.splitlines()) + 2


# ---- how a configuration takes from it ----


@pytest.mark.parametrize(
    ("lists", "on", "off"),
    [
        # A preset alone: its entries, in catalogue order.
        (
            "  preset: minimal\n",
            ["stevenblack-porn", "hagezi-tif-mini", "childsafe-educational"],
            ["ut1-adult"],
        ),
        # Switches over the preset, as a mapping: on adds, off takes away.
        (
            "  preset: recommended\n"
            "  catalogue: {ut1-adult: off, hagezi-nosafesearch: on, blp-drugs: false}\n",
            ["hagezi-nosafesearch", "stevenblack-porn"],
            ["ut1-adult", "blp-drugs"],
        ),
        # A list switches its entries on; with no preset, only those.
        ("  catalogue: [easylist, easyprivacy]\n", ["easylist", "easyprivacy"], ["stevenblack-porn"]),
        # Neither key: no catalogue entry at all (a configuration of its own sources, as before).
        ("  sources: []\n", [], ["demo-adult", "easylist"]),
    ],
)
def test_a_configuration_takes_a_preset_and_switches(
    tmp_path: Path, lists: str, on: list[str], off: list[str]
) -> None:
    config = load_config(config_file(tmp_path, lists))
    names = [s.name for s in config.sources]
    for name in on:
        assert name in names and name in config.catalogue.entries, name
    for name in off:
        assert name not in names, name
    order = list(CATALOGUE.entries)
    assert names == sorted(names, key=order.index)


def test_the_centres_own_sources_add_to_the_preset(tmp_path: Path) -> None:
    (tmp_path / "ours.domains").write_text("ours.example\n")
    config = load_config(
        config_file(
            tmp_path,
            "  preset: demo\n  sources:\n"
            "    - {name: ours, format: domains, category: adult, path: ours.domains}\n",
        )
    )
    names = [s.name for s in config.sources]
    assert names[-1] == "ours" and "demo-adult" in names and len(names) == 14
    assert (
        config.catalogue.why("demo-adult") == "preset demo"
        and config.catalogue.why("ut1-adult") == "not in the preset"
    )


def test_switches_kept_in_a_file_of_their_own(tmp_path: Path) -> None:
    switches = tmp_path / "var" / "catalogue.yaml"
    path = config_file(tmp_path, f"  preset: demo\n  catalogue: {switches}\n")
    config = load_config(path)  # no file yet: no switches
    assert config.catalogue.switches_file == switches and config.catalogue.switches == {}
    switches.parent.mkdir()
    switches.write_text("# the lead's\ndemo-dating: off\nblp-vaping: on\n")
    config = load_config(path)
    assert config.catalogue.switches == {"demo-dating": False, "blp-vaping": True}
    assert "blp-vaping" in config.catalogue.entries and "demo-dating" not in config.catalogue.entries
    assert not config.catalogue.inline


@pytest.mark.parametrize(
    ("lists", "line", "words"),
    [
        (
            "  preset: recomended\n",
            3,
            "lists.preset 'recomended' is not a preset (recommended, minimal, demo)",
        ),
        ("  preset: demo\n  catalogue: {demo-adult: maybe}\n", 4, "'maybe' is not on or off"),
        ("  catalogue: 7\n", 3, "lists.catalogue is a mapping of entries to on or off"),
        (
            "  preset: demo\n  sources:\n"
            "    - {name: demo-adult, format: domains, category: adult, path: x}\n",
            5,
            "source 'demo-adult' has the name of a catalogue entry in force (preset demo)",
        ),
        ("  presets: demo\n", 3, "did you mean 'preset'?"),
    ],
)
def test_mistakes_in_the_catalogue_keys_name_file_and_line(
    tmp_path: Path, lists: str, line: int, words: str
) -> None:
    path = config_file(tmp_path, lists)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:{line}:") and words in str(caught.value), str(caught.value)


def test_a_switch_for_an_entry_the_catalogue_no_longer_has_is_ignored_and_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An update that drops an entry must not stop the filter: the switch is ignored, and said so."""
    switches = tmp_path / "switches.yaml"
    switches.write_text("demo-adult: on\nold-list: on\n")
    path = config_file(tmp_path, f"  preset: demo\n  catalogue: {switches}\n")
    config = load_config(path)
    assert config.catalogue.unknown == (f"{switches}:2: no catalogue entry 'old-list' (ignored)",)
    assert main(["check", "--config", str(path)]) == 0
    assert f"warning: {switches}:2: no catalogue entry 'old-list' (ignored)" in capsys.readouterr().out


def test_the_catalogue_command_marks_the_entries_in_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(tmp_path, "  preset: minimal\n  catalogue: {ut1-adult: on, hagezi-fake: off}\n")
    assert main(["lists", "catalogue", "--config", str(path)]) == 0
    rows = {
        line.split()[1] if line.startswith("*") else line.split()[0]: line
        for line in capsys.readouterr().out.splitlines()
        if line[:2] in ("* ", "  ") and len(line.split()) > 3
    }
    assert rows["ut1-adult"].startswith("*") and rows["ut1-adult"].endswith("switched on")
    assert rows["hagezi-fake"].startswith(" ") and rows["hagezi-fake"].endswith("switched off")
    assert rows["stevenblack-porn"].startswith("*") and rows["stevenblack-porn"].endswith("preset minimal")
    assert "~4,600,000" in rows["ut1-adult"]
    assert main(["lists", "catalogue", "--json", "--config", str(path)]) == 0
    import json

    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert entries["ut1-adult"]["mirror_path"] == "ut1-adult.tar.gz" and entries["ut1-adult"]["in_force"]
    assert entries["ut1-adult"]["presets"] == ["recommended"] and entries["ut1-adult"]["members"] == [
        "adult/"
    ]


# ---- choosing a preset in the configuration file ----

BEFORE = """# our centre
data_dir: /var/lib/appliance

lists:
  preset: recommended   # install.sh --preset NAME
  sources: []

policy:
  timezone: Europe/London
"""


@pytest.mark.parametrize(
    ("text", "preset", "mirror", "after"),
    [
        # The preset's value changes; its comment and every other line stay.
        (BEFORE, "minimal", None, BEFORE.replace("preset: recommended ", "preset: minimal ")),
        # A mirror: lists.fetch added under lists.
        (
            BEFORE,
            "recommended",
            "http://hq.example/lists",
            BEFORE.replace(
                "  sources: []\n", "  fetch:\n    mirror: http://hq.example/lists\n  sources: []\n"
            ).replace(
                "lists:\n  preset: recommended   # install.sh --preset NAME\n  fetch:",
                "lists:\n  preset: recommended   # install.sh --preset NAME\n  fetch:",
            ),
        ),
        # No preset yet: one is added as lists' first key, with its indentation.
        (
            "lists:\n    sources: []\n    fetch:\n        timeout_s: 20\n",
            "demo",
            "http://cache.lan",
            "lists:\n    preset: demo\n    sources: []\n"
            "    fetch:\n        mirror: http://cache.lan\n        timeout_s: 20\n",
        ),
        # No lists section: one is added at the end.
        ("data_dir: state\n", "minimal", None, "data_dir: state\nlists:\n  preset: minimal\n"),
        # A mirror already set is replaced.
        (
            "lists:\n  preset: demo\n  fetch:\n    mirror: http://old.example  # ours\n",
            "minimal",
            "http://new.example",
            "lists:\n  preset: minimal\n  fetch:\n    mirror: http://new.example  # ours\n",
        ),
    ],
)
def test_choosing_a_preset_rewrites_only_its_lines(
    text: str, preset: str, mirror: str | None, after: str
) -> None:
    assert with_preset(Path("appliance.yaml"), text, preset, mirror) == after


def test_a_flow_style_lists_section_is_not_rewritten() -> None:
    with pytest.raises(ConfigError, match=r"appliance\.yaml:1: write lists: as a block"):
        with_preset(Path("appliance.yaml"), "lists: {sources: []}\n", "demo")


def test_the_preset_command_changes_the_file_and_refuses_a_change_that_would_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "appliance.yaml"
    path.write_text(BEFORE.replace("/var/lib/appliance", str(tmp_path / "state")))
    path.chmod(0o640)
    assert main(["lists", "preset", "minimal", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "lists.preset is minimal" in out
        and f"{len(CATALOGUE.presets['minimal'].entries)} lists" in out
        and "appliance lists compile" in out
    )
    assert "preset: minimal   # install.sh --preset NAME" in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    if os.geteuid() == 0:  # as install.sh runs it: the file keeps its owner and group (root:appliance)
        os.chown(path, 0, 4321)
        assert main(["lists", "preset", "recommended", "--config", str(path)]) == 0
        assert path.stat().st_gid == 4321
        capsys.readouterr()
    assert main(["lists", "preset", "everything", "--config", str(path)]) == 2
    assert "no preset 'everything'" in capsys.readouterr().err
    # A source of the centre's own named like an entry of the new preset: refused, the file as it was.
    kept = path.read_text().replace(
        "sources: []", "sources:\n    - {name: demo-adult, format: domains, category: adult, path: x}"
    )
    path.write_text(kept)
    assert main(["lists", "preset", "demo", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err and "has the name of a catalogue entry" in err and ".preset-" not in err
    assert path.read_text() == kept and not list(tmp_path.glob(".appliance.yaml.preset-*"))
