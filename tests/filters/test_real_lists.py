"""The real public lists in ../shared/data parse as their authors meant. Skipped when the data is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from filters.formats import parse_adblock_dns, parse_domains, parse_expressions, parse_hosts, parse_ut1_urls
from filters.report import ReportBuilder
from filters.text import decode_list

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "lists"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="../shared/data is absent")


def read(rel: str) -> list[str]:
    path = DATA / rel
    return decode_list(path.name, path.read_bytes())


def test_stevenblack_all_extensions() -> None:
    report = ReportBuilder("sb")
    rules = list(parse_hosts(read("stevenblack/fakenews-gambling-porn-social.hosts"), "sb.hosts", report))
    hosts = {h for h, _, _ in rules}
    assert len(hosts) > 150_000
    assert "localhost" not in hosts and "0.0.0.0" not in hosts
    assert report.skipped < 10, report.first_skipped


def test_hagezi_nsfw_is_adblock_dns() -> None:
    report = ReportBuilder("hz")
    rules = list(parse_adblock_dns(read("hagezi/nsfw.txt"), "nsfw.txt", report))
    assert len(rules) > 90_000
    assert report.skipped == 0, report.first_skipped


def test_ut1_adult_urls_and_gambling_domains() -> None:
    report = ReportBuilder("ut1")
    urls = list(parse_ut1_urls(read("ut1/adult/urls"), "adult/urls", report))
    assert len(urls) > 1000 and all(path.startswith("/") for _, path, _, _ in urls)
    domains = list(parse_domains(read("ut1/gambling/domains"), "gambling/domains", report))
    assert len(domains) > 1000
    assert report.skipped < len(urls) // 100, report.first_skipped


def test_every_ut1_expression_compiles_in_re2_or_is_reported() -> None:
    for path in sorted(DATA.glob("ut1/*/expressions")):
        report = ReportBuilder(path.parent.name)
        rules = list(parse_expressions(read(str(path.relative_to(DATA))), path.name, report))
        assert report.entries == len(rules)
        assert report.entries + report.skipped == sum(
            1 for line in path.read_text().splitlines() if line.strip()
        )
