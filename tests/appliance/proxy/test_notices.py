"""The time notice: a child with a few minutes of a budget left sees "5 minutes of games left today" at
the top of the HTML pages they open, and nothing else about any response changes: not other types, not
frames, not pages whose security policy would refuse the notice's inline style."""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy.test import tutils

from appliance.proxy.notices import Notices, notice_text
from appliance.proxy.shared import KEY, Seen, Shared
from profiles.controls import INTERNET, NO_STANDING, Left, Standing
from tests.appliance.proxy.world import CHILD, flow, shared, through

PAGE = b"<html><head><title>Maths</title></head><body class='x'><p>Fractions</p></body></html>"
WARNED = Standing(
    counted=frozenset({"games"}),
    left=Left(internet=40, categories={"games": 5}, spent=frozenset(), warned=frozenset({"games"})),
)


@pytest.fixture
def world(tmp_path: Path) -> Shared:
    return shared(tmp_path)


def _answered(
    world: Shared,
    standing: Standing,
    kind: str = "text/html; charset=utf-8",
    body: bytes = PAGE,
    csp: str = "",
    **request_headers: str,
) -> bytes:
    f = flow(CHILD, "http://maths.example/fractions", **request_headers)
    identity, who, _ = world.client(f.client_conn, 0.0)
    f.metadata[KEY] = Seen(who, identity, 0.0, standing)
    f.response = tutils.tresp(content=body)
    f.response.headers["content-type"] = kind
    if csp:
        f.response.headers["content-security-policy"] = csp
    through([Notices(world)], "responseheaders", "response", f=f)
    assert f.response.content is not None
    return f.response.content


def test_a_warned_childs_page_gets_the_notice_first_thing_in_its_body(world: Shared) -> None:
    page = _answered(world, WARNED)
    head, body, rest = page.partition(b"<body class='x'>")
    assert head + body == PAGE.partition(b"<p>")[0]
    assert rest.startswith(b'<div role="status"') and rest.endswith(b"<p>Fractions</p></body></html>")
    assert b">5 minutes of games left today</div>" in rest


def test_both_warnings_are_said_together() -> None:
    left = Left(internet=1, categories={"games": 4}, spent=frozenset(), warned=frozenset({INTERNET, "games"}))
    assert notice_text(left, {}) == "1 minute of internet left today; 4 minutes of games left today"


@pytest.mark.parametrize(
    ("why", "standing", "kind", "body", "csp", "headers"),
    [
        ("no budget", NO_STANDING, "text/html", PAGE, "", {}),
        ("plenty left", Standing(left=Left(30, {}, frozenset(), frozenset())), "text/html", PAGE, "", {}),
        ("not HTML", WARNED, "application/json", b'{"body": "<body>"}', "", {}),
        ("a frame", WARNED, "text/html", PAGE, "", {"sec_fetch_dest": "iframe"}),
        ("no body tag", WARNED, "text/html", b"<p>fragment</p>", "", {}),
        ("CSP: default-src", WARNED, "text/html", PAGE, "default-src 'self'", {}),
        ("CSP: nonces", WARNED, "text/html", PAGE, "style-src 'unsafe-inline' 'nonce-r4nd'", {}),
        (
            "CSP in the page",
            WARNED,
            "text/html",
            b'<meta http-equiv="Content-Security-Policy"><body>',
            "",
            {},
        ),
    ],
)
def test_everything_else_goes_as_it_came(
    world: Shared,
    why: str,
    standing: Standing,
    kind: str,
    body: bytes,
    csp: str,
    headers: dict[str, str],
) -> None:
    assert _answered(world, standing, kind, body, csp, **headers) == body, why


def test_a_policy_allowing_inline_styles_gets_the_notice(world: Shared) -> None:
    page = _answered(world, WARNED, csp="default-src 'self'; style-src 'self' 'unsafe-inline'")
    assert b"5 minutes of games left today" in page
