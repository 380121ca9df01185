"""What `appliance dashboard` tells staff to open: an address they can type."""

from __future__ import annotations

import pytest

from dashboard.serve import site_address


@pytest.mark.parametrize(
    ("host", "port", "shown"),
    [
        ("127.0.0.1", 8000, "127.0.0.1:8000"),  # the demo
        ("0.0.0.0", 80, "<the appliance's address>"),  # the Pi: every address, the usual port
        ("::", 8000, "<the appliance's address>:8000"),
        ("192.168.60.1", 80, "192.168.60.1"),
        ("fd00::1", 8000, "[fd00::1]:8000"),
    ],
)
def test_the_address_shown_for_a_listening_address(host: str, port: int, shown: str) -> None:
    assert site_address(host, port) == shown
