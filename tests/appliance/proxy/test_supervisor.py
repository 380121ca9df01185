"""`appliance proxy`'s supervisor: a worker forked from it ends as the interpreter would have ended it,
and never runs on into the supervisor's own code."""

from __future__ import annotations

import sys

import pytest

from appliance.proxy.supervisor import Worker


def _exits_with_3(argv: list[str]) -> int:
    sys.exit(3)


def _exits_with_a_message(argv: list[str]) -> int:
    sys.exit("cannot start: the compiled lists are damaged")


def _returns_0(argv: list[str]) -> int:
    return 0


def _raises(argv: list[str]) -> int:
    raise RuntimeError("a bug")


@pytest.mark.parametrize(
    ("main", "status", "said"),
    [
        (_returns_0, 0, ""),
        (_exits_with_3, 3, ""),
        (_exits_with_a_message, 1, "cannot start: the compiled lists are damaged"),
        (_raises, 1, "RuntimeError: a bug"),
    ],
)
def test_a_forked_worker_ends_with_the_status_its_main_gives(
    main, status: int, said: str, capfd: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    worker = Worker.fork(main, [])
    assert worker.wait(10) == status
    err = capfd.readouterr().err
    assert said in err
    assert ("Traceback" in err) is (main is _raises)
