"""The recommended preset protects where the bundled demo lists do not: held-out probes.

The catalogue's `recommended` preset is compiled as a centre would get it: fetched through
`lists.fetch.mirror` from a list server on loopback holding the copies of the real lists in ../shared/data
(the mirror layout of tests/catalogue_mirror.py; UT1 categories packed as UT1 publishes them). Nothing
else may be fetched: the lists' own addresses go through a proxy that is a closed loopback port.

The probes are adult, phishing and malware names taken from the real lists by a fixed rule (a few evenly
spaced through each list), names nobody chose to make the test pass and that the demo lists lack. Each is
blocked for every child profile of the shipped policy, under its own category for the filtered profiles,
through the compiled index and the shipped profiles as `appliance explain` decides (the proxy and the DNS
filter call the same `decide`), and for a few through a real `appliance dns` on loopback, each profile's
device asking for itself. With the demo preset the same probes are allowed for the filtered child
profiles: the recommended lists are what blocks them. Ordinary names from the top-500 site list stay
allowed for the 13-17 profile.

Skipped without ../shared/data (the real lists are not part of the project).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import dns.exception
import dns.message
import dns.query
import pytest

from appliance.cli import main
from appliance.config import load_config
from appliance.config.catalogue import Catalogue, load_catalogue
from appliance.explain import explain
from appliance.lists import read_compile_report
from appliance.policy_files import PolicyFiles, read_policy_files
from appliance.storage import open_index
from filters.sources import Format
from profiles.policy import Policy
from profiles.profile import Mode
from profiles.verdict import Action
from tests.appliance.dns.conftest import FakeUpstream, answers
from tests.appliance.list_server import list_server
from tests.catalogue_mirror import SHARED, build_mirror, shared_copy

pytestmark = pytest.mark.skipif(not (SHARED / "lists").is_dir(), reason="no ../shared/data/lists")

RECOMMENDED = "recommended"
OPEN = "2026-11-24T16:00"  # a Tuesday inside the shipped opening hours
# Catalogue entries the probes come from, and the category each must be blocked under.
HELD_OUT = {
    "stevenblack-porn": "adult",
    "hagezi-nsfw": "adult",
    "ut1-phishing": "phishing",
    "ut1-malware": "malware",
    "blp-ransomware": "malware",
}
PER_LIST = 4
# The recommended preset's allowlists: a name on one of them is meant to be allowed, so it is no probe.
ALLOWLISTS = ("ut1-child", "ut1-liste_blanche", "ut1-educational_games")
# Ordinary sites a teenager uses for school work, kept where the top-500 site list has them.
ORDINARY = ("wikipedia.org", "www.wikipedia.org", "bbc.co.uk", "www.bbc.co.uk", "www.bbc.com",
            "khanacademy.org", "www.khanacademy.org", "www.theguardian.com", "github.com",
            "stackoverflow.com", "weather.com")  # fmt: skip
# The shipped profiles' devices for `appliance dns` (an address no device has is a guest).
DEVICES = {"under-10": "127.0.0.21", "10-12": "127.0.0.22", "13-17": "127.0.0.23", "guest": "127.0.0.29"}
BLOCK_PAGE = "192.168.50.1"


def list_names(catalogue: Catalogue, name: str) -> list[str]:
    """The host names of a catalogue entry's real list, in file order, read plainly (not by the parsers
    under test): hosts and adblock-DNS lines, or a UT1 category's `domains`."""
    entry = catalogue.entries[name]
    copy = shared_copy(entry)
    assert copy is not None, f"{name}: no copy in ../shared/data"
    text = (copy / "domains" if entry.format is Format.UT1 else copy).read_text(errors="replace")
    names: list[str] = []
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith(("!", "[")):
            continue
        word = line.split()[-1]
        if entry.format is Format.ADBLOCK_DNS:
            if not (word.startswith("||") and word.endswith("^")):
                continue
            word = word[2:-1]
        host = word.lower().rstrip(".")
        if (
            "." in host
            and not host.replace(".", "").isdigit()
            and "localhost" not in host
            and "*" not in host
        ):
            names.append(host)
    return names


def held_out_probes(catalogue: Catalogue) -> dict[str, tuple[str, str]]:
    """Probe name -> (the entry it comes from, its category): PER_LIST names evenly spaced through each
    list of HELD_OUT, passing over a name an allowlist of the preset covers."""
    allowed = {host for name in ALLOWLISTS for host in list_names(catalogue, name)}
    probes: dict[str, tuple[str, str]] = {}
    for name, category in HELD_OUT.items():
        names = list_names(catalogue, name)
        for k in range(1, PER_LIST + 1):
            at = k * len(names) // (PER_LIST + 1)
            while names[at] in probes or _covered(names[at], allowed):
                at += 1
            probes[names[at]] = (name, category)
    return probes


def _covered(host: str, names: set[str]) -> bool:
    labels = host.split(".")
    return any(".".join(labels[i:]) in names for i in range(len(labels)))


@dataclass(frozen=True)
class Centre:
    """A centre's compiled lists and the shipped policy bound to them."""

    files: PolicyFiles
    policy: Policy
    config: Path

    def verdict(self, profile: str, host: str) -> tuple[Action, set[str]]:
        """The action for `host` and the categories of the reasons that block it."""
        found = explain(self.files, self.policy, profile, host, OPEN).verdict
        return found.action, {r.category for r in found.reasons if r.effect is Action.BLOCK and r.category}


def compile_centre(folder: Path, lists: str, more: str = "") -> Centre:
    config = folder / "appliance.yaml"
    config.write_text(f"data_dir: {folder / 'state'}\nlists:\n{lists}{more}")
    assert main(["lists", "compile", "--config", str(config)]) == 0
    loaded = load_config(config)
    files = read_policy_files(loaded.policy)
    return Centre(files, files.bind(open_index(loaded.index_path)), config)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """The DNS filter's upstream, which knows the ordinary names."""
    fake = FakeUpstream()
    fake.add("wikipedia.org", "A", "198.51.100.10")
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def recommended(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue, upstream: FakeUpstream
) -> Iterator[Centre]:
    """The recommended preset compiled from the loopback mirror, and nothing fetched from elsewhere;
    its configuration has a device for each child profile and `upstream` for the DNS filter."""
    root = tmp_path_factory.mktemp("mirror")
    entries = catalogue.presets[RECOMMENDED].entries
    build_mirror(root / "lists", catalogue, entries)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with list_server() as server, pytest.MonkeyPatch.context() as env:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                server.bodies["/" + path.relative_to(root).as_posix()] = path.read_bytes()
        shutil.rmtree(root)
        for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            env.setenv(key, nowhere)  # the lists' own servers: a closed port
        env.setenv("no_proxy", "127.0.0.1")  # the mirror
        env.delenv("NO_PROXY", raising=False)
        folder = tmp_path_factory.mktemp("recommended")
        devices = "".join(
            f"  - {{name: {profile}-device, network: {address}, profile: {profile}}}\n"
            for profile, address in DEVICES.items()
            if profile != "guest"
        )
        more = (
            f'devices:\n{devices}dns:\n  upstreams: ["{upstream.address}"]\n'
            f'  block_page_addresses: ["{BLOCK_PAGE}"]\n'
        )
        lists = f"  preset: {RECOMMENDED}\n  fetch:\n    mirror: {server.url('/lists')}\n"
        centre = compile_centre(folder, lists, more)
        server.bodies.clear()
    report = read_compile_report(load_config(folder / "appliance.yaml"))
    assert report is not None
    compiled = {s.report.source: s.report for s in report.sources}
    assert sorted(compiled) == sorted(entries)
    for name in entries:
        fetched = compiled[name].fetch
        assert compiled[name].entries > 0 and compiled[name].ok, (name, compiled[name])
        assert fetched is None or fetched.from_mirror, (name, fetched)
    yield centre


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Centre:
    """The bundled demo lists (what runs until a download succeeds)."""
    return compile_centre(tmp_path_factory.mktemp("demo"), "  preset: demo\n")


def child_profiles(centre: Centre) -> list[str]:
    return [name for name, p in centre.files.profiles.items() if name != "staff" and not p.bypass]


def test_the_probes_are_held_out_names_from_the_real_lists(catalogue: Catalogue) -> None:
    probes = held_out_probes(catalogue)
    assert len(probes) == PER_LIST * len(HELD_OUT)
    assert {category for _, category in probes.values()} == {"adult", "phishing", "malware"}
    # None is a name the demo lists were written with.
    demo_lists = Path(str(resources.files("appliance") / "defaults" / "lists"))
    demo_text = " ".join(p.read_text(errors="replace") for p in demo_lists.rglob("*") if p.is_file())
    assert not [host for host in probes if host in demo_text]


def test_held_out_adult_phishing_and_malware_names_are_blocked_for_every_child_profile(
    recommended: Centre, catalogue: Catalogue
) -> None:
    profiles = child_profiles(recommended)
    assert {"guest", "under-10", "10-12", "13-17"} <= set(profiles)
    wrong = []
    for host, (entry, category) in held_out_probes(catalogue).items():
        for profile in profiles:
            action, categories = recommended.verdict(profile, host)
            filtered = recommended.files.profiles[profile].mode is Mode.FILTERED
            if action is not Action.BLOCK or (filtered and category not in categories):
                wrong.append(
                    f"{host} ({entry}, {category}) for {profile}: {action.value} {sorted(categories)}"
                )
    assert not wrong, "\n".join(wrong)


def test_with_the_demo_lists_the_same_probes_are_allowed_for_the_filtered_child_profiles(
    demo: Centre, catalogue: Catalogue
) -> None:
    filtered = [p for p in child_profiles(demo) if demo.files.profiles[p].mode is Mode.FILTERED]
    assert {"guest", "10-12", "13-17"} <= set(filtered)
    blocked = [
        f"{host} for {profile}"
        for host in held_out_probes(catalogue)
        for profile in filtered
        if demo.verdict(profile, host)[0] is Action.BLOCK
    ]
    assert not blocked, blocked


def test_ordinary_sites_stay_allowed_for_13_to_17(recommended: Centre) -> None:
    top500 = SHARED / "requests" / "top500-sitelist.txt"
    if not top500.exists():
        pytest.skip("no ../shared/data/requests/top500-sitelist.txt")
    hosts = {urlsplit(line.strip()).hostname for line in top500.read_text().splitlines() if line.strip()}
    ordinary = [host for host in ORDINARY if host in hosts]
    assert len(ordinary) >= 5, ordinary
    verdicts = {host: recommended.verdict("13-17", host) for host in ordinary}
    assert not {h: v for h, v in verdicts.items() if v[0] is Action.BLOCK}


def ask(port: int, name: str, source: str) -> list[tuple[str, str, str]]:
    """The A records `appliance dns` gives a device at `source`, waiting for it to start."""
    deadline = time.monotonic() + 20
    while True:
        try:
            reply = dns.query.udp(
                dns.message.make_query(name, "A"), "127.0.0.1", port=port, source=source, timeout=1
            )
            return answers(reply)
        except (TimeoutError, ConnectionRefusedError, dns.exception.Timeout):
            if time.monotonic() > deadline:
                raise


def test_a_real_dns_filter_on_the_recommended_lists_blocks_a_probe_of_each_kind_for_every_child(
    recommended: Centre, catalogue: Catalogue
) -> None:
    probes = held_out_probes(catalogue)
    few = {category: host for host, (_, category) in reversed(probes.items())}  # the first of each
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "dns", "--config", str(recommended.config),
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        got = {
            (profile, host): ask(port, host, address)
            for profile, address in DEVICES.items()
            for host in few.values()
        }
        ordinary = ask(port, "wikipedia.org", DEVICES["13-17"])
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert {key: value for key, value in got.items() if value != [(key[1], "A", BLOCK_PAGE)]} == {}, out
    assert ordinary == [("wikipedia.org", "A", "198.51.100.10")]
