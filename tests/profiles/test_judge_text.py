"""Pages scored against a profile's phrase limits, per category (e2guardian's weighted phrase lists)."""

from __future__ import annotations

import pytest

from filters.compile import IndexBuilder
from filters.index import FilterIndex, SourceInfo
from filters.phrases import parse_phrase_list
from filters.report import ReportBuilder
from profiles.categories import Severity
from profiles.decide import judge_text
from profiles.policy import Policy
from profiles.profile import PhraseRule
from profiles.verdict import Action, LogDetail, Step
from tests.profiles.sample_policy import CATEGORIES, LONDON, PROFILES, profile, who

PHRASES = """#listcategory: "Porn"
< porn><40>
<xxx><30>
<sex education><-40>
<banned-word><0>
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    builder = IndexBuilder()
    builder.add_source(SourceInfo("phrases", "adult", "e2guardian-phrases", "/lists/phrases"))
    builder.add_phrases(
        parse_phrase_list(PHRASES.splitlines(), "phrases", ReportBuilder("p"), category="adult")
    )
    profiles = dict(
        PROFILES,
        teen=profile("teen", phrases=PhraseRule({"adult": 100}, Action.BLOCK)),
        late=profile("late", phrases=PhraseRule({"adult": 50}, Action.FLAG)),
    )
    return Policy(CATEGORIES, profiles, FilterIndex(builder.build()), LONDON)


@pytest.mark.parametrize(
    ("name", "text", "action"),
    [
        ("teen", "<p>a page about rainbows</p>", Action.ALLOW),
        ("teen", "<p>porn porn</p>", Action.ALLOW),  # 80, under the limit of 100
        ("teen", "<p>porn porn xxx</p>", Action.BLOCK),  # 110
        ("teen", "<p>porn porn xxx, a sex education page</p>", Action.ALLOW),  # 70: good phrases count down
        ("late", "<p>porn porn</p>", Action.FLAG),  # over its limit of 50, and it flags instead
        ("guest", "<p>porn porn porn porn xxx</p>", Action.ALLOW),  # no limits: pages are not scored
    ],
)
def test_phrase_limits(policy: Policy, name: str, text: str, action: Action) -> None:
    assert judge_text(text, policy, who(name)).action is action


def test_the_reason_names_the_score_the_limit_and_the_heaviest_phrase(policy: Policy) -> None:
    verdict = judge_text("<p>porn porn xxx</p>", policy, who("teen"))
    (reason,) = verdict.reasons
    assert reason.step is Step.PHRASES and reason.category == "adult" and reason.severity is Severity.HIGH
    assert "scored 110" in reason.detail and "limit 100" in reason.detail
    assert reason.rule == "< porn>" and reason.source == "phrases"
    assert verdict.log is LogDetail.EVENT
