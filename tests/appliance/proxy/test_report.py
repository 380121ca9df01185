"""The block page's "report a problem" form, attacked: it fails closed (a broken token or an oversized
form never reaches the site), and a token counts once, from the device that was shown the block, on the
blocked host."""

from __future__ import annotations

import contextlib
import re
import time

import pytest

from appliance.proxy.report import REPORT_PATH, Blocked, make_token, read_token
from tests.appliance.proxy.conftest import KIDS, PHONE, TEENS, Origin, Proxy, fetch
from tests.appliance.proxy.test_live import _events

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _block_token(proxy: Proxy, origin: Origin, device: str) -> str:
    _, _, body = fetch(proxy, device, f"http://www.pornhub.com:{origin.http_port}/private")
    found = re.search(rb'name="token" value="([^"]+)"', body)
    assert found is not None
    return found.group(1).decode()


def _report(proxy: Proxy, origin: Origin, device: str, body: bytes, host: str = "www.pornhub.com") -> int:
    url = f"http://{host}:{origin.http_port}{REPORT_PATH}"
    status, _, _ = fetch(proxy, device, url, method="POST", body=body, headers=FORM)
    return status


def _reports_reaching(origin: Origin) -> list[object]:
    return [s for s in origin.seen if s.path.startswith(REPORT_PATH)]


@pytest.mark.parametrize(
    "token",
    [
        "abc.\u00e9\u00e9\u00e9",  # a non-ASCII signature: raised inside the addon, and the form went on
        "\u00e9" * 3000,
        "not-a-token",
        "",
        "e30=.0123456789abcdef0123456789abcdef",
    ],
)
def test_a_broken_report_token_is_refused_and_never_reaches_the_site(
    proxy: Proxy, origin: Origin, token: str
) -> None:
    before = len(_reports_reaching(origin))
    body = b"token=" + token.encode("utf-8") + b"&note=hi"
    assert _report(proxy, origin, KIDS, body) == 400
    assert len(_reports_reaching(origin)) == before


def test_a_report_form_over_the_limit_is_never_streamed_to_the_site(proxy: Proxy, origin: Origin) -> None:
    before = len(_reports_reaching(origin))
    token = _block_token(proxy, origin, KIDS)
    body = f"token={token}&note=".encode() + b"x" * (2 << 20)  # past the upload and page limits
    status = 0
    with contextlib.suppress(OSError):  # the proxy may close the connection while the form is being sent
        status = _report(proxy, origin, KIDS, body)
    assert status in (0, 400, 413)
    time.sleep(0.3)
    assert len(_reports_reaching(origin)) == before


def test_a_report_token_counts_once_from_its_device_on_its_host(proxy: Proxy, origin: Origin) -> None:
    token = _block_token(proxy, origin, TEENS)
    form = f"token={token}&note=homework+about+health".encode()
    assert _report(proxy, origin, PHONE, form) == 400  # another device
    assert _report(proxy, origin, TEENS, form, host="kiddle.co") == 400  # another host
    assert _report(proxy, origin, TEENS, form) == 200
    assert _report(proxy, origin, TEENS, form) == 400  # replayed
    rows = _events(proxy, "detail = 'report' AND reasons LIKE '%homework about health%'")
    time.sleep(0.6)
    rows = _events(proxy, "detail = 'report' AND reasons LIKE '%homework about health%'")
    assert len(rows) == 1 and rows[0]["client"] == TEENS


def test_a_token_names_its_block_device_and_once_and_nothing_else_reads_as_one() -> None:
    key = b"k" * 32
    now = time.time()
    token = make_token(key, Blocked("www.pornhub.com", "category: adult", now, "192.168.50.23"))
    found = read_token(key, token, now)
    assert found is not None and (found.host, found.device) == ("www.pornhub.com", "192.168.50.23")
    assert len(found.nonce) >= 16
    again = make_token(key, Blocked("www.pornhub.com", "category: adult", now, "192.168.50.23"))
    assert read_token(key, again, now).nonce != found.nonce  # type: ignore[union-attr]
    assert read_token(key, token, now + 2 * 24 * 3600) is None
    assert read_token(b"x" * 32, token, now) is None
    for broken in (token + "\u00e9", token[:-1] + "\u00ff", "\x00" * 10, token.replace(".", "")):
        assert read_token(key, broken, now) is None
