"""Reading the router's refusal counts: the new refusals between two readings (the kernel's counts can go
down), and a reader without nftables told so. The counts themselves, from real packets through the real
rules: tests/deploy/test_refusals_netns.py."""

from __future__ import annotations

import functools
import subprocess

import pytest

from appliance.refusals import RefusalsUnreadable, new_refusals, refused_tunnels

A, B = "192.168.50.20", "192.168.50.21"


@pytest.mark.parametrize(
    ("previous", "current", "new"),
    [
        ({}, {}, {}),
        ({}, {A: 3}, {A: 3}),  # first seen: all of it
        ({A: 3}, {A: 3}, {}),  # nothing since
        ({A: 3}, {A: 5, B: 1}, {A: 2, B: 1}),  # two more, and a new device
        ({A: 3, B: 4}, {B: 4}, {}),  # A's count dropped after an hour's quiet: nothing new
        ({A: 5}, {A: 2}, {A: 2}),  # dropped and refused twice since (or the rules loaded again)
        ({A: 5}, {}, {}),  # the rules loaded again, nothing since
    ],
)
def test_the_new_refusals_between_two_readings(
    previous: dict[str, int], current: dict[str, int], new: dict[str, int]
) -> None:
    assert new_refusals(previous, current) == new


def test_without_nftables_the_reader_says_to_install_it() -> None:
    nowhere = functools.partial(subprocess.run, env={"PATH": "/nonexistent"})
    with pytest.raises(RefusalsUnreadable, match="nft is not installed"):
        refused_tunnels(nowhere)


def test_an_unknown_kind_of_refusal_is_a_mistake_in_the_caller() -> None:
    with pytest.raises(ValueError, match="unknown kinds of refusal \\['vpn'\\]: they are dot, doh, quic"):
        refused_tunnels(kinds=("dot", "vpn"))
