"""The compiled index: one artefact from many sources, answering with provenance; save and load change
nothing; a damaged artefact is refused."""

from __future__ import annotations

import pytest

from filters.adblock import parse_adblock
from filters.compile import IndexBuilder
from filters.errors import IndexFormatError
from filters.formats import parse_domains, parse_expressions, parse_hosts, parse_ut1_urls
from filters.host_table import ALLOW
from filters.index import FilterIndex, SourceInfo
from filters.phrases import parse_phrase_list
from filters.report import ReportBuilder


def lines(text: str) -> list[str]:
    return text.strip("\n").splitlines()


@pytest.fixture(scope="module")
def artefact() -> bytes:
    b = IndexBuilder()
    r = ReportBuilder("t")
    porn = b.add_source(SourceInfo("sb-porn", "adult", "hosts", "porn.hosts"))
    b.add_hosts(
        porn,
        parse_hosts(
            lines("# x\n0.0.0.0 porn.example\n0.0.0.0 cams.example\n0.0.0.0 bücher.example"), "porn.hosts", r
        ),
    )
    edu = b.add_source(SourceInfo("ut1-child", "child", "ut1", "child"))
    b.add_hosts(edu, parse_domains(lines("school.example\nporn.example"), "child/domains", r, flags=ALLOW))
    b.add_url_prefixes(edu, parse_ut1_urls(lines("video.example/kids/"), "child/urls", r, flags=ALLOW))
    adult_urls = b.add_source(SourceInfo("ut1-adult", "adult", "ut1", "adult"))
    b.add_url_prefixes(adult_urls, parse_ut1_urls(lines("video.example/adult"), "adult/urls", r))
    b.add_expressions(adult_urls, parse_expressions(lines(r"(xxx|porno)[-_]?tube"), "adult/expressions", r))
    ads = b.add_source(SourceInfo("easylist", "ads", "adblock", "easylist.txt"))
    b.add_network_rules(
        ads, parse_adblock(lines("! c\n||tracker.example^$third-party\n/banner/*"), "easylist.txt", r)
    )
    b.add_source(SourceInfo("phrases", "adult", "e2guardian-phrases", "weighted"))
    b.add_phrases(parse_phrase_list(lines("<naughty words><30>"), "weighted", r, category="adult"))
    return b.build(created="2026-11-24T12:00:00+00:00")


@pytest.fixture(scope="module")
def index(artefact: bytes) -> FilterIndex:
    return FilterIndex(artefact, verify=True)


def test_host_answers_carry_category_source_and_line(index: FilterIndex) -> None:
    match = index.match_host("www.porn.example")
    assert [(h.listed, h.category, h.source, h.line, h.rule) for h in match.hits] == [
        ("block", "adult", "sb-porn", 2, "porn.example"),
        ("allow", "child", "ut1-child", 2, "porn.example"),
    ]
    assert match.categories == {"adult"}
    assert not index.match_host("example.org")
    assert [h.rule for h in index.match_host("www.BÜCHER.example").hits] == ["xn--bcher-kva.example"]
    assert [h.rule for h in index.match_url("https://bücher.example/x").hits] == ["xn--bcher-kva.example"]
    assert not index.match_host("bad..name")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://video.example/kids/cartoon", [("url", "allow", "ut1-child")]),
        ("https://www.video.example/adult/clip", [("url", "block", "ut1-adult")]),
        ("https://video.example/other", []),
        ("http://xxx-tube.example/", [("expression", "block", "ut1-adult")]),
        ("http://PORNOTUBE.example/", [("expression", "block", "ut1-adult")]),
        (
            "https://school.example/banner/a.png",
            [("domain", "allow", "ut1-child"), ("adblock", "block", "easylist")],
        ),
    ],
)
def test_url_answers(index: FilterIndex, url: str, expected: list[tuple[str, str, str]]) -> None:
    match = index.match_url(url, source_url="https://school.example/", request_type="image")
    assert [(h.kind, h.listed, h.source) for h in match.hits] == expected


def test_adblock_party_needs_the_page(index: FilterIndex) -> None:
    third = index.match_url(
        "https://tracker.example/p.gif", source_url="https://news.example/", request_type="image"
    )
    first = index.match_url(
        "https://tracker.example/p.gif", source_url="https://tracker.example/", request_type="image"
    )
    assert [(h.kind, h.rule, h.line) for h in third.hits] == [
        ("adblock", "||tracker.example^$third-party", 2)
    ]
    assert not first


def test_url_rules_are_what_a_host_only_question_cannot_see(index: FilterIndex) -> None:
    found = {(h.listed, h.source, h.rule) for h in index.url_rules("www.video.example").hits}
    assert found == {
        ("allow", "ut1-child", "video.example/kids/"),
        ("block", "ut1-adult", "video.example/adult"),
    }
    assert not index.match_host("www.video.example")
    assert not index.url_rules("school.example")


def test_the_same_host_and_rule_give_back_the_same_answer(index: FilterIndex) -> None:
    # Callers memoise verdicts by the answer object; a different rule must give a different one.
    first = index.match_url(
        "https://tracker.example/a.gif", source_url="https://news.example/", request_type="image"
    )
    again = index.match_url(
        "https://tracker.example/b.gif", source_url="https://news.example/", request_type="image"
    )
    other = index.match_url(
        "https://tracker.example/a.gif", source_url="https://tracker.example/", request_type="image"
    )
    assert first is again and first.raw is again.raw
    assert other is not first and not other


def test_phrases_are_scored(index: FilterIndex) -> None:
    assert index.score_text("Some NAUGHTY WORDS here, naughty words").totals == {"adult": 60}


def test_loaded_from_a_file_it_answers_the_same(artefact: bytes, index: FilterIndex, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from appliance.files import write_atomically
    from appliance.storage import open_index

    path = tmp_path / "filters.idx"
    write_atomically(path, artefact)
    loaded = open_index(path, verify=True)
    for subject in ("porn.example", "cams.example", "school.example", "nothing.example"):
        assert loaded.match_host(subject) == index.match_host(subject)
    url = "https://www.video.example/adult/clip"
    assert loaded.match_url(url) == index.match_url(url)
    assert loaded.sources == index.sources
    assert loaded.header["created"] == "2026-11-24T12:00:00+00:00"


def test_damaged_artefacts_are_refused(artefact: bytes) -> None:
    with pytest.raises(IndexFormatError, match="truncated"):
        FilterIndex(artefact[:-100])
    with pytest.raises(IndexFormatError, match="magic"):
        FilterIndex(b"<html>" + artefact[6:])
    flipped = bytearray(artefact)
    flipped[-50] ^= 0xFF
    with pytest.raises(IndexFormatError, match="checksum"):
        FilterIndex(bytes(flipped), verify=True)
    newer = artefact.replace(b'"version":2', b'"version":9', 1)
    with pytest.raises(IndexFormatError, match="compile again"):
        FilterIndex(newer)


def test_an_index_of_the_old_format_is_refused_with_a_plain_reason(artefact: bytes) -> None:
    """Format 1 (host names in a crc32 slot table) is refused, not misread: compile again."""
    old = artefact.replace(b'"version":2', b'"version":1', 1)
    with pytest.raises(IndexFormatError, match=r"compiled index format 1 is not 2: compile again"):
        FilterIndex(old)


def test_the_host_table_read_through_a_reader_answers_the_same(artefact: bytes, index: FilterIndex) -> None:
    """What `open_index` does: the host table read with `read(offset, length)`, not from the buffer."""
    reads: list[tuple[int, int]] = []

    def read(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return artefact[offset : offset + length]

    through = FilterIndex(artefact, read=read)
    for subject in ("www.porn.example", "school.example", "bücher.example", "nothing.example"):
        assert through.match_host(subject) == index.match_host(subject)
    url = "https://www.video.example/adult/clip"
    assert through.match_url(url) == index.match_url(url)
    assert reads  # the rows came through the reader


def test_a_table_cut_short_under_a_reader_is_an_error_not_a_crash(artefact: bytes) -> None:
    """A file truncated after it was opened: the read comes back short (a memory map would SIGBUS)."""
    cut = len(artefact)
    through = FilterIndex(artefact, read=lambda offset, length: artefact[offset : min(offset + length, cut)])
    cut = 0
    with pytest.raises(IndexFormatError, match="truncated"):
        through.match_host("www.porn.example")


def test_a_damaged_file_fails_its_check_when_read_through_the_file(artefact: bytes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`open_index(verify=True)` checks the body read from the file (not through the memory map)."""
    from appliance.files import write_atomically
    from appliance.storage import open_index

    hosts, _ = FilterIndex(artefact).header["sections"]["hosts"]
    body = len(artefact) - FilterIndex(artefact).header["body_length"]
    flipped = bytearray(artefact)
    flipped[body + hosts + 40] ^= 0xFF  # in the host table's hashes: nothing else looks there at load
    path = tmp_path / "filters.idx"
    write_atomically(path, bytes(flipped))
    open_index(path, verify=False)  # the header alone is fine
    with pytest.raises(IndexFormatError, match="checksum"):
        open_index(path, verify=True, fallback=False)
