"""A verdict as JSON: `appliance explain --json` prints `Verdict.as_json()`, and the event log keeps its
reasons without their grid. The expected texts are what both printed before they shared one method."""

from __future__ import annotations

import json

from profiles.categories import Severity
from profiles.verdict import Action, LogDetail, Reason, SafeTarget, Step, Verdict

REWRITTEN_AND_FLAGGED = Verdict(
    Action.REWRITE,
    "under-12",
    (
        Reason(Step.SAFE_SEARCH, Action.REWRITE, "safe search: google"),
        Reason(
            Step.CATEGORY,
            Action.BLOCK,
            "porn",
            category="adult",
            grid="content / sexual",
            severity=Severity.HIGH,
            source="ut1-adult",
            line=12,
            rule="||example.com^",
        ),
        Reason(Step.WATCH_LIST, Action.FLAG, "watch word", category="self-harm", severity=Severity.CRITICAL),
    ),
    Severity.CRITICAL,
    SafeTarget("google", "forcesafesearch.google.com", (("safe", "active"),), (("X-A", "b"),)),
    LogDetail.EVENT,
)

EXPLAINED = (
    '{"action": "rewrite", "profile": "under-12", "reasons": [{"step": "safe-search", '
    '"effect": "rewrite", "detail": "safe search: google", "category": "", "grid": "", '
    '"severity": "none", "source": "", "line": 0, "rule": ""}, {"step": "category", '
    '"effect": "block", "detail": "porn", "category": "adult", "grid": "content / sexual", '
    '"severity": "high", "source": "ut1-adult", "line": 12, "rule": "||example.com^"}, '
    '{"step": "watch-list", "effect": "flag", "detail": "watch word", "category": "self-harm", '
    '"grid": "", "severity": "critical", "source": "", "line": 0, "rule": ""}], '
    '"severity": "critical", "safe_search": {"engine": "google", '
    '"host": "forcesafesearch.google.com", "params": [["safe", "active"]], "headers": [["X-A", '
    '"b"]]}, "log": "event", "flagged": true}'
)
LOGGED = (
    '[{"step": "safe-search", "effect": "rewrite", "detail": "safe search: google", '
    '"category": "", "severity": "none", "source": "", "line": 0, "rule": ""}, '
    '{"step": "category", "effect": "block", "detail": "porn", "category": "adult", '
    '"severity": "high", "source": "ut1-adult", "line": 12, "rule": "||example.com^"}, '
    '{"step": "watch-list", "effect": "flag", "detail": "watch word", "category": "self-harm", '
    '"severity": "critical", "source": "", "line": 0, "rule": ""}]'
)


def test_a_verdict_as_json_is_every_field_in_order_with_enums_in_words_and_flagged_last() -> None:
    assert json.dumps(REWRITTEN_AND_FLAGGED.as_json()) == EXPLAINED


def test_a_plain_allow_as_json() -> None:
    assert json.dumps(Verdict(Action.ALLOW, "guest").as_json()) == (
        '{"action": "allow", "profile": "guest", "reasons": [], "severity": "none", '
        '"safe_search": null, "log": "count", "flagged": false}'
    )


def test_reasons_without_their_grid_as_the_event_log_keeps_them() -> None:
    reasons = [r.as_json(grid=False) for r in REWRITTEN_AND_FLAGGED.reasons]
    assert json.dumps(reasons) == LOGGED
