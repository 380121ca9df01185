"""A profile's own entries and every request meet in canonical form: no spelling of a host or a path
gets round an entry, and an allowed page is allowed however the browser spells it."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings

from profiles.decide import decide
from profiles.policy import Policy
from profiles.profile import Mode
from profiles.request import Request
from profiles.verdict import Action, Step
from tests.filters.path_spellings import served, spellings
from tests.profiles.sample_policy import (
    CATEGORIES,
    LONDON,
    OPEN,
    PROFILES,
    SAFE_SEARCH,
    WATCH,
    build_index,
    profile,
    who,
)

A, B = Action.ALLOW, Action.BLOCK


@pytest.fixture(scope="module")
def policy() -> Policy:
    young = profile(
        "young",
        mode=Mode.ALLOWLIST_ONLY,
        allow=("bbc.example/bitesize", "maths.example/Espa%c3%b1ol/", "[0:0::1]"),
    )
    careful = profile(
        "careful",
        block=("2130706433", "videos.example/%61dult", "0x0a.0.0.2/admin"),
        blocked_downloads=frozenset({"exe"}),
    )
    mixed = profile("mixed", block=("videos.example/adult",), allow=("videos.example/adult/education",))
    profiles = dict(PROFILES, young=young, careful=careful, mixed=mixed)
    return Policy(CATEGORIES, profiles, build_index(), LONDON, SAFE_SEARCH, WATCH)


def verdict(policy: Policy, name: str, url: str) -> Action:
    return decide(Request.web(url), policy, who(name), OPEN).action


@pytest.mark.parametrize(
    ("url", "action"),
    [
        ("https://www.bbc.example/bitesize", A),
        ("https://www.bbc.example/%62itesize", A),
        ("https://www.bbc.example/%62%69tesize/maths", A),
        ("https://www.bbc.example/./bitesize/maths", A),
        ("https://www.bbc.example/news/../bitesize/maths", A),
        ("https://www.bbc.example/news", B),
        ("https://www.bbc.example/bitesize/../news", B),  # out of the allowed part: not allowed
        ("https://www.bbc.example/%2E%2E/news", B),
        ("https://maths.example/Espa%C3%B1ol/juegos", A),  # the entry's lower-case hex is the same
        ("https://maths.example/Español/juegos", A),
        ("http://[::1]/", A),
        ("http://[0:0:0:0:0:0:0:1]:8080/x", A),
    ],
)
def test_an_allowlisted_page_is_allowed_in_every_spelling(policy: Policy, url: str, action: Action) -> None:
    assert verdict(policy, "young", url) is action


@pytest.mark.parametrize(
    ("url", "action"),
    [
        ("http://127.0.0.1/", B),
        ("http://2130706433/", B),
        ("http://0x7f.1/x", B),
        ("http://127.1/x", B),
        ("http://0177.0.0.1/x", B),
        ("http://[::ffff:127.0.0.1]/x", B),
        ("https://videos.example/adult/1", B),
        ("https://videos.example/%61dult/1", B),
        ("https://videos.example/./adult/1", B),
        ("https://videos.example/kids/../adult/1", B),
        ("https://videos.example/kids/1", A),
        ("https://videos.example/kids%2Fadult/1", A),  # read as /kids/adult/1 even by nginx
        ("http://10.0.0.2/admin", B),
        ("http://167772162/%61dmin", B),
        ("http://10.0.0.2/home", A),
    ],
)
def test_a_blocked_address_or_page_is_blocked_in_every_spelling(
    policy: Policy, url: str, action: Action
) -> None:
    assert verdict(policy, "careful", url) is action


# The careful profile's `block: [videos.example/%61dult]`: each path, blocked or not. A server may
# read a path more loosely than its canonical form: a block entry meets every such reading.
BLOCK_ENTRY = [
    ("/adult/1", B),
    ("/adultery-in-literature", B),  # the entry is the start of a path, as it always was
    ("//adult/1", B),  # nginx merges repeated slashes
    ("/./adult//1", B),
    ("/ADULT/1", B),  # IIS and many applications ignore case
    ("/Adult", B),
    ("/%2Fadult/1", B),  # nginx decodes %2F ...
    ("/kids%2F..%2Fadult/1", B),  # ... before it resolves `..`
    ("/kids/..%2fadult/1", B),
    ("/kids/..%5Cadult/1", B),  # IIS: a backslash, escaped or not, is a slash
    ("/kids\\..\\adult/1", B),
    ("/kids//../adult/1", B),  # merged first, `..` takes `kids`
    ("/kids/..;/adult/1", B),  # Tomcat, Spring: `..;` is `..`
    ("/kids/1", A),
    ("/kids/adult", A),
    ("/adul", A),
]


@pytest.mark.parametrize(("path", "action"), BLOCK_ENTRY)
def test_a_block_entry_blocks_every_path_a_server_reads_under_it(
    policy: Policy, path: str, action: Action
) -> None:
    assert verdict(policy, "careful", f"http://videos.example{path}") is action


# The young profile (allowlist-only) has `allow: [bbc.example/bitesize]`: each path, allowed or not.
ALLOW_ENTRY = [
    ("/bitesize/maths", A),
    ("/bitesize", A),
    ("/bitesize/a%2Fb", A),  # read as /bitesize/a/b: inside
    ("/bitesize//maths", A),
    ("/bitesize/..%2Fnews", B),  # nginx decodes %2F before it resolves `..`: /news
    ("/bitesize/..%2fnews", B),
    ("/bitesize/..%5Cnews", B),  # IIS reads a backslash as a slash: /news
    ("/bitesize%2F..%2Fnews", B),
    ("/bitesize/x//../../news", B),  # /bitesize/news to RFC 3986, /news to nginx
    ("/bitesize/..;/news", B),  # Tomcat, Spring: /news
    ("/BITESIZE/maths", B),  # another page on most servers: capitals count on the allow side
    ("//bitesize/maths", B),  # allow entries are strict: not the entry's spelling
]


@pytest.mark.parametrize(("path", "action"), ALLOW_ENTRY)
def test_an_allow_entry_allows_only_paths_every_reading_keeps_under_it(
    policy: Policy, path: str, action: Action
) -> None:
    assert verdict(policy, "young", f"http://bbc.example{path}") is action


def test_a_longer_allow_entry_wins_only_where_every_reading_stays_inside_it(policy: Policy) -> None:
    # mixed: block videos.example/adult, allow videos.example/adult/education
    assert verdict(policy, "mixed", "http://videos.example/adult/education/1") is A
    assert verdict(policy, "mixed", "http://videos.example/adult/education/..%2F..%2Fadult/1") is B
    assert verdict(policy, "mixed", "http://videos.example/ADULT/education/1") is B
    assert verdict(policy, "mixed", "http://videos.example/adult/1") is B


@pytest.mark.parametrize(
    "url",
    [
        "https://videos.example/%61dult/1",
        "https://videos.example//ADULT/1",
        "https://videos.example/kids/..%2Fadult/1",
    ],
)
def test_the_reason_names_the_entry_as_staff_wrote_it(policy: Policy, url: str) -> None:
    found = decide(Request.web(url), policy, who("careful"), OPEN)
    assert (found.reasons[0].step, found.reasons[0].rule) == (Step.OVERRIDE, "videos.example/%61dult")


def test_some_pages_of_a_site_let_its_name_through_but_not_another_page(policy: Policy) -> None:
    # A DNS or TLS question about bbc.example: some pages are allowed, so the name resolves; the
    # proxy then judges each page as above.
    by_name = decide(Request("www.bbc.example"), policy, who("young"), OPEN)
    assert (by_name.action, by_name.reasons[0].rule) == (A, "bbc.example/bitesize")
    assert verdict(policy, "young", "http://www.bbc.example/bitesize/..%2Fnews") is B


@settings(max_examples=400)
@given(spellings)
@example("/kids//../adult")
@example("/kids/%2F/../adult")
def test_no_spelling_a_server_reads_under_a_blocked_page_gets_past_the_entry(
    policy: Policy, path: str
) -> None:
    if served(path).lower().startswith("/adult"):
        assert verdict(policy, "careful", f"http://videos.example{path}") is B


@settings(max_examples=400)
@given(spellings.map(lambda p: "/bitesize" + p))
@example("/bitesize/x//../../news")
@example("/bitesize/..;/news")
def test_no_spelling_a_server_reads_outside_an_allowed_page_is_allowed(policy: Policy, path: str) -> None:
    if verdict(policy, "young", f"http://bbc.example{path}") is A:
        assert served(path).startswith("/bitesize")


@pytest.mark.parametrize(
    "url",
    [
        "https://files.example/setup.exe",
        "https://files.example/setup.%65xe",
        "https://files.example/x/../setup.%65%78%65",
    ],
)
def test_a_blocked_download_is_blocked_in_every_spelling(policy: Policy, url: str) -> None:
    assert verdict(policy, "careful", url) is B


def test_a_web_request_carries_its_canonical_url() -> None:
    request = Request.web("HTTP://0x7F.1/a/../%61ds?q=%7e#top")
    assert (request.host, request.url) == ("127.0.0.1", "HTTP://127.0.0.1/ads?q=~")
