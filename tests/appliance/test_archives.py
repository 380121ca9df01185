"""Archive list sources, as a centre's admin meets them: a list packed in any archive kind compiles as the
list itself; a hostile, damaged or fake archive is refused whole, and the last good copy stays in force."""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.bundles.build import build
from appliance.bundles.spec import read_spec
from appliance.cli import main
from appliance.config import ConfigError, load_config
from appliance.lists import CompileResult, compile_lists
from appliance.storage import open_index
from filters.report import SourceReport
from tests.appliance.list_server import ListServer, device, gz, hardlink, list_server, symlink, tar_gz, zip_of

UT1_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "lists" / "ut1"


@pytest.fixture
def server() -> Iterator[ListServer]:
    with list_server() as state:
        yield state


def write_config(tmp_path: Path, sources: str, fetch: str = "") -> Path:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"data_dir: state\nlists:\n{fetch}  sources:\n{sources}")
    return config


def compile_(config: Path) -> CompileResult:
    return compile_lists(load_config(config), now=datetime.now(UTC))


def report_of(result: CompileResult, name: str) -> SourceReport:
    return next(r for r in result.reports if r.source == name)


def hits(config: Path, subject: str) -> list[str]:
    index = open_index(load_config(config).index_path)
    match = index.match_url(subject) if "/" in subject else index.match_host(subject)
    return [str(hit) for hit in match.hits]


# ---- good archives ----

# format -> (the list's text, a subject it names, the hit it gives: origin and line included)
LISTS = {
    "hosts": (
        b"# porn\n0.0.0.0 porn.example\n0.0.0.0 cams.example\n",
        "porn.example",
        "porn.example' from src:2",
    ),
    "domains": (b"casino.example\npoker.example\n", "poker.example", "poker.example' from src:2"),
    "adblock-dns": (b"! gambling\n||casino.example^\n", "casino.example", "casino.example' from src:2"),
    "adblock": (b"[Adblock Plus 2.0]\n||ads.example^$third-party\n", "http://ads.example/x.js", "from src:2"),
}


@pytest.mark.parametrize("kind", [".tar.gz", ".tgz", ".zip", ".gz"])
@pytest.mark.parametrize("fmt", sorted(LISTS))
def test_a_list_in_any_archive_kind_compiles_as_the_list_itself(
    tmp_path: Path, server: ListServer, kind: str, fmt: str
) -> None:
    text, subject, hit = LISTS[fmt]
    if kind == ".gz":
        body, members = gz(text), ""
    elif kind == ".zip":
        body, members = zip_of({"README": b"about\n", "lists/the-list.txt": text}), "[lists/the-list.txt]"
    else:
        body, members = (
            tar_gz({"lists/": b"", "lists/the-list.txt": text, "README": b"x"}),
            "[lists/the-list.txt]",
        )
    server.bodies[f"/list{kind}"] = body
    members_key = f", members: {members}" if members else ""
    config = write_config(
        tmp_path,
        f"    - {{name: src, format: {fmt}, category: c, url: '{server.url(f'/list{kind}')}'"
        f"{members_key}}}\n",
    )
    result = compile_(config)
    report = report_of(result, "src")
    assert report.rejected is None and report.entries >= 1
    assert any(hit in h for h in hits(config, subject))
    # the archive itself is the last good copy, as downloaded
    assert (tmp_path / "state" / "lists" / "src").read_bytes() == body


def test_an_archive_holding_one_file_needs_no_members(tmp_path: Path, server: ListServer) -> None:
    server.bodies["/hosts.zip"] = zip_of({"hosts": LISTS["hosts"][0]})
    config = write_config(
        tmp_path, f"    - {{name: src, format: hosts, category: c, url: '{server.url('/hosts.zip')}'}}\n"
    )
    assert report_of(compile_(config), "src").entries == 2


def test_an_archive_of_several_files_without_members_is_refused_naming_them(
    tmp_path: Path, server: ListServer
) -> None:
    server.bodies["/two.zip"] = zip_of({"a.txt": b"a.example\n", "b.txt": b"b.example\n"})
    config = write_config(
        tmp_path, f"    - {{name: src, format: domains, category: c, url: '{server.url('/two.zip')}'}}\n"
    )
    report = report_of(compile_with_another_source(config), "src")
    assert report.rejected == "it holds a.txt, b.txt: name the file(s) to take in the source's members"


def test_several_members_each_keep_their_own_file_and_line(tmp_path: Path, server: ListServer) -> None:
    server.bodies["/two.tar.gz"] = tar_gz({"a.txt": b"a.example\n", "b.txt": b"# b\nb.example\n"})
    config = write_config(
        tmp_path,
        f"    - {{name: src, format: domains, category: c, url: '{server.url('/two.tar.gz')}', "
        "members: [a.txt, b.txt]}\n",
    )
    assert report_of(compile_(config), "src").entries == 2
    assert hits(config, "b.example") == ["block c: domain 'b.example' from src:2"]


UT1_ADULT = {
    "adult/": b"",
    "adult/domains": b"porn.example\ncams.example\n",
    "adult/urls": b"videos.example/adult\n",
    "adult/expressions": b"",
    "adult/usage": b"black\nadult\n",
    "adult/very_restrictive_expression": b"(sex|porn)\n",
}


@pytest.mark.parametrize("kind", [".tar.gz", ".tgz", ".zip"])
@pytest.mark.parametrize("members", ["", ", members: [adult/]"])
def test_a_ut1_category_archive_compiles_as_its_folder(
    tmp_path: Path, server: ListServer, kind: str, members: str
) -> None:
    body = (
        zip_of({k: v for k, v in UT1_ADULT.items() if not k.endswith("/")})
        if kind == ".zip"
        else tar_gz(UT1_ADULT)
    )
    server.bodies[f"/adult{kind}"] = body
    config = write_config(
        tmp_path,
        f"    - {{name: ut1-adult, format: ut1, category: adult, url: '{server.url(f'/adult{kind}')}'"
        f"{members}}}\n",
    )
    report = report_of(compile_(config), "ut1-adult")
    assert (report.entries, report.rejected, report.warnings) == (3, None, ())
    assert hits(config, "cams.example") == ["block adult: domain 'cams.example' from ut1-adult:2"]
    assert hits(config, "http://videos.example/adult/1") == [
        "block adult: url 'videos.example/adult' from ut1-adult:1"
    ]


def test_a_ut1_whitelist_archive_on_disk_allows(tmp_path: Path) -> None:
    (tmp_path / "child.tar.gz").write_bytes(
        tar_gz({"child/domains": b"school.example\n", "child/usage": b"white\n"})
    )
    config = write_config(tmp_path, "    - {name: child, format: ut1, category: child, path: child.tar.gz}\n")
    assert report_of(compile_(config), "child").entries == 1
    assert hits(config, "school.example") == ["allow child: domain 'school.example' from child:1"]


def test_a_ut1_archive_of_several_categories_takes_the_folder_named(
    tmp_path: Path, server: ListServer
) -> None:
    both = {**UT1_ADULT, "gambling/domains": b"casino.example\n", "gambling/usage": b"black\n"}
    server.bodies["/blacklists.tar.gz"] = tar_gz(both)
    url = server.url("/blacklists.tar.gz")
    config = write_config(
        tmp_path,
        f"    - {{name: ut1-gambling, format: ut1, category: gambling, url: '{url}', "
        "members: [gambling/]}\n",
    )
    assert report_of(compile_(config), "ut1-gambling").entries == 1
    assert hits(config, "porn.example") == []
    # without members, which folder is meant is not guessed
    config = write_config(
        tmp_path, f"    - {{name: ut1-any, format: ut1, category: gambling, url: '{url}'}}\n"
    )
    assert main(["lists", "compile", "--config", str(config)]) == 2


def ut1_tar(category_dir: Path) -> bytes:
    """A UT1 per-category archive, as UT1 publishes them: `<category>/<file>` for each file."""
    return tar_gz({f"{category_dir.name}/{f.name}": f.read_bytes() for f in sorted(category_dir.iterdir())})


@pytest.mark.skipif(not UT1_DATA.is_dir(), reason="../shared/data (real UT1 lists) is not on this machine")
@pytest.mark.parametrize("category", ["gambling", "agressif"])
def test_a_real_ut1_category_archive_gives_what_its_folder_gives(
    tmp_path: Path, server: ListServer, category: str
) -> None:
    folder = UT1_DATA / category
    server.bodies[f"/{category}.tar.gz"] = ut1_tar(folder)
    config = write_config(
        tmp_path,
        f"    - {{name: folder, format: ut1, category: {category}, path: '{folder}'}}\n"
        f"    - {{name: archive, format: ut1, category: {category}, "
        f"url: '{server.url(f'/{category}.tar.gz')}', members: [{category}/]}}\n",
    )
    result = compile_(config)
    from_folder, from_archive = report_of(result, "folder"), report_of(result, "archive")
    assert from_archive.rejected is None and from_archive.entries > 100
    assert (from_archive.entries, from_archive.skipped) == (from_folder.entries, from_folder.skipped)
    domains = (folder / "domains").read_text(encoding="utf-8", errors="replace").split()
    for line, name in list(enumerate(domains, 1))[:: max(1, len(domains) // 50)]:
        found = hits(config, name)
        assert f"block {category}: domain '{name}' from archive:{line}" in found, (name, found)


# ---- hostile, damaged and fake archives ----

GOOD_HOSTS = b"0.0.0.0 porn.example\n"


def repeated(size: int) -> bytes:
    """`size` bytes of one name again and again: compresses about 1000:1."""
    line = b"bomb.example\n"
    return line * (size // len(line))


def varied(size: int) -> bytes:
    """`size` bytes of distinct names: compresses about 2:1."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(str(i).encode()).hexdigest().encode() + b".example\n"
        i += 1
    return bytes(out)


def with_good(files: dict[str, bytes], **kw: object) -> bytes:
    return tar_gz({"hosts": GOOD_HOSTS, **files}, **kw)  # type: ignore[arg-type]


Hostile = tuple[str, Callable[[], bytes], str, str]  # kind, hostile body, reason, extra lists.fetch

HOSTILE: dict[str, Hostile] = {
    "tar path traversal": (
        ".tar.gz",
        lambda: with_good({"../../etc/cron.d/evil": b"x\n"}),
        "leads out of the archive",
        "",
    ),
    "tar absolute path": (".tar.gz", lambda: with_good({"/etc/evil": b"x\n"}), "is an absolute path", ""),
    "tar symbolic link": (
        ".tar.gz",
        lambda: with_good({}, extra=[symlink("passwd", "/etc/passwd")]),
        "symbolic link",
        "",
    ),
    "tar hard link": (".tar.gz", lambda: with_good({}, extra=[hardlink("again", "hosts")]), "hard link", ""),
    "tar device file": (".tar.gz", lambda: with_good({}, extra=[device("null")]), "device file", ""),
    "tar twice the same member": (
        ".tar.gz",
        lambda: tar_gz({"hosts": GOOD_HOSTS, "./hosts": b"0.0.0.0 x.example\n"}),
        "twice",
        "",
    ),
    "zip path traversal": (
        ".zip",
        lambda: zip_of({"hosts": GOOD_HOSTS, "../evil": b"x\n"}),
        "leads out of the archive",
        "",
    ),
    "zip absolute path": (
        ".zip",
        lambda: zip_of({"hosts": GOOD_HOSTS, "/etc/evil": b"x\n"}),
        "absolute path",
        "",
    ),
    "zip backslash traversal": (
        ".zip",
        lambda: zip_of({"hosts": GOOD_HOSTS, "..\\..\\evil": b"x\n"}),
        "leads out",
        "",
    ),
    "zip symbolic link": (
        ".zip",
        lambda: zip_of({"hosts": GOOD_HOSTS}, links={"passwd": "/etc/passwd"}),
        "symbolic link",
        "",
    ),
    "tar bomb by ratio": (
        ".tar.gz",
        lambda: with_good({"big": repeated(5_000_000)}),
        "200 times its size",
        "",
    ),
    "zip bomb by ratio": (
        ".zip",
        lambda: zip_of({"hosts": GOOD_HOSTS, "big": repeated(5_000_000)}),
        "200 times its size",
        "",
    ),
    "gz bomb by ratio": (".gz", lambda: gz(GOOD_HOSTS + repeated(5_000_000)), "200 times its size", ""),
    "tar bomb by size": (
        ".tar.gz",
        lambda: with_good({"big": varied(1_500_000)}),
        "more than 1 MB",
        "max_unpacked_mb: 1",
    ),
    "zip bomb by size": (
        ".zip",
        lambda: zip_of({"hosts": GOOD_HOSTS, "big": varied(1_500_000)}),
        "more than 1 MB",
        "max_unpacked_mb: 1",
    ),
    "HTML page as .tar.gz": (
        ".tar.gz",
        lambda: b"<!DOCTYPE html><html><body>Log in</body></html>",
        "an HTML page, not a .tar.gz",
        "",
    ),
    "HTML page as .zip": (
        ".zip",
        lambda: b"<html><body>503 Service Unavailable</body></html>",
        "an HTML page, not a .zip",
        "",
    ),
    "garbage as .gz": (".gz", lambda: bytes(range(256)) * 4, "not a usable .gz archive", ""),
    "truncated .tar.gz": (
        ".tar.gz",
        lambda: (b := with_good({"more": varied(200_000)}))[: len(b) // 2],
        "truncated",
        "",
    ),
    "truncated .gz": (".gz", lambda: (b := gz(varied(200_000)))[: len(b) // 2], "truncated", ""),
    "truncated .zip": (
        ".zip",
        lambda: (b := zip_of({"hosts": GOOD_HOSTS}))[: len(b) - 30],
        "or a truncated one",
        "",
    ),
    "member missing": (".tar.gz", lambda: tar_gz({"other": GOOD_HOSTS}), "no member hosts", ""),
    "member is an HTML page": (
        ".tar.gz",
        lambda: tar_gz({"hosts": b"<html><body>Not found</body></html>"}),
        "member hosts: an HTML page, not a list",
        "",
    ),
}


def good_archive(kind: str) -> bytes:
    if kind == ".zip":
        return zip_of({"hosts": GOOD_HOSTS, "README": b"read me\n"})
    if kind == ".gz":
        return gz(GOOD_HOSTS)
    return tar_gz({"hosts": GOOD_HOSTS, "README": b"read me\n"})


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_or_broken_archive_is_refused_whole_and_the_last_good_copy_stays(
    tmp_path: Path, server: ListServer, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    kind, hostile, reason, fetch = HOSTILE[case]
    path = f"/hosts{kind}"
    members = "" if kind == ".gz" else ", members: [hosts]"
    config = write_config(
        tmp_path,
        f"    - {{name: src, format: hosts, category: adult, url: '{server.url(path)}'{members}}}\n",
        f"  fetch: {{{fetch}}}\n" if fetch else "",
    )
    server.bodies[path] = good = good_archive(kind)
    assert main(["lists", "compile", "--config", str(config)]) == 0
    capsys.readouterr()

    server.bodies[path] = hostile()
    assert main(["lists", "compile", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "STALE" in out and reason in out and "compiled its last good copy instead" in out, out
    assert hits(config, "porn.example") == ["block adult: domain 'porn.example' from src:1"]
    cache = tmp_path / "state" / "lists"
    assert (cache / "src").read_bytes() == good
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == ["src", "src.json"]  # no leftovers


def test_a_hostile_archive_with_no_good_copy_is_rejected_and_the_rest_compiled(
    tmp_path: Path, server: ListServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "own.hosts").write_text("0.0.0.0 own.example\n")
    server.bodies["/evil.tar.gz"] = tar_gz({"hosts": GOOD_HOSTS}, extra=[symlink("x", "/etc/shadow")])
    config = write_config(
        tmp_path,
        "    - {name: own, format: hosts, category: adult, path: own.hosts}\n"
        f"    - {{name: evil, format: hosts, category: adult, url: '{server.url('/evil.tar.gz')}', "
        "members: [hosts]}\n",
    )
    assert main(["lists", "compile", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "REJECTED" in out and "member 'x' is a symbolic link to '/etc/shadow': refused whole" in out
    assert hits(config, "porn.example") == []
    assert hits(config, "own.example") == ["block adult: domain 'own.example' from own:1"]


def test_a_local_archive_replaced_by_a_hostile_one_keeps_its_last_good_copy(tmp_path: Path) -> None:
    archive = tmp_path / "lists.tar.gz"
    archive.write_bytes(tar_gz({"hosts": GOOD_HOSTS}))
    config = write_config(
        tmp_path, "    - {name: src, format: hosts, category: adult, path: lists.tar.gz, members: [hosts]}\n"
    )
    assert report_of(compile_(config), "src").rejected is None
    archive.write_bytes(tar_gz({"hosts": b"0.0.0.0 new.example\n"}, extra=[hardlink("h", "/etc/passwd")]))
    report = report_of(compile_(config), "src")
    assert report.rejected is not None and "hard link" in report.rejected and report.entries == 1
    assert hits(config, "new.example") == []


def test_an_archive_that_hides_a_link_under_a_skipped_member_is_still_refused(tmp_path: Path) -> None:
    # The link is not among the members asked for: the archive is refused whole all the same.
    archive = tmp_path / "lists.tar.gz"
    archive.write_bytes(tar_gz({"hosts": GOOD_HOSTS, "docs/": b""}, extra=[symlink("docs/x", "../../..")]))
    config = write_config(
        tmp_path, "    - {name: src, format: hosts, category: adult, path: lists.tar.gz, members: [hosts]}\n"
    )
    report = report_of(compile_with_another_source(config), "src")
    assert report.rejected is not None and "symbolic link" in report.rejected


def compile_with_another_source(config: Path) -> CompileResult:
    """Compile with one more good source, so that the source under test may be rejected outright."""
    (config.parent / "other.hosts").write_text("0.0.0.0 other.example\n")
    text = config.read_text() + "    - {name: other, format: hosts, category: adult, path: other.hosts}\n"
    config.write_text(text)
    return compile_(config)


# ---- configuration ----


@pytest.mark.parametrize(
    ("source", "words"),
    [
        (
            "{name: a, format: hosts, category: c, path: a.txt, members: [x]}",
            "members are for .tar.gz, .tgz and .zip",
        ),
        (
            "{name: a, format: hosts, category: c, path: a.gz, members: [x]}",
            "members are for .tar.gz, .tgz and .zip",
        ),
        ("{name: a, format: hosts, category: c, path: a.zip, members: ['../x']}", "leads out of the archive"),
        ("{name: a, format: hosts, category: c, path: a.zip, members: ['/etc/x']}", "is an absolute path"),
        (
            "{name: a, format: hosts, category: c, path: a.zip, members: [lists/]}",
            "folders are for ut1 sources",
        ),
        ("{name: a, format: ut1, category: c, path: a.zip, members: [adult]}", "write 'adult/'"),
        ("{name: a, format: ut1, category: c, path: a.gz}", "a .gz holds one file"),
        ("{name: a, format: ut1, category: c, url: 'https://x/adult'}", "category archives"),
        ("{name: a, format: hosts, category: c, path: a.zip, members: 3}", "members must be a list"),
        ("{name: a, format: hosts, category: c, path: a.zip, members: [x, ./x]}", "named twice"),
        ("{name: .hidden, format: hosts, category: c, path: a.txt}", "not first: ."),
    ],
)
def test_archive_settings_that_cannot_work_are_refused_with_file_and_line(
    tmp_path: Path, source: str, words: str
) -> None:
    config = write_config(tmp_path, f"    - {source}\n")
    with pytest.raises(ConfigError) as e:
        load_config(config)
    assert str(e.value).startswith(f"{config}:4: ") and words in str(e.value), str(e.value)


def test_members_are_read_as_written_in_the_archive(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "    - {name: a, format: ut1, category: c, path: a.tgz, members: ['./blacklists//adult/']}\n",
    )
    assert load_config(config).sources[0].members == ("blacklists/adult/",)


def test_tar_members_of_unknown_kinds_are_refused(tmp_path: Path) -> None:
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    (tmp_path / "a.tar.gz").write_bytes(tar_gz({"hosts": GOOD_HOSTS}, extra=[fifo]))
    config = write_config(
        tmp_path, "    - {name: a, format: hosts, category: c, path: a.tar.gz, members: [hosts]}\n"
    )
    report = report_of(compile_with_another_source(config), "a")
    assert report.rejected == "member 'pipe' is a fifo: refused whole"


def test_a_head_office_bundle_carries_a_ut1_category_archive_with_its_members(tmp_path: Path) -> None:
    source = tmp_path / "hq"
    (source / "lists").mkdir(parents=True)
    (source / "lists" / "blacklists.tar.gz").write_bytes(
        tar_gz({**UT1_ADULT, "gambling/domains": b"casino.example\n", "gambling/usage": b"black\n"})
    )
    (source / "bundle.yaml").write_text(
        "sources:\n"
        "  - {name: adult, format: ut1, category: adult, path: lists/blacklists.tar.gz, members: [adult/]}\n"
        "health:\n  blocked: [porn.example]\n"
    )
    built = build(source, tmp_path / "out", 1, datetime(2026, 11, 25, tzinfo=UTC))
    assert (built.folder / "lists" / "blacklists.tar.gz").exists()  # the archive travels in the bundle
    (spec_source,) = read_spec(built.folder, prefix="hq.").sources
    assert (spec_source.name, spec_source.members) == ("hq.adult", ("adult/",))
