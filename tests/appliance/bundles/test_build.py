"""Head office's side: `appliance bundle build` checks a folder as every centre will and refuses what
would fail there; `sign`, `promote` and `init` keep the repository's promises (newer versions only, keys
made once and private, files named by their hash)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.bundles.build import build
from appliance.bundles.errors import BundleError
from appliance.bundles.repository import Repository
from appliance.cli import main
from appliance.config import ConfigError
from tests.appliance.bundles.conftest import HeadOffice

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_a_built_bundle_names_every_file_with_its_hash(head_office: HeadOffice, tmp_path: Path) -> None:
    built = build(head_office.source, tmp_path / "out", 7, NOW)
    manifest = json.loads((built.folder / "bundle.json").read_text())
    assert manifest["version"] == 7 and manifest["expires"] == "2026-12-25T09:00:00+00:00"
    assert set(manifest["files"]) == {"bundle.yaml", "lists/adult.hosts", "lists/gambling.adblock"}
    for relative, entry in manifest["files"].items():
        data = (built.folder / relative).read_bytes()
        assert entry == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_broken_lines_are_counted_and_named_and_the_bundle_still_builds(
    head_office: HeadOffice, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open(head_office.source / "lists" / "adult.hosts", "a") as f:
        f.write("this is not a hosts line\n")
    code = main(
        ["bundle", "build", str(head_office.source), "--out", str(tmp_path / "out"), "--version", "3"]
    )
    shown = capsys.readouterr().out
    assert code == 0 and "(1 lines skipped)" in shown and "skipped adult.hosts:" in shown


def test_a_list_that_is_an_html_page_stops_the_build(head_office: HeadOffice, tmp_path: Path) -> None:
    (head_office.source / "lists" / "gambling.adblock").write_text("<!DOCTYPE html><html>Not found</html>\n")
    with pytest.raises(BundleError, match="gambling"):
        build(head_office.source, tmp_path / "out", 3, NOW)
    assert not (tmp_path / "out").exists()  # nothing half-made


def test_a_health_name_the_lists_do_not_block_stops_the_build(
    head_office: HeadOffice, tmp_path: Path
) -> None:
    spec = head_office.source / "bundle.yaml"
    spec.write_text(spec.read_text().replace("blocked: [www.pornhub.com]", "blocked: [www.bbc.co.uk]"))
    with pytest.raises(BundleError, match=r"www\.bbc\.co\.uk should be blocked for guest but is not"):
        build(head_office.source, tmp_path / "out", 3, NOW)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("expires_days: 30\nsigned_by: me\n", r"bundle\.yaml:\d+: .*signed_by"),
        ("expires_days: 999\n", r"bundle\.yaml:\d+: expires_days must be 1 to 366"),
        (
            "  - {name: outside, format: domains, category: adult, path: ../../etc/hosts}\n",
            r"bundle\.yaml:\d+: source 'outside': a bundle's lists are files inside it",
        ),
    ],
)
def test_a_mistake_in_bundle_yaml_is_refused_with_file_and_line(
    head_office: HeadOffice, tmp_path: Path, change: str, message: str
) -> None:
    spec = head_office.source / "bundle.yaml"
    text = spec.read_text()
    if change.startswith("  -"):
        text = text.replace("health:", change + "health:")
    else:
        text += change
    spec.write_text(text)
    with pytest.raises(ConfigError, match=message):
        build(head_office.source, tmp_path / "out", 3, NOW)


def test_only_a_newer_version_is_published(head_office: HeadOffice) -> None:
    head_office.publish(5)
    with pytest.raises(BundleError, match="version 4 is not newer than 5"):
        head_office.publish(4)
    with pytest.raises(BundleError, match="version 9 is not published"):
        head_office.repo.promote(9, ("stable",), NOW)


def test_keys_are_made_once_and_readable_by_their_owner_only(head_office: HeadOffice) -> None:
    keys = head_office.folder / "keys"
    assert sorted(p.name for p in keys.iterdir()) == [
        "root.pem",
        "snapshot.pem",
        "targets.pem",
        "timestamp.pem",
    ]
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in keys.iterdir())
    with pytest.raises(BundleError, match="keys are made once"):
        Repository.create(head_office.repo.repo, keys, NOW)


def test_published_files_are_named_by_their_hash_and_rings_are_signed(head_office: HeadOffice) -> None:
    head_office.publish(1)
    head_office.publish(2, rings=("canary",))
    assert head_office.repo.rings() == {"default": 1, "rings": {"canary": 2}}
    target = head_office.target("bundles/2/lists/adult.hosts")
    assert target.name == f"{hashlib.sha256(target.read_bytes()).hexdigest()}.adult.hosts"
    targets = json.loads((head_office.repo.metadata / "3.targets.json").read_text())["signed"]["targets"]
    assert (
        "rings.json" in targets and "bundles/2/bundle.json" in targets and "bundles/1/bundle.json" in targets
    )
