"""The swap, under fire: `appliance sync` killed (SIGKILL) at each of its steps leaves one whole set in
force, old or new, and the next sync finishes the job; a set the running DNS filter does not take is
rolled back by itself, and a refused bundle's lists never stand in later; a damaged set never stops the
DNS filter and the next sync repairs it; and the real DNS filter takes a new bundle while answering every
query."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from appliance.bundles.errors import BundleError
from appliance.bundles.sets import PARTIAL, loaded_by, pointed, sets_dir
from appliance.bundles.state import read_state
from appliance.bundles.sync import CRASH_AT, sync
from appliance.config import Config
from appliance.in_force.head_office import load_config_in_force
from appliance.in_force.live import load_live
from appliance.storage import open_index
from tests.appliance.bundles.conftest import HeadOffice
from tests.appliance.dns.conftest import FakeUpstream
from tests.ports import free_port

APPLIANCE = str(Path(sys.executable).parent / "appliance")


def whole_set_in_force(config: Config) -> str:
    """The set in force, checked whole: its bundle's lists load and its index opens."""
    fresh = load_config_in_force(Path(config.origin))
    assert fresh.set_dir is not None and not fresh.set_dir.name.endswith(PARTIAL)
    open_index(fresh.index_path)
    return fresh.set_dir.name


@pytest.mark.parametrize(
    ("step", "after"),
    [
        ("downloaded", "v1"),
        ("compiled", "v1"),
        ("renamed", "v1"),
        ("previous", "v1"),
        ("switched", "v2"),
        ("checked", "v2"),
    ],
)
def test_a_sync_killed_at_any_step_leaves_one_whole_set_and_the_next_finishes(
    head_office: HeadOffice, centre: Callable[..., Config], step: str, after: str
) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    head_office.publish(2, extra_hosts="0.0.0.0 newly-listed.example\n")
    killed = subprocess.run(
        [APPLIANCE, "sync", "--config", config.origin],
        env={**os.environ, CRASH_AT: step},
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr  # it really died there
    assert whole_set_in_force(config) == after
    again = subprocess.run([APPLIANCE, "sync", "--config", config.origin], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert whole_set_in_force(config) == "v2"
    assert not list(sets_dir(config.data_dir).glob(f"*{PARTIAL}"))
    assert read_state(config.data_dir).in_force == 2 and read_state(config.data_dir).checking is None


def test_a_set_the_dns_filter_does_not_take_is_rolled_back_and_after_three_tries_refused(
    head_office: HeadOffice, centre: Callable[..., Config]
) -> None:
    config = centre()
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    # From now on the check after the swap asks the DNS filter, and none is running to take the set.
    config = centre(check_dns=True)
    head_office.publish(2)
    for attempt in (1, 2, 3):  # a restart or a slow reload is a passing hitch: tried again
        with pytest.raises(
            BundleError, match="bundle 2 rolled back after its check failed: the DNS filter did not"
        ):
            sync(config, datetime.now(UTC))
        assert whole_set_in_force(config) == "v1"
        state = read_state(config.data_dir)
        assert state.in_force == 1 and "rolled back" in (state.last_error or "")
        assert state.rolled_back == {"2": attempt} and ("2" in (state.refused or {})) == (attempt == 3)
    with pytest.raises(BundleError, match="bundle 2 was refused before"):
        sync(config, datetime.now(UTC))


# ---- the real DNS filter, taking a new bundle ----


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    fake.add("www.bbc.co.uk", "A", "198.51.100.20")
    yield fake
    fake.close()


def _ask(port: int, name: str) -> str:
    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=2)
    return " ".join([dns.rcode.to_text(reply.rcode()), *(rd.to_text() for rr in reply.answer for rd in rr)])


def test_the_dns_filter_takes_a_new_bundle_without_dropping_a_query(
    head_office: HeadOffice, centre: Callable[..., Config], upstream: FakeUpstream, tmp_path: Path
) -> None:
    port = free_port()
    dns_section = f"""dns:
  listen: ["127.0.0.1:{port}"]
  upstreams: ["{upstream.address}"]
  block_page_addresses: ["192.168.50.1"]
  rate_limit: {{per_second: 100000, burst: 100000}}  # this test asks as fast as it can
"""
    head_office.publish(1)
    sync(centre(dns_section, check_dns=False), datetime.now(UTC))  # the first set, before the filter runs
    config = centre(dns_section, check_dns=True)  # from now on each swap waits for the filter
    with open(tmp_path / "dns.log", "wb") as log:
        server = subprocess.Popen([APPLIANCE, "dns", "--config", config.origin], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while loaded_by(config.data_dir, "dns") != "v1":
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "dns.log").read_text()
            time.sleep(0.1)
        assert _ask(port, "newly-listed.example").startswith("NXDOMAIN")  # the upstream knows it not
        answers: list[str] = []
        failures: list[str] = []
        stop = threading.Event()

        def keep_asking() -> None:
            while not stop.is_set():
                for name in ("www.bbc.co.uk", "www.pornhub.com", "newly-listed.example"):
                    try:
                        answers.append(f"{name} {_ask(port, name)}")
                    except dns.exception.Timeout:
                        failures.append(name)

        asking = threading.Thread(target=keep_asking)
        asking.start()
        head_office.publish(2, extra_hosts="0.0.0.0 newly-listed.example\n")
        try:
            outcome = sync(config, datetime.now(UTC))  # waits for the filter to take v2, then checks it
        finally:
            time.sleep(0.5)
            stop.set()
            asking.join()
        assert (
            outcome.version == 2 and pointed(config.data_dir, "current") == sets_dir(config.data_dir) / "v2"
        )
        assert failures == [] and len(answers) > 30  # not one query dropped across the swap
        assert {a for a in answers if a.startswith("www.bbc.co.uk ")} == {
            "www.bbc.co.uk NOERROR 198.51.100.20"
        }
        assert {a for a in answers if a.startswith("www.pornhub.com ")} == {
            "www.pornhub.com NOERROR 192.168.50.1"
        }
        newly = {a.split(" ", 1)[1] for a in answers if a.startswith("newly-listed.example ")}
        assert newly <= {"NXDOMAIN", "NOERROR 192.168.50.1"}  # the old set's answer, then the new one's
        assert _ask(port, "newly-listed.example") == "NOERROR 192.168.50.1"  # blocked now: the block page
    finally:
        server.terminate()
        server.wait(10)


def _through_proxy(port: int, url: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", url)
    response = connection.getresponse()
    return response.status, response.read().decode("utf-8", "replace")


class _Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the site"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_proxy_takes_a_new_bundle_by_itself_without_failing_a_request(
    head_office: HeadOffice, centre: Callable[..., Config], tmp_path: Path
) -> None:
    site = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    site_port = site.server_address[1]
    port = free_port()
    config = centre(
        f"proxy:\n  listen: 127.0.0.1:{port}\n  workers: 1\n  reachable_local_ports: [{site_port}]\n"
    )
    head_office.publish(1)
    sync(config, datetime.now(UTC))
    with open(tmp_path / "proxy.log", "wb") as log:
        proxy = subprocess.Popen([APPLIANCE, "proxy", "--config", config.origin], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _through_proxy(port, "http://www.pornhub.com/")
                break
            except OSError:
                assert proxy.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "proxy.log"
                ).read_text()
                time.sleep(0.3)
        assert status == 403 and "This page is blocked" in body  # head office's list, through the proxy
        status, body = _through_proxy(port, "http://newly-listed.example/")
        assert status != 403  # not listed yet: the proxy tries the site (which does not exist here)
        outcomes: list[str] = []
        stop = threading.Event()

        def keep_browsing() -> None:  # an allowed site, all through the swap
            while not stop.is_set():
                try:
                    got = _through_proxy(port, f"http://127.0.0.1:{site_port}/page")
                    outcomes.append(f"{got[0]} {got[1]}")
                except OSError as e:
                    outcomes.append(f"failed: {e}")

        browsing = threading.Thread(target=keep_browsing)
        browsing.start()
        try:
            head_office.publish(2, extra_hosts="0.0.0.0 newly-listed.example\n")
            sync(config, datetime.now(UTC))
            deadline = time.monotonic() + 15
            while (found := _through_proxy(port, "http://newly-listed.example/"))[0] != 403:
                assert time.monotonic() < deadline, found
                time.sleep(0.3)
        finally:
            stop.set()
            browsing.join()
        assert "This page is blocked" in found[1]
        assert len(outcomes) > 10 and set(outcomes) == {"200 hello from the site"}  # not one request failed
    finally:
        proxy.terminate()
        proxy.wait(30)
        site.shutdown()
        site.server_close()


def names(config: Config, host: str) -> bool:
    return bool(open_index(load_config_in_force(Path(config.origin)).index_path).match_host(host).raw)


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
