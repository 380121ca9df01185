"""Canonical names and paths: every spelling a browser accepts of one host or one path meets the same
list entries, whichever spelling the list or the request used (filters/urls.py)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from filters.adblock import parse_adblock
from filters.compile import IndexBuilder
from filters.formats import parse_domains, parse_hosts, parse_ut1_urls
from filters.host_table import ALLOW
from filters.index import FilterIndex, SourceInfo
from filters.names import BadName, normalise_host
from filters.report import ReportBuilder
from filters.urls import (
    canonical_host,
    canonical_path,
    canonical_url,
    read_path,
    server_path,
    split_url,
)
from tests.filters.path_spellings import served, spellings

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "2130706433",  # one number
    "0x7f000001",
    "0X7F000001",
    "0x7f.1",  # two parts: the last fills three bytes
    "127.1",
    "127.0.1",  # three parts: the last fills two bytes
    "0177.0.0.1",  # octal
    "0177.0.0.01",
    "00000000177.0.0.1",  # leading zeros are still octal
    "0x7f.0.0.1",
    "0x7F.0x0.0.0x1",
    "127.0.0.1.",  # trailing dot
    "%31%32%37.0.0.1",  # browsers decode escapes in a host
    "１２７.０.０.１",  # full-width digits: UTS #46 maps them
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6: reaches 127.0.0.1
    "[::ffff:7f00:1]",
    "::ffff:7f00:1",
]


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
def test_every_browser_spelling_of_an_ipv4_address_is_its_dotted_quad(spelling: str) -> None:
    assert canonical_host(spelling) == "127.0.0.1"


@pytest.mark.parametrize(
    ("spelling", "host"),
    [
        ("[0:0::1]", "::1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("[2001:DB8:0:0::0:1]", "2001:db8::1"),
        ("[64:ff9b::7f00:1]", "64:ff9b::7f00:1"),  # NAT64 needs a translator: stays IPv6
    ],
)
def test_ipv6_addresses_are_compressed_without_brackets(spelling: str, host: str) -> None:
    assert canonical_host(spelling) == host


@pytest.mark.parametrize(
    ("name", "host"),
    [
        ("Example.COM.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("ex%61mple.com", "example.com"),
        ("1.example.com", "1.example.com"),  # a name that starts with a digit
        ("3com.com", "3com.com"),
        ("0x.com", "0x.com"),
        ("1.2.3.256", "1.2.3.256"),  # no address (browsers refuse it): left as it is
        ("08.0.0.1", "08.0.0.1"),  # 8 is no octal digit
        ("1.2.3.4.5", "1.2.3.4.5"),
        ("4294967296", "4294967296"),  # 2**32
        ("1_0.0.0.1", "1_0.0.0.1"),
    ],
)
def test_names_stay_names(name: str, host: str) -> None:
    assert canonical_host(name) == host


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("/ads/x", "/ads/x"),
        ("/%61ds/x", "/ads/x"),  # an escaped unreserved character is the character
        ("/%7Euser/%5Fa%2Db%2Ec", "/~user/_a-b.c"),
        ("/./ads/x", "/ads/x"),
        ("/a/../ads/x", "/ads/x"),
        ("/a/b/../../ads/x", "/ads/x"),
        ("/../ads/x", "/ads/x"),
        ("/%2e/ads/x", "/ads/x"),
        ("/a/%2E%2e/ads/x", "/ads/x"),
        ("/a/.%2e/ads/x", "/ads/x"),
        ("/ads/.", "/ads/"),
        ("/ads/..", "/"),
        ("/ads\\x", "/ads/x"),  # browsers read a backslash as a slash
        ("/a\\..\\ads/x", "/ads/x"),
        ("/a%2Fb", "/a%2Fb"),  # an encoded slash is not a slash: it stays encoded
        ("/a%2fb", "/a%2Fb"),  # ... with its hex in upper case
        ("/a%2F..%2Fads/x", "/a%2F..%2Fads/x"),
        ("/Espa%c3%b1ol/", "/Espa%C3%B1ol/"),
        ("/Español/", "/Espa%C3%B1ol/"),  # what browsers send
        ("/100%", "/100%25"),  # a % that starts no escape
        ("/%zz", "/%25zz"),
        ("/%4%31", "/%2541"),  # decoding %31 does not make a new escape
        ("//ads/x", "//ads/x"),  # repeated slashes are kept
        ("//a/../ads/x", "//ads/x"),
        # ... and a path whose `..` servers that merge slashes resolve otherwise keeps its dot
        # segments, so both readings stay known (no browser sends one)
        ("/a//../ads/x", "/a//../ads/x"),
        ("/a/%2f/../ads/x", "/a/%2F/../ads/x"),
        ("/a/b/%2e%2e//../ads", "/a/b/..//../ads"),
        ("/a/..//../ads", "/ads"),  # every reading is /ads
        ("/x/..;/../ads", "/x/..;/../ads"),
        ("/.well-known/x", "/.well-known/x"),
        ("/BiteSize", "/BiteSize"),  # paths keep their case
        ("/x?q=%7e%2f", "/x?q=~%2F"),  # the query gets the same escapes
        ("/x?u=/a/../b\\c", "/x?u=/a/../b\\c"),  # ... but keeps its text
        ("/x?q=caf%C3%A9&r=café", "/x?q=caf%C3%A9&r=caf%C3%A9"),
    ],
)
def test_canonical_paths(path: str, canonical: str) -> None:
    assert canonical_path(path) == canonical


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://Example.COM./%61ds/x#top", ("https://example.com/ads/x", "example.com", "/ads/x")),
        ("http://2130706433:8080/a/../ads", ("http://127.0.0.1:8080/ads", "127.0.0.1", "/ads")),
        ("http://user@[0:0::1]/x", ("http://user@[::1]/x", "::1", "/x")),
        ("http://example.com?q", ("http://example.com/?q", "example.com", "/?q")),
        ("http://example.com\\ads\\x", ("http://example.com/ads/x", "example.com", "/ads/x")),
        # A backslash ends the host as a slash does: the browser goes to evil.example.
        (
            "http://evil.example\\@good.example/",
            ("http://evil.example/@good.example/", "evil.example", "/@good.example/"),
        ),
        ("https://example.com/ads/x", ("https://example.com/ads/x", "example.com", "/ads/x")),
    ],
)
def test_canonical_urls(url: str, canonical: tuple[str, str, str]) -> None:
    assert canonical_url(url) == canonical
    assert split_url(url) == canonical[1:]


def test_an_unchanged_url_is_handed_back_as_it_is() -> None:
    url = "https://www.example.com/a/b.js?x=%2F&y=1"
    assert canonical_url(url)[0] is url


@pytest.mark.parametrize(
    ("entry", "host"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("[0:0::1]", "::1"),
        ("0:0::1", "::1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("1.example.com", "1.example.com"),
    ],
)
def test_list_and_profile_entries_name_addresses_in_one_spelling(entry: str, host: str) -> None:
    assert normalise_host(entry) == host


@pytest.mark.parametrize("entry", ["example.com:8080", "[example.com]", "::g", "fe80::1%eth0"])
def test_what_is_neither_name_nor_address_is_refused(entry: str) -> None:
    with pytest.raises(BadName):
        normalise_host(entry)


def test_ut1_url_entries_are_compiled_in_canonical_form() -> None:
    report = ReportBuilder("t")
    rules = parse_ut1_urls(
        [
            "dmoz.org/World/Espa%c3%b1ol/Juegos/",
            "demo.example/application/helpers/./META25/us/",
            "2130706433/%61ds/",
            "[0:0::1]:8080/x",
        ],
        "urls",
        report,
    )
    assert [(host, prefix) for host, prefix, _, _ in rules] == [
        ("dmoz.org", "/World/Espa%C3%B1ol/Juegos/"),
        ("demo.example", "/application/helpers/META25/us/"),
        ("127.0.0.1", "/ads/"),
        ("::1", "/x"),
    ]


def test_adblock_patterns_are_compiled_in_canonical_form() -> None:
    report = ReportBuilder("t")
    rules = parse_adblock(
        [
            "||2130706433^",
            "||[0:0::1]/ads",
            "||127.1*",  # a prefix of host names, not an address: as written
            "||example.com/%61ds/",
            "||example.com/Espa%c3%b1ol/$match-case",
            "||example.com/español/",
            "&subaffid=%$subdocument",  # what follows the % is open: as written
            "/%4x",
        ],
        "list",
        report,
    )
    assert report.skipped == 0
    assert [r.pattern for r in rules] == [
        "127.0.0.1^",
        "[::1]/ads",
        "127.1",
        "example.com/ads/",
        "example.com/Espa%C3%B1ol/",
        "example.com/espa%c3%b1ol/",
        "&subaffid=%",
        "/%254x",
    ]


# --- the lists, as a request meets them -------------------------------------------------------------


def lines(text: str) -> list[str]:
    return text.strip("\n").splitlines()


@pytest.fixture(scope="module")
def index() -> FilterIndex:
    b = IndexBuilder()
    r = ReportBuilder("t")
    hosts = b.add_source(SourceInfo("hosts", "malware", "hosts", "hosts"))
    b.add_hosts(hosts, parse_hosts(lines("0.0.0.0 127.0.0.1\n0.0.0.0 ::1"), "hosts", r))
    numbers = b.add_source(SourceInfo("numbers", "malware", "domains", "numbers"))
    b.add_hosts(numbers, parse_domains(lines("3232235777\n0xa.0.0.1"), "numbers", r))  # 192.168.1.1, 10.0.0.1
    urls = b.add_source(SourceInfo("ut1-adult", "adult", "ut1", "adult"))
    b.add_url_prefixes(
        urls, parse_ut1_urls(lines("prefix.example/ads/\nvideos.example/adult"), "adult/urls", r)
    )
    allowed = b.add_source(SourceInfo("ut1-child", "child", "ut1", "child"))
    b.add_url_prefixes(allowed, parse_ut1_urls(lines("bbc.example/bitesize"), "child/urls", r, flags=ALLOW))
    ads = b.add_source(SourceInfo("easylist", "ads", "adblock", "easylist.txt"))
    b.add_network_rules(ads, parse_adblock(lines("||anchored.example/ads/\n/ads/*"), "easylist.txt", r))
    assert r.skipped == 0
    return FilterIndex(b.build())


def sources(index: FilterIndex, url: str) -> set[tuple[str, str]]:
    return {(h.source, h.listed) for h in index.match_url(url, request_type="image").hits}


@pytest.mark.parametrize("spelling", [s for s in LOOPBACK_SPELLINGS if "[" not in s and ":" not in s])
def test_each_spelling_of_an_address_meets_the_entry_for_it(index: FilterIndex, spelling: str) -> None:
    assert sources(index, f"http://{spelling}/x") == {("hosts", "block")}
    assert sources(index, f"http://{spelling}:8080/x") == {("hosts", "block")}
    assert [h.rule for h in index.match_host(spelling).hits] == ["127.0.0.1"]


@pytest.mark.parametrize(
    "url",
    ["http://[::1]/", "http://[0:0::1]/", "http://[0:0:0:0:0:0:0:1]:80/x", "http://[::ffff:192.168.1.1]/"],
)
def test_each_spelling_of_an_ipv6_address_meets_the_entry_for_it(index: FilterIndex, url: str) -> None:
    assert sources(index, url) == {("numbers" if "192" in url else "hosts", "block")}


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://192.168.1.1/", "192.168.1.1"),
        ("http://0xc0.0xa8.1.1/", "192.168.1.1"),
        ("http://10.0.0.1/", "10.0.0.1"),
        ("http://167772161/", "10.0.0.1"),
    ],
)
def test_an_address_a_list_writes_as_a_number_meets_the_dotted_quad(
    index: FilterIndex, url: str, rule: str
) -> None:
    assert [h.rule for h in index.match_url(url).hits] == [rule]


BLOCKED_PATHS = [
    "/ads/x",
    "/%61ds/x",
    "/%61%64%73/x",
    "/./ads/x",
    "/a/../ads/x",
    "/%2e/ads/x",
    "/b/%2E%2E/ads/x",
    "\\ads\\x",
]


@pytest.mark.parametrize("path", BLOCKED_PATHS)
def test_a_url_prefix_entry_blocks_every_spelling_of_its_path(index: FilterIndex, path: str) -> None:
    assert ("ut1-adult", "block") in sources(index, f"https://prefix.example{path}")


@pytest.mark.parametrize("path", BLOCKED_PATHS)
def test_an_adblock_rule_blocks_every_spelling_of_its_path(index: FilterIndex, path: str) -> None:
    assert rules(index, f"https://anchored.example{path}") == ["||anchored.example/ads/"]
    assert rules(index, f"https://other.example{path}") == ["/ads/*"]


def rules(index: FilterIndex, url: str) -> list[str]:
    return [h.rule for h in index.match_url(url, request_type="image").hits]


@pytest.mark.parametrize("path", ["/x%2Fads/y", "/a%2F..%2Fads/x", "/%2Fads/x", "/x/%2E%2E%2Fads/y"])
def test_an_encoded_slash_is_not_a_slash_to_an_adblock_rule(index: FilterIndex, path: str) -> None:
    # `%2F` inside a segment is data (an id, a file name) in the canonical form, which adblock rules
    # are matched against. (A URL prefix also meets the server reading: see below.)
    assert sources(index, f"https://anchored.example{path}") == set()


# --- URL prefixes against paths as servers read them ----------------------------------------------

# Entry `videos.example/adult` in a block list: each path, blocked or not.
UT1_BLOCK_ENTRY = [
    ("/adult/x", True),
    ("/adult", True),
    ("/adultery-in-literature", True),  # a prefix of the path, as UT1 entries always were
    ("/%61dult/x", True),
    ("/kids/../adult/x", True),
    ("//adult/x", True),  # nginx merges repeated slashes
    ("///adult/x", True),
    ("/./adult//x", True),
    ("/ADULT/x", True),  # IIS and many applications ignore case
    ("/Adult", True),
    ("/%41DULT/x", True),
    ("/%2Fadult/x", True),  # nginx decodes %2F, then merges
    ("/kids%2F..%2Fadult/x", True),  # ... and decodes %2F before it resolves `..`
    ("/kids/..%2Fadult/x", True),
    ("/kids/..%2fadult/x", True),
    ("/kids/..%5Cadult/x", True),  # IIS reads a backslash, escaped or not, as a slash
    ("/kids\\..\\adult/x", True),
    ("/kids//../adult/x", True),  # servers that merge first: `..` takes `kids`
    ("/kids/%2F/../adult/x", True),
    ("/kids/..;/adult/x", True),  # Tomcat and Spring drop `;x` from a segment: `..;` is `..`
    ("/kids/x", False),
    ("/kids%2Fadult/x", False),  # read as /kids/adult/x: not under the entry
    ("/adul", False),
    ("/x/adult", False),
    ("/kids/adult", False),
    ("/kids/.adult", False),
]


@pytest.mark.parametrize(("path", "blocked"), UT1_BLOCK_ENTRY)
def test_a_url_prefix_entry_blocks_every_path_a_server_reads_under_it(
    index: FilterIndex, path: str, blocked: bool
) -> None:
    found = index.match_url(f"http://videos.example{path}").hits
    assert [(h.source, h.listed, h.rule) for h in found] == (
        [("ut1-adult", "block", "videos.example/adult")] if blocked else []
    )


# Entry `bbc.example/bitesize` in an allow list (a UT1 white category): each path, allowed or not.
UT1_ALLOW_ENTRY = [
    ("/bitesize", True),
    ("/bitesize/maths", True),
    ("/bitesizes", True),  # a prefix of the path, as UT1 entries always were
    ("/%62itesize/maths", True),
    ("/bitesize/a/../maths", True),
    ("/bitesize/a%2Fb", True),  # read as /bitesize/a/b: still inside
    ("/bitesize//maths", True),
    ("/bitesize/..%2Fnews", False),  # nginx decodes %2F before it resolves `..`: /news
    ("/bitesize/..%2fnews", False),
    ("/bitesize/..%5Cnews", False),  # IIS reads a backslash as a slash: /news
    ("/bitesize%2F..%2Fnews", False),
    ("/bitesize/x/..%2F..%2Fnews", False),
    ("/bitesize/x//../../news", False),  # /bitesize/news to RFC 3986, /news to nginx
    ("/bitesize//..", False),
    ("/bitesize/..;/news", False),  # Tomcat and Spring: /news
    ("/bitesize/../news", False),
    ("/BITESIZE/maths", False),  # another page to most servers: capitals count on the allow side
    ("//bitesize/maths", False),  # not the entry's spelling: allow entries are strict
    ("/news", False),
]


@pytest.mark.parametrize(("path", "allowed"), UT1_ALLOW_ENTRY)
def test_a_url_prefix_allow_entry_allows_only_paths_every_reading_keeps_under_it(
    index: FilterIndex, path: str, allowed: bool
) -> None:
    assert sources(index, f"https://www.bbc.example{path}") == (
        {("ut1-child", "allow")} if allowed else set()
    )


@pytest.mark.parametrize(
    ("path", "server"),
    [
        ("/ads/x", "/ads/x"),
        ("/Ads/X", "/Ads/X"),  # capitals are kept: the block side compares them folded
        ("//ads///x", "/ads/x"),
        ("/a%2Fb", "/a/b"),
        ("/a%2fb%5cc%5Cd", "/a/b/c/d"),
        ("/a\\b", "/a/b"),
        ("/a/..%2Fads", "/ads"),
        ("/a%2F..%2F..%2Fads", "/ads"),
        ("/a//../ads", "/ads"),
        ("/a/..;jsessionid=1/ads", "/ads"),
        ("/a/.;x/ads", "/a/ads"),
        ("/a/..x/ads", "/a/..x/ads"),
        ("/a/x;..", "/a/x;.."),
        ("/a%252F..%252Fads", "/a%252F..%252Fads"),  # decoded once by the server: stays data
        ("/a/..%2F?q=//x/..%2F", "/?q=//x/..%2F"),  # the query as it is
    ],
)
def test_the_server_reading_of_a_path(path: str, server: str) -> None:
    assert server_path(path) == server


@pytest.mark.parametrize(
    "path", ["/ads/x", "/ads/x?q=//a%2F..", "/Espa%C3%B1ol/", "/.well-known/x", "/a%252Fb", "/"]
)
def test_an_ordinary_path_is_read_as_itself(path: str) -> None:
    assert read_path(path) == (path, path, path.lower(), path.lower())


@pytest.mark.parametrize(
    "path", ["/bitesize", "/%62itesize", "/%62%69tesize/x", "/./bitesize", "/x/../bitesize/y"]
)
def test_an_allowlisted_path_is_allowed_in_every_spelling(index: FilterIndex, path: str) -> None:
    assert sources(index, f"https://www.bbc.example{path}") == {("ut1-child", "allow")}


# --- properties -----------------------------------------------------------------------------------

_PATH_CHARS = st.sampled_from(
    [*"/.%\\?#aAz09-_~2eEfF:@&=+", "%2e", "%2E", "%2F", "%61", "%7e", "%c3%a9", "é", ".."]
)
_paths = st.lists(_PATH_CHARS, max_size=24).map(lambda parts: "/" + "".join(parts))
_HOST_PARTS = st.sampled_from(
    ["0x7f", "0177", "127", "1", "0", "255", "256", "0x", "a", "B", "xn--", "ü", "%31", "-"]
)
_hosts = st.one_of(
    st.lists(_HOST_PARTS, min_size=1, max_size=5).map(".".join),
    st.ip_addresses(v=6).map(lambda a: f"[{a.exploded.upper()}]"),
    st.ip_addresses(v=4).map(str),
)


@given(_paths)
@example("/%4%31")
@example("/a/..%2f..")
def test_canonical_paths_are_stable(path: str) -> None:
    once = canonical_path(path)
    assert canonical_path(once) == once
    assert once.isascii()


@given(_hosts)
def test_canonical_hosts_are_stable(host: str) -> None:
    once = canonical_host(host)
    assert canonical_host(once) == once


@settings(max_examples=300)
@given(
    host=st.sampled_from(["prefix.example", "anchored.example", "www.bbc.example", "2130706433", "[::1]"]),
    path=_paths,
)
def test_the_raw_and_the_canonical_spelling_get_the_same_answer(
    index: FilterIndex, host: str, path: str
) -> None:
    raw = f"https://{host}{path}"
    canonical = (canonical_url(raw)[0] + "#")[:-1]  # another object: worked out afresh
    assert (
        index.match_url(raw, request_type="image").raw == index.match_url(canonical, request_type="image").raw
    )


@given(host=_hosts, port=st.sampled_from(["", ":80", ":8080"]), path=_paths)
def test_a_url_is_its_canonical_host_and_path(host: str, port: str, path: str) -> None:
    url, found_host, found_path = canonical_url(f"https://{host}{port}{path}")
    expected_path = canonical_path(path.split("#")[0])
    assert (found_host, found_path) == (canonical_host(host), expected_path)
    again = (url + "#")[:-1]  # another object with the same text: worked out afresh
    assert canonical_url(again) == (again, found_host, found_path)


@settings(max_examples=500)
@given(spellings)
@example("/kids//../adult")
@example("/kids/%2F/../adult")
@example("/bitesize/x//../../news")
def test_no_spelling_a_server_reads_under_a_blocked_prefix_gets_past_it(
    index: FilterIndex, path: str
) -> None:
    if served(path).lower().startswith("/adult"):
        assert ("ut1-adult", "block") in sources(index, f"http://videos.example{path}")


@settings(max_examples=500)
@given(spellings.map(lambda p: "/bitesize" + p))
@example("/bitesize/x//../../news")
@example("/bitesize/..;/news")
def test_no_spelling_a_server_reads_outside_an_allowed_prefix_is_allowed_by_it(
    index: FilterIndex, path: str
) -> None:
    if ("ut1-child", "allow") in sources(index, f"https://www.bbc.example{path}"):
        assert served(path).startswith("/bitesize")
