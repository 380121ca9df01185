"""`appliance sync` against head office's repository served over HTTP: a good bundle goes in force with
the centre's own lists; each bad input is refused with a clear message, nothing in force changes, and the
state shows the error; rings let canary centres go first; centres follow refreshed metadata and trust a
new root once it is installed; the set's lists report names the set as it is."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.bundles.errors import BundleError
from appliance.bundles.repository import Repository
from appliance.bundles.sets import pointed, sets_dir
from appliance.bundles.state import read_state
from appliance.bundles.sync import sync
from appliance.cli import main
from appliance.config import Config
from appliance.in_force.head_office import load_config_in_force
from appliance.storage import open_index
from tests.appliance.bundles.conftest import HeadOffice


def verdict(config: Config, host: str) -> bool:
    """Do the lists in force name `host`?"""
    fresh = load_config_in_force(Path(config.origin))
    return bool(open_index(fresh.index_path).match_host(host).raw)


def in_force(config: Config) -> tuple[str | None, str]:
    """The set in force and a digest of its index: what must not change when a bundle is refused."""
    current = pointed(config.data_dir, "current")
    if current is None:
        return None, ""
    return current.name, hashlib.sha256((current / "index" / "filters.idx").read_bytes()).hexdigest()


def refused(config: Config, head_office: HeadOffice, match: str) -> str:
    before = in_force(config)
    with pytest.raises(BundleError, match=match) as caught:
        sync(config, datetime.now(UTC))
    assert in_force(config) == before  # nothing changed
    state = read_state(config.data_dir)
    assert state.last_error == str(caught.value) and state.last_error_at
    return str(caught.value)


def test_a_centre_takes_the_signed_bundle_with_its_own_lists(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    head_office.publish(1)
    config = centre()
    outcome = sync(config, datetime.now(UTC))
    assert outcome.changed and outcome.version == 1
    assert verdict(config, "www.pornhub.com")  # head office's list
    assert verdict(config, "blocked-by-the-centre.example")  # the centre's own list, compiled in
    assert sync(config, datetime.now(UTC)).message == "up to date: bundle 1 is in force"
    state = read_state(config.data_dir)
    assert state.in_force == 1 and state.last_success and state.last_error is None


def test_a_newer_bundle_replaces_it_keeping_the_one_before_and_the_centres_lists(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    head_office.publish(2, extra_hosts="0.0.0.0 newly-listed.example\n")
    assert not verdict(config, "newly-listed.example")
    assert sync(config, datetime.now(UTC)).version == 2
    assert verdict(config, "newly-listed.example") and verdict(config, "blocked-by-the-centre.example")
    head_office.publish(3)
    sync(config, datetime.now(UTC))
    kept = sorted(p.name for p in sets_dir(config.data_dir).glob("v*"))
    assert kept == ["v2", "v3"]  # the one in force and the one before it
    assert pointed(config.data_dir, "previous") == sets_dir(config.data_dir) / "v2"


def test_rings_let_canary_centres_go_first(head_office: HeadOffice, centre: Callable[..., Config]) -> None:
    head_office.publish(1)
    head_office.publish(2, rings=("canary",))
    stable = centre()
    assert sync(stable, datetime.now(UTC)).version == 1
    canary = centre(ring="canary")  # the same centre, moved to the canary ring
    assert sync(canary, datetime.now(UTC)).version == 2
    head_office.repo.promote(2, (), datetime.now(UTC))  # every ring now
    shutil.rmtree(stable.data_dir)
    assert sync(centre(), datetime.now(UTC)).version == 2


def test_an_older_bundle_offered_is_never_taken(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    head_office.publish(1)
    head_office.publish(2, rings=("canary",))
    config = centre(ring="canary")
    sync(config, datetime.now(UTC))
    head_office.repo.promote(1, ("canary",), datetime.now(UTC))  # head office points canary back at 1
    outcome = sync(config, datetime.now(UTC))
    assert outcome.version == 2 and "older than 2 in force: kept 2" in outcome.message


def test_a_tampered_file_is_refused(head_office: HeadOffice, centre: Callable[..., Config]) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    head_office.publish(2)
    with open(head_office.target("bundles/2/lists/adult.hosts"), "a") as f:
        f.write("0.0.0.0 www.bbc.co.uk\n")  # someone on the web host
    refused(config, head_office, "does not match its signed length and hash")


def test_a_truncated_download_is_refused(head_office: HeadOffice, centre: Callable[..., Config]) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    head_office.publish(2)
    target = head_office.target("bundles/2/lists/adult.hosts")
    target.write_bytes(target.read_bytes()[:40])
    refused(config, head_office, "signed length and hash")


def test_metadata_signed_by_another_key_is_refused(
    head_office: HeadOffice, centre: Callable[..., Config], tmp_path: Path
) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    # Someone with the web host but not the keys signs a timestamp with keys of their own.
    fake = Repository.create(tmp_path / "fake-repo", tmp_path / "fake-keys", datetime.now(UTC))
    head_office.publish(2)
    forged = (fake.metadata / "timestamp.json").read_bytes()
    head_office.misbehaving.answers["/metadata/timestamp.json"] = (200, forged)
    refused(config, head_office, "signature does not verify")


def test_expired_metadata_is_refused(head_office: HeadOffice, centre: Callable[..., Config]) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    head_office.repo.refresh(datetime.now(UTC) - timedelta(days=8))  # a mirror frozen for 8 days
    refused(config, head_office, "expired")


def test_an_older_timestamp_replayed_is_refused(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    config = centre()
    head_office.publish(1)
    old = (head_office.repo.metadata / "timestamp.json").read_bytes()
    head_office.publish(2)
    sync(config, datetime.now(UTC))
    head_office.misbehaving.answers["/metadata/timestamp.json"] = (200, old)
    refused(config, head_office, "older metadata than this centre has already seen")


def test_an_html_page_instead_of_the_metadata_is_refused(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    head_office.publish(2)
    page = b"<!DOCTYPE html><html><body>Hotel Wi-Fi: please sign in</body></html>"
    head_office.misbehaving.answers["/metadata/timestamp.json"] = (200, page)
    refused(config, head_office, "not valid signed metadata")


def test_head_office_unreachable_is_an_error_that_changes_nothing(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    head_office.misbehaving.answers["/metadata/timestamp.json"] = (503, b"down for maintenance")
    refused(config, head_office, "HTTP 503")


def test_a_bundle_whose_lists_all_fail_is_refused_and_remembered(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))

    def html_lists(built: Path) -> None:  # signed as they are (bundle.json too): head office's own mistake
        manifest = json.loads((built / "bundle.json").read_text())
        for name in ("adult.hosts", "gambling.adblock"):
            data = b"<html><body>404 Not Found</body></html>\n"
            (built / "lists" / name).write_bytes(data)
            manifest["files"][f"lists/{name}"] = {
                "length": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        (built / "bundle.json").write_text(json.dumps(manifest))

    head_office.publish(2, spoil=html_lists)
    message = refused(config, head_office, "every list failed")
    assert read_state(config.data_dir).refused == {"2": message}
    # Not fetched again: the next sync says why and waits for a newer one.
    with pytest.raises(BundleError, match="was refused before"):
        sync(config, datetime.now(UTC))
    head_office.publish(3)
    assert sync(config, datetime.now(UTC)).version == 3


def test_an_expired_bundle_is_refused(head_office: HeadOffice, centre: Callable[..., Config]) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    head_office.publish(2, now=datetime.now(UTC) - timedelta(days=31))  # built 31 days ago, for 30
    refused(config, head_office, "bundle 2 expired on")


def test_the_status_command_shows_what_is_in_force_and_the_last_error(
    head_office: HeadOffice, centre: Callable[..., Config], capsys: pytest.CaptureFixture[str]
) -> None:
    config = centre()
    head_office.publish(1)
    assert main(["sync", "--config", config.origin]) == 0
    head_office.misbehaving.answers["/metadata/timestamp.json"] = (404, b"<html>Not found</html>")
    assert main(["sync", "--config", config.origin]) == 2
    capsys.readouterr()
    assert main(["sync", "--status", "--config", config.origin]) == 0
    shown = capsys.readouterr().out
    assert "in force: bundle 1" in shown and "last error" in shown and "HTTP 404" in shown


def test_the_state_file_is_plain_json(head_office: HeadOffice, centre: Callable[..., Config]) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    state = json.loads((config.data_dir / "sync" / "state.json").read_text())
    assert state["in_force"] == 1 and state["checking"] is None


@pytest.mark.parametrize("role", ["timestamp", "targets", "root"])
def test_a_replaced_key_is_followed_by_centres_and_the_old_one_is_refused(
    head_office: HeadOffice, centre: Callable[..., Config], role: str
) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    retired = head_office.repo.rotate(role, datetime.now(UTC))
    assert oct((head_office.folder / "keys" / f"{role}.pem").stat().st_mode & 0o777) == "0o600"
    head_office.publish(2)
    assert sync(config, datetime.now(UTC)).version == 2  # through 2.root.json, by itself
    if role == "root":
        return
    # Whoever kept the old key cannot sign for centres any more.
    shutil.copy(retired, head_office.folder / "keys" / f"{role}.pem")
    head_office.publish(3)
    refused(config, head_office, "signature does not verify")


def test_a_centre_follows_refreshed_metadata(head_office: HeadOffice, centre: Callable[..., Config]) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    head_office.repo.refresh(datetime.now(UTC))
    assert sync(config, datetime.now(UTC)).message == "up to date: bundle 1 is in force"


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
