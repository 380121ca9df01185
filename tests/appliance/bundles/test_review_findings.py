"""What an independent review of the bundles found, each kept from coming back: the signed list of files
stays small, nothing expires unnoticed, a damaged set never stops filtering and is repaired, head office
cannot sign what it did not build, a refused bundle's lists never return, and build ships exactly what a
centre needs."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.bundles.build import build
from appliance.bundles.errors import BundleError
from appliance.bundles.repository import Repository
from appliance.bundles.sets import pointed, sets_dir
from appliance.bundles.sync import sync
from appliance.cli import main
from appliance.config import Config, ConfigError
from appliance.in_force.head_office import load_config_in_force
from appliance.in_force.live import load_live
from appliance.storage import open_index
from tests.appliance.bundles.conftest import HeadOffice


def names(config: Config, host: str) -> bool:
    return bool(open_index(load_config_in_force(Path(config.origin)).index_path).match_host(host).raw)


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


def test_a_centre_follows_refreshed_metadata(head_office: HeadOffice, centre: Callable[..., Config]) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    head_office.repo.refresh(datetime.now(UTC))
    assert sync(config, datetime.now(UTC)).message == "up to date: bundle 1 is in force"


@pytest.mark.parametrize("lost", ["bundle/bundle.yaml", "index/filters.idx"])
def test_a_damaged_set_never_stops_the_dns_filter_and_the_next_sync_repairs_it(
    head_office: HeadOffice, centre: Callable[..., Config], lost: str
) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    head_office.publish(2)
    sync(config, datetime.now(UTC))
    (sets_dir(config.data_dir) / "v2" / lost).unlink()  # a file of the set in force lost (an SD card)
    live = load_live(Path(config.origin))  # the DNS filter still starts, on the set before
    assert live.config.set_dir == sets_dir(config.data_dir) / "v1" and "v2" in (live.config.set_note or "")
    assert sync(config, datetime.now(UTC)).version == 2  # made again from head office
    assert pointed(config.data_dir, "current") == sets_dir(config.data_dir) / "v2"
    assert load_config_in_force(Path(config.origin)).set_note is None


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


def test_a_refused_bundles_list_never_stands_in_later(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    config = centre(check_dns=True)  # no DNS filter runs: every swap is rolled back
    head_office.publish(1, extra_hosts="0.0.0.0 only-in-bundle-1.example\n")
    with pytest.raises(BundleError, match="rolled back"):
        sync(config, datetime.now(UTC))
    config = centre()

    def broken_adult_list(built: Path) -> None:
        manifest = json.loads((built / "bundle.json").read_text())
        data = b"<html>oops</html>\n"
        (built / "lists" / "adult.hosts").write_bytes(data)
        import hashlib

        manifest["files"]["lists/adult.hosts"] = {
            "length": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        (built / "bundle.json").write_text(json.dumps(manifest))

    spec = head_office.source / "bundle.yaml"
    spec.write_text(spec.read_text().replace("blocked: [www.pornhub.com]", "blocked: []"))
    head_office.publish(2, spoil=broken_adult_list)
    assert sync(config, datetime.now(UTC)).version == 2
    assert not names(config, "only-in-bundle-1.example")  # bundle 1's adult list did not come back


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


def test_versions_have_one_bound_everywhere(head_office: HeadOffice, tmp_path: Path) -> None:
    code = main(
        [
            "bundle",
            "build",
            str(head_office.source),
            "--out",
            str(tmp_path / "b"),
            "--version",
            "1" + "0" * 20,
        ]
    )
    assert code == 2 and not (tmp_path / "b").exists()


def test_the_keys_never_sit_in_the_published_folder_and_one_signing_at_a_time(
    head_office: HeadOffice, tmp_path: Path
) -> None:
    with pytest.raises(BundleError, match="inside"):
        Repository.create(tmp_path / "repo", tmp_path / "repo" / "keys", datetime.now(UTC))
    with open(head_office.folder / "keys" / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(BundleError, match="another signing is under way"):
            head_office.publish(1)


def test_a_bundle_yaml_that_is_not_text_is_refused_with_its_path(
    head_office: HeadOffice, tmp_path: Path
) -> None:
    (head_office.source / "bundle.yaml").write_bytes(b"sources:\n  - \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bundle\.yaml: not UTF-8 text"):
        build(head_office.source, tmp_path / "b", 1, datetime.now(UTC))


def test_a_new_root_installed_at_the_centre_is_trusted_from_then_on(
    head_office: HeadOffice, centre: Callable[..., Config], tmp_path: Path
) -> None:
    config = centre()
    installed = tmp_path / "head-office-root.json"  # the centre's own copy, as install.sh makes it
    assert config.sync is not None
    installed.write_bytes(config.sync.trusted_root.read_bytes())
    path = Path(config.origin)
    path.write_text(path.read_text().replace(str(config.sync.trusted_root), str(installed)))
    config = load_config_in_force(path)
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    # Head office starts again (keys lost): a new repository; the centre's administrator installs its root.
    fresh = Repository.create(tmp_path / "new-repo", tmp_path / "new-keys", datetime.now(UTC))
    for item in (head_office.repo.repo / "metadata").iterdir():
        item.unlink()
    for item in fresh.metadata.iterdir():
        (head_office.repo.repo / "metadata" / item.name).write_bytes(item.read_bytes())
    head_office.repo = Repository(head_office.repo.repo, tmp_path / "new-keys")
    head_office.publish(2)
    with pytest.raises(BundleError, match="signature does not verify"):
        sync(config, datetime.now(UTC))  # not until the centre trusts the new root
    installed.write_bytes((fresh.metadata / "1.root.json").read_bytes())
    assert sync(config, datetime.now(UTC)).version == 2


def test_the_lists_report_names_the_set_as_it_is(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    report = (sets_dir(config.data_dir) / "v1" / "index" / "report.json").read_text()
    assert ".partial" not in report and "sets/v1/bundle/lists/adult.hosts" in report
