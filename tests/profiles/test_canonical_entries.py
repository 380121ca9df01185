"""A profile's own entries and every request meet in canonical form: no spelling of a host or a path
gets round an entry, and an allowed page is allowed however the browser spells it."""

from __future__ import annotations

import pytest

from profiles.decide import decide
from profiles.policy import Policy
from profiles.profile import Mode
from profiles.request import Request
from profiles.verdict import Action, Step
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
    profiles = dict(PROFILES, young=young, careful=careful)
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
        ("https://videos.example/kids%2F..%2Fadult/1", A),  # an encoded slash is no slash
        ("http://10.0.0.2/admin", B),
        ("http://167772162/%61dmin", B),
        ("http://10.0.0.2/home", A),
    ],
)
def test_a_blocked_address_or_page_is_blocked_in_every_spelling(
    policy: Policy, url: str, action: Action
) -> None:
    assert verdict(policy, "careful", url) is action


def test_the_reason_names_the_entry_as_staff_wrote_it(policy: Policy) -> None:
    found = decide(Request.web("https://videos.example/%61dult/1"), policy, who("careful"), OPEN)
    assert (found.reasons[0].step, found.reasons[0].rule) == (Step.OVERRIDE, "videos.example/%61dult")


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
