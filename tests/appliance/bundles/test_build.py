"""Head office's side: `appliance bundle build` checks a folder as every centre will and refuses what
would fail there (links, a bundle.yaml that is not text), shipping the phrase lists its lists include;
`sign`, `promote`, `init` and `refresh` keep the repository's promises (newer versions only, only what was
built and unchanged since, keys made once, private, outside the published folder and used by one signing
at a time, files named by their hash, a signed list kept small, nothing left to expire unnoticed)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
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


def test_build_ships_included_phrase_lists_and_refuses_links(head_office: HeadOffice, tmp_path: Path) -> None:
    source = head_office.source
    (source / "lists" / "main.phrases").write_text(".Include<more.phrases>\n")
    (source / "lists" / "more.phrases").write_text("<bad words><50>\n")
    spec = source / "bundle.yaml"
    spec.write_text(
        spec.read_text().replace(
            "health:",
            "  - {name: phr, format: e2guardian-phrases, category: adult, path: lists/main.phrases}\nhealth:",
        )
    )
    built = build(source, tmp_path / "b", 1, datetime.now(UTC))
    assert "lists/more.phrases" in json.loads((built.folder / "bundle.json").read_text())["files"]
    (source / "lists" / "linked.hosts").symlink_to(source / "lists" / "adult.hosts")
    with pytest.raises(BundleError, match="is a link"):
        build(source, tmp_path / "c", 2, datetime.now(UTC))
    assert not (tmp_path / "c").exists()


def test_a_bundle_yaml_that_is_not_text_is_refused_with_its_path(
    head_office: HeadOffice, tmp_path: Path
) -> None:
    (head_office.source / "bundle.yaml").write_bytes(b"sources:\n  - \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bundle\.yaml: not UTF-8 text"):
        build(head_office.source, tmp_path / "b", 1, datetime.now(UTC))


def test_the_signed_list_keeps_only_recent_bundles_and_those_rings_point_at(head_office: HeadOffice) -> None:
    head_office.publish(1)
    head_office.publish(2, rings=("stable",))
    for version in range(3, 11):
        head_office.publish(version, rings=("canary",))
    targets = json.loads((head_office.repo.metadata / "11.targets.json").read_text())["signed"]["targets"]
    kept = sorted({int(p.split("/")[1]) for p in targets if p.startswith("bundles/")})
    assert kept == [1, 2, 8, 9, 10]  # the default, stable's, and the newest three


def test_refresh_signs_the_targets_and_the_root_again_before_they_expire(head_office: HeadOffice) -> None:
    head_office.publish(1)
    later = datetime.now(UTC) + timedelta(days=320)  # root (365 d) and targets (120 d) close to expiry
    done = head_office.repo.refresh(later)
    assert any(line.startswith("root renewed") for line in done)
    assert any(line.startswith("targets signed again") for line in done)
    os.rename(head_office.folder / "keys" / "root.pem", head_office.folder / "root.pem")  # kept offline
    warned = head_office.repo.refresh(later + timedelta(days=330))
    assert any("the root expires on" in line and "root.pem" in line for line in warned)


def test_sign_refuses_files_outside_the_bundle_or_changed_since_build(
    head_office: HeadOffice, tmp_path: Path
) -> None:
    built = build(head_office.source, tmp_path / "b", 1, datetime.now(UTC)).folder
    manifest = json.loads((built / "bundle.json").read_text())
    escaping = {**manifest, "files": {**manifest["files"], "../../keys/targets.pem": {"length": 1}}}
    (built / "bundle.json").write_text(json.dumps(escaping))
    with pytest.raises(BundleError, match="is not a plain file inside the bundle"):
        head_office.repo.publish(built, (), datetime.now(UTC))
    (built / "bundle.json").write_text(json.dumps(manifest))
    with open(built / "lists" / "adult.hosts", "a") as f:
        f.write("0.0.0.0 www.bbc.co.uk\n")
    with pytest.raises(BundleError, match="changed since `appliance bundle build`"):
        head_office.repo.publish(built, (), datetime.now(UTC))
    assert head_office.repo.rings() == {"default": None, "rings": {}}  # nothing was published


def test_the_keys_never_sit_in_the_published_folder_and_one_signing_at_a_time(
    head_office: HeadOffice, tmp_path: Path
) -> None:
    with pytest.raises(BundleError, match="inside"):
        Repository.create(tmp_path / "repo", tmp_path / "repo" / "keys", datetime.now(UTC))
    with open(head_office.folder / "keys" / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(BundleError, match="another signing is under way"):
            head_office.publish(1)
