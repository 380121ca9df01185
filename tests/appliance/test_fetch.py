"""Downloads that spare a metered link, as conversations with a list server started by the test: a list
not changed costs a 304 and no body; a passing failure is tried again, a refusal is not; a mirror is
asked first; each source's download is summed up in the compile report, the CLI and report.json."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import ConfigError, load_config
from appliance.lists import CompileResult, compile_lists, read_compile_report
from appliance.storage import open_index
from filters.report import FetchOutcome, FetchSummary
from tests.appliance.list_server import ListServer, etag_of, list_server, tar_gz

HOSTS = b"0.0.0.0 casino.example\n0.0.0.0 poker.example\n"
FAST = "  fetch: {backoff_s: 0.01}\n"


@pytest.fixture
def server() -> Iterator[ListServer]:
    with list_server() as state:
        yield state


def centre(
    tmp_path: Path, server: ListServer, path: str = "/hosts", fetch: str = FAST, extra: str = ""
) -> Path:
    members = ", members: [hosts]" if path.endswith(".tar.gz") else ""
    config = tmp_path / "appliance.yaml"
    config.write_text(
        f"data_dir: state\nlists:\n{fetch}  sources:\n"
        f"    - {{name: gambling, format: hosts, category: gambling, url: '{server.url(path)}'{members}}}\n"
        f"{extra}"
    )
    return config


def compile_(config: Path) -> CompileResult:
    return compile_lists(load_config(config), now=datetime.now(UTC))


def fetch_of(result: CompileResult, name: str = "gambling") -> FetchSummary:
    summary = next(r for r in result.reports if r.source == name).fetch
    assert summary is not None
    return summary


def blocked(config: Path, host: str) -> bool:
    return open_index(load_config(config).index_path).match_host(host).blocking


# ---- conditional requests ----


@pytest.mark.parametrize("path", ["/hosts", "/hosts.tar.gz"])
def test_an_unchanged_list_costs_a_304_and_no_body(tmp_path: Path, server: ListServer, path: str) -> None:
    server.bodies[path] = tar_gz({"hosts": HOSTS}) if path.endswith(".tar.gz") else HOSTS
    config = centre(tmp_path, server, path)
    first = fetch_of(compile_(config))
    assert (first.outcome, first.attempts, first.bytes_fetched) == (
        FetchOutcome.UPDATED,
        1,
        len(server.bodies[path]),
    )
    copy = tmp_path / "state" / "lists" / "gambling"
    written = copy.stat().st_mtime_ns

    second = fetch_of(compile_(config))
    asked = server.seen[-1]
    assert asked.headers["if-none-match"] == etag_of(server.bodies[path])
    assert asked.status == 304 and asked.body_bytes == 0
    assert (second.outcome, second.bytes_fetched, second.from_mirror) == (FetchOutcome.UNCHANGED, 0, False)
    assert blocked(config, "poker.example")  # the copy kept is compiled again
    assert copy.stat().st_mtime_ns == written  # and not written again (SD-card wear)


def test_the_first_request_asks_unconditionally_and_the_next_names_the_etag(
    tmp_path: Path, server: ListServer
) -> None:
    server.bodies["/hosts"] = HOSTS
    config = centre(tmp_path, server)
    compile_(config)
    compile_(config)
    first, second = server.requests_for("/hosts")
    assert "if-none-match" not in first.headers and "if-modified-since" not in first.headers
    etag = json.loads((tmp_path / "state" / "lists" / ".fetch" / "gambling.json").read_text())["etag"]
    assert second.headers["if-none-match"] == etag and etag.startswith('"')


def test_a_server_that_gives_only_a_date_is_asked_if_modified_since(
    tmp_path: Path, server: ListServer
) -> None:
    server.bodies["/hosts"] = HOSTS
    server.no_etag.add("/hosts")
    server.last_modified["/hosts"] = "Sat, 01 Aug 2026 00:00:00 GMT"
    config = centre(tmp_path, server)
    compile_(config)
    assert fetch_of(compile_(config)).outcome is FetchOutcome.UNCHANGED
    last = server.seen[-1]
    assert last.headers["if-modified-since"] == "Sat, 01 Aug 2026 00:00:00 GMT" and last.status == 304


def test_a_changed_list_is_downloaded_and_replaces_the_copy(tmp_path: Path, server: ListServer) -> None:
    server.bodies["/hosts"] = HOSTS
    config = centre(tmp_path, server)
    compile_(config)
    server.bodies["/hosts"] = b"0.0.0.0 roulette.example\n"
    summary = fetch_of(compile_(config))
    assert server.seen[-1].status == 200 and "if-none-match" in server.seen[-1].headers
    assert summary.outcome is FetchOutcome.UPDATED and summary.bytes_fetched == 25
    assert blocked(config, "roulette.example") and not blocked(config, "poker.example")


def test_the_same_bytes_again_from_a_server_without_validators_count_as_unchanged(
    tmp_path: Path, server: ListServer
) -> None:
    server.bodies["/hosts"] = HOSTS
    server.no_etag.add("/hosts")
    config = centre(tmp_path, server)
    compile_(config)
    summary = fetch_of(compile_(config))
    assert "if-none-match" not in server.seen[-1].headers and server.seen[-1].status == 200
    assert summary.outcome is FetchOutcome.UNCHANGED and summary.bytes_fetched == len(HOSTS)


def test_a_refused_download_never_lends_its_etag_to_the_copy(tmp_path: Path, server: ListServer) -> None:
    server.bodies["/hosts"] = HOSTS
    config = centre(tmp_path, server)
    compile_(config)
    server.bodies["/hosts"] = b"<html><body>Sign in to the hotel Wi-Fi</body></html>"
    assert fetch_of(compile_(config)).outcome is FetchOutcome.FAILED
    # asked again with the good copy's ETag, not the page's: so the page comes again, and is refused again
    assert fetch_of(compile_(config)).outcome is FetchOutcome.FAILED
    assert server.seen[-1].headers["if-none-match"] == etag_of(HOSTS) and server.seen[-1].status == 200
    assert blocked(config, "poker.example")


def test_a_copy_that_the_server_calls_current_but_is_damaged_is_fetched_whole(
    tmp_path: Path, server: ListServer
) -> None:
    server.bodies["/hosts.tar.gz"] = tar_gz({"hosts": HOSTS})
    config = centre(tmp_path, server, "/hosts.tar.gz")
    compile_(config)
    copy = tmp_path / "state" / "lists" / "gambling"
    data = copy.read_bytes()
    copy.write_bytes(data[:-8] + b"\x00" * 8)  # same size (validators still match), broken checksum
    summary = fetch_of(compile_(config))
    assert [s.status for s in server.seen] == [200, 304, 200]
    assert summary.outcome is FetchOutcome.UPDATED and copy.read_bytes() == data


# ---- retries, refusals, caps ----


def test_a_503_is_tried_again_after_a_pause_then_the_list_comes(tmp_path: Path, server: ListServer) -> None:
    server.bodies["/hosts"] = HOSTS
    server.failures["/hosts"] = [503, 503]
    config = centre(tmp_path, server)
    summary = fetch_of(compile_(config))
    assert [s.status for s in server.seen] == [503, 503, 200]
    assert summary.outcome is FetchOutcome.UPDATED and summary.attempts == 3
    assert blocked(config, "casino.example")


def test_a_503_every_time_gives_up_after_the_attempts_and_keeps_the_last_good_copy(
    tmp_path: Path, server: ListServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.bodies["/hosts"] = HOSTS
    config = centre(tmp_path, server, fetch="  fetch: {backoff_s: 0.01, attempts: 4}\n")
    compile_(config)
    server.failures["/hosts"] = [503] * 10
    assert main(["lists", "compile", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "STALE" in out and "HTTP 503 Service Unavailable (4 tries)" in out
    assert "download: failed (HTTP 503 Service Unavailable (4 tries))" in out
    assert len(server.seen) == 1 + 4
    assert blocked(config, "casino.example")


@pytest.mark.parametrize("status", [403, 404, 410, 429])
def test_a_refusal_is_not_asked_again(tmp_path: Path, server: ListServer, status: int) -> None:
    server.bodies["/hosts"] = HOSTS
    server.failures["/hosts"] = [status] * 3
    (tmp_path / "own.hosts").write_text("0.0.0.0 own.example\n")
    config = centre(
        tmp_path, server, extra="    - {name: own, format: hosts, category: c, path: own.hosts}\n"
    )
    summary = fetch_of(compile_(config))
    assert len(server.seen) == 1
    assert summary.outcome is FetchOutcome.FAILED and summary.reason is not None
    assert summary.reason.startswith(f"HTTP {status}")


def test_a_connection_cut_mid_body_is_tried_again(tmp_path: Path, server: ListServer) -> None:
    server.bodies["/hosts"] = HOSTS * 100
    server.cuts["/hosts"] = 1
    config = centre(tmp_path, server)
    summary = fetch_of(compile_(config))
    assert [s.body_bytes for s in server.seen] == [len(HOSTS) * 50, len(HOSTS) * 100]
    assert summary.outcome is FetchOutcome.UPDATED and summary.attempts == 2
    assert summary.bytes_fetched == len(HOSTS) * 150  # the cut try's bytes are paid for too
    assert (tmp_path / "state" / "lists" / "gambling").read_bytes() == HOSTS * 100


def test_no_server_at_all_is_tried_the_configured_times(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(
        "data_dir: state\nlists:\n  fetch: {backoff_s: 0.01, attempts: 2, connect_timeout_s: 2}\n  sources:\n"
        "    - {name: own, format: domains, category: c, path: own.txt}\n"
        "    - {name: gone, format: domains, category: c, url: 'http://127.0.0.1:9/list'}\n"
    )
    (tmp_path / "own.txt").write_text("own.example\n")
    summary = fetch_of(compile_(config), "gone")
    assert summary.outcome is FetchOutcome.FAILED and summary.attempts == 2
    assert (
        summary.reason is not None and "refused" in summary.reason.lower() and "(2 tries)" in summary.reason
    )


def test_a_list_over_the_cap_is_refused_before_its_body(tmp_path: Path, server: ListServer) -> None:
    server.bodies["/hosts"] = HOSTS
    config = centre(tmp_path, server, fetch="  fetch: {max_mb: 1}\n")
    compile_(config)
    server.bodies["/hosts"] = b"0.0.0.0 big.example\n" * 60_000  # 1.2 MB
    summary = fetch_of(compile_(config))
    assert (
        summary.outcome is FetchOutcome.FAILED and summary.reason == "larger than 1 MB (lists.fetch.max_mb)"
    )
    assert summary.bytes_fetched < 100_000  # the body was not read (what the socket buffered aside)
    assert blocked(config, "casino.example") and not blocked(config, "big.example")
    assert not list((tmp_path / "state" / "lists" / ".fetch").glob("*.part"))


def test_a_list_that_moved_is_followed_and_asked_for_where_it_was(tmp_path: Path, server: ListServer) -> None:
    server.bodies["/new/hosts"] = HOSTS
    server.moved["/hosts"] = server.url("/new/hosts")
    config = centre(tmp_path, server)
    assert fetch_of(compile_(config)).outcome is FetchOutcome.UPDATED
    assert fetch_of(compile_(config)).outcome is FetchOutcome.UNCHANGED
    assert [(s.path, s.status) for s in server.seen] == [
        ("/hosts", 302),
        ("/new/hosts", 200),
        ("/hosts", 302),
        ("/new/hosts", 304),
    ]


def test_text_lists_travel_compressed(tmp_path: Path, server: ListServer) -> None:
    server.bodies["/hosts"] = HOSTS
    server.bodies["/hosts.tar.gz"] = tar_gz({"hosts": HOSTS})
    config = centre(
        tmp_path,
        server,
        extra=f"    - {{name: packed, format: hosts, category: c, url: '{server.url('/hosts.tar.gz')}', "
        "members: [hosts]}\n",
    )
    server.compressing |= {"/hosts", "/hosts.tar.gz"}
    summary = fetch_of(compile_(config))
    assert server.requests_for("/hosts")[0].headers["accept-encoding"] == "gzip"
    assert summary.bytes_fetched == len(gzip.compress(HOSTS, mtime=0))  # what crossed the link
    assert (tmp_path / "state" / "lists" / "gambling").read_bytes() == HOSTS  # kept as the list itself
    # an archive is asked for as it is: no server may unpack it on the way
    assert server.requests_for("/hosts.tar.gz")[0].headers["accept-encoding"] == "identity"


# ---- the mirror ----


def test_the_mirror_is_asked_first_and_the_source_url_not_at_all(tmp_path: Path, server: ListServer) -> None:
    server.bodies["/mirror/gambling.tar.gz"] = tar_gz({"hosts": HOSTS})
    fetch = f"  fetch: {{backoff_s: 0.01, mirror: '{server.url('/mirror/')}'}}\n"
    config = centre(tmp_path, server, "/origin/hosts.tar.gz", fetch=fetch)
    summary = fetch_of(compile_(config))
    assert [s.path for s in server.seen] == ["/mirror/gambling.tar.gz"]
    assert summary.from_mirror and summary.outcome is FetchOutcome.UPDATED
    assert summary.url == server.url("/mirror/gambling.tar.gz")
    assert blocked(config, "poker.example")
    # and next time the mirror is asked whether its copy changed
    assert fetch_of(compile_(config)).outcome is FetchOutcome.UNCHANGED
    assert server.seen[-1].path == "/mirror/gambling.tar.gz" and server.seen[-1].status == 304


@pytest.mark.parametrize(
    ("mirror_body", "problem"),
    [(None, "HTTP 404 Not Found"), (b"<html><body>cache error</body></html>", "an HTML page")],
)
def test_a_mirror_without_the_list_gives_way_to_the_source_url(
    tmp_path: Path, server: ListServer, mirror_body: bytes | None, problem: str
) -> None:
    if mirror_body is not None:
        server.bodies["/mirror/gambling"] = mirror_body
    server.bodies["/hosts"] = HOSTS
    fetch = f"  fetch: {{backoff_s: 0.01, mirror: '{server.url('/mirror')}'}}\n"
    config = centre(tmp_path, server, fetch=fetch)
    summary = fetch_of(compile_(config))
    assert [s.path for s in server.seen] == ["/mirror/gambling", "/hosts"]
    assert not summary.from_mirror and summary.outcome is FetchOutcome.UPDATED and summary.attempts == 2
    assert summary.mirror_problem is not None and problem in summary.mirror_problem
    assert blocked(config, "casino.example")


def test_a_mirror_that_fails_is_asked_once(tmp_path: Path, server: ListServer) -> None:
    server.bodies["/mirror/gambling"] = HOSTS
    server.failures["/mirror/gambling"] = [503] * 5
    server.bodies["/hosts"] = HOSTS
    fetch = f"  fetch: {{backoff_s: 0.01, mirror: '{server.url('/mirror')}'}}\n"
    summary = fetch_of(compile_(centre(tmp_path, server, fetch=fetch)))
    assert [s.path for s in server.seen] == ["/mirror/gambling", "/hosts"]
    assert summary.mirror_problem is not None and "HTTP 503" in summary.mirror_problem


# ---- what staff and the admin see ----


def test_each_source_is_summed_up_in_the_cli_and_report_json(
    tmp_path: Path, server: ListServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.bodies["/hosts"] = HOSTS
    (tmp_path / "own.hosts").write_text("0.0.0.0 own.example\n")
    config = centre(
        tmp_path, server, extra="    - {name: own, format: hosts, category: c, path: own.hosts}\n"
    )
    assert main(["lists", "compile", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"download: updated from its own URL, {len(HOSTS)} bytes fetched in 1 request" in out
    assert main(["lists", "compile", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "download: unchanged from its own URL, 0 bytes fetched in 1 request" in out
    assert "Downloads: 0 bytes over the link for 1 sources (1 unchanged)" in out

    assert main(["lists", "compile", "--json", "--config", str(config)]) == 0
    listed = {r["source"]: r["fetch"] for r in json.loads(capsys.readouterr().out)}
    assert listed["own"] is None and listed["gambling"]["outcome"] == "unchanged"

    report = read_compile_report(load_config(config))
    assert report is not None
    by_name = {s.report.source: s.report.fetch for s in report.sources}
    assert by_name["own"] is None
    assert by_name["gambling"] == FetchSummary(
        outcome=FetchOutcome.UNCHANGED,
        url=server.url("/hosts"),
        from_mirror=False,
        bytes_fetched=0,
        attempts=1,
    )


def test_a_report_written_before_downloads_were_summed_up_still_reads(
    tmp_path: Path, server: ListServer
) -> None:
    server.bodies["/hosts"] = HOSTS
    config = centre(tmp_path, server)
    compile_(config)
    path = tmp_path / "state" / "index" / "report.json"
    data = json.loads(path.read_text())
    for source in data["sources"]:
        del source["fetch"]
    path.write_text(json.dumps(data))
    report = read_compile_report(load_config(config))
    assert report is not None and report.sources[0].report.fetch is None
    assert report.sources[0].report.entries == 2


@pytest.mark.parametrize(
    ("fetch", "words"),
    [
        ("{mirror: 'ftp://hq.example/lists'}", "lists.fetch.mirror must be an http:// or https:// base URL"),
        ("{attempts: 0}", "lists.fetch.attempts must be a whole number from 1 to 10"),
        ("{max_ratio: 1}", "lists.fetch.max_ratio must be a whole number from 2"),
        ("{max_unpacked_mb: 0}", "lists.fetch.max_unpacked_mb must be a whole number from 1"),
        ("{connect_timeout_s: 0}", "lists.fetch.connect_timeout_s must be a number from 0.1 to 600"),
        ("{backoff_s: -1}", "lists.fetch.backoff_s must be a number from 0 to 300"),
        ("{retries: 3}", "unknown key 'retries' in lists.fetch: (known: attempts, backoff_s,"),
    ],
)
def test_fetch_settings_that_cannot_work_are_refused_with_file_and_line(
    tmp_path: Path, fetch: str, words: str
) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"lists:\n  fetch: {fetch}\n")
    with pytest.raises(ConfigError) as e:
        load_config(config)
    assert str(e.value).startswith(f"{config}:2: ") and words in str(e.value), str(e.value)


def test_fetch_settings_are_read(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(
        "lists:\n  fetch:\n    mirror: http://cache.lan/lists/\n    attempts: 5\n    backoff_s: 1.5\n"
        "    connect_timeout_s: 3\n    timeout_s: 20\n    max_unpacked_mb: 2048\n    max_ratio: 500\n"
    )
    fetch = load_config(config).fetch
    assert (fetch.mirror, fetch.attempts, fetch.backoff_s, fetch.connect_timeout_s, fetch.timeout_s) == (
        "http://cache.lan/lists",
        5,
        1.5,
        3.0,
        20.0,
    )
    assert (fetch.max_unpacked_bytes, fetch.max_ratio) == (2048 * 1024 * 1024, 500)


def test_a_list_said_to_be_gzip_encoded_but_not_is_refused_and_the_other_sources_compile(
    tmp_path: Path, server: ListServer
) -> None:
    """A mirror or proxy that labels a plain list `Content-Encoding: gzip`: that source fails (its last
    good copy stands in), never the whole nightly compile, and no part file is left behind."""
    server.bodies["/good.hosts"] = b"0.0.0.0 casino.example\n"
    server.bodies["/broken.hosts"] = b"0.0.0.0 poker.example\n" * 50
    config = tmp_path / "appliance.yaml"
    config.write_text(
        "data_dir: state\nlists:\n  fetch: {backoff_s: 0.01, attempts: 1}\n  sources:\n"
        f"    - {{name: broken, format: hosts, category: gambling, url: '{server.url('/broken.hosts')}'}}\n"
        f"    - {{name: good, format: hosts, category: gambling, url: '{server.url('/good.hosts')}'}}\n"
    )
    compile_lists(load_config(config), now=datetime.now(UTC))  # the broken one's last good copy
    server.false_gzip.add("/broken.hosts")
    server.bodies["/broken.hosts"] += b"0.0.0.0 changed.example\n"  # (so it is fetched again)
    result = compile_lists(load_config(config), now=datetime.now(UTC))
    reports = {r.source: r for r in result.reports}
    assert reports["good"].entries == 1 and reports["broken"].entries == 50  # its last good copy
    assert reports["broken"].rejected == (
        "download failed: the server said the list was compressed, but it could not be decompressed"
        " (a misconfigured server or proxy?)"
    )
    assert not list((tmp_path / "state").rglob("*.part"))
