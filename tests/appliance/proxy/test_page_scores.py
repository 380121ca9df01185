"""PageScores: an HTML page is held and scored only for a profile with phrase limits; every other
response is streamed (and counted); a scorer that fails closes the page for a child."""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy.test import tutils

import appliance.proxy.page_scores as page_scores
from appliance.proxy.enforce import Enforce
from appliance.proxy.identify import Identify
from appliance.proxy.page_scores import PageScores
from appliance.proxy.shared import Shared
from profiles.verdict import Verdict
from tests.appliance.proxy.world import CHILD, STAFF, flow, seen, shared, through


@pytest.fixture
def world(tmp_path: Path) -> Shared:
    return shared(tmp_path)


@pytest.mark.parametrize(
    ("client", "kind", "size", "held"),
    [
        (CHILD, "text/html", None, True),
        (CHILD, "application/xhtml+xml", "100", True),
        (CHILD, "text/html", str(10 << 20), False),  # larger than page_limit_kb: streamed
        (CHILD, "video/mp4", None, False),
        (STAFF, "text/html", None, False),  # no phrase limits
    ],
)
def test_pages_are_held_for_scoring_only_when_the_profile_scores_them(
    world: Shared, client: str, kind: str, size: str | None, held: bool
) -> None:
    addons = [Identify(world), Enforce(world), PageScores(world)]
    f = through(addons, "requestheaders", f=flow(client, "http://wiki.example/"))
    f.response = tutils.tresp(content=b"x")
    f.response.headers["content-type"] = kind
    if size is None:
        del f.response.headers["content-length"]
    else:
        f.response.headers["content-length"] = size
    through(addons, "responseheaders", f=f)
    assert (f.response.stream is False or f.response.stream is None) is held
    assert seen(f).score is held


def _broken(*args: object, **kwargs: object) -> Verdict:
    raise RuntimeError("a scorer fell over")


def test_a_page_scorer_error_replaces_the_page_for_a_child(
    world: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    addons = [Identify(world), Enforce(world), PageScores(world)]
    f = through(addons, "requestheaders", f=flow(CHILD, "http://wiki.example/wiki/Rainbow"))
    assert f.response is None
    f.response = tutils.tresp(content=b"<html>a page</html>")
    f.response.headers["content-type"] = "text/html"
    through(addons, "responseheaders", f=f)
    monkeypatch.setattr(page_scores, "judge_text", _broken)
    through(addons, "response", f=f)
    assert f.response.status_code == 503 and b"a page" not in (f.response.content or b"")
