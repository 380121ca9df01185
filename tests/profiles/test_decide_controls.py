"""`decide` under staff's controls: pauses, grants ("allow for a while") and time budgets, in the
decision order (docs/profiles.md, "Staff in control"). Truth tables against the sample policy:

- a pause beats everything but help services and the portal (a centre pause leaves staff alone);
- a grant acts as the profile's own allow entry, never over a pause, the schedule, an always-blocked
  category or a spent internet budget, and safe search, watch lists and personal information still apply;
- a spent category budget blocks only its category; counted categories are named in the verdict.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from profiles.controls import INTERNET, NO_STANDING, Grant, Pause, Scope, Standing
from profiles.decide import decide
from profiles.identity import Child, Device, Identity, Via
from profiles.policy import Policy
from profiles.request import Request
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict
from tests.profiles.sample_policy import CLOSED, OPEN, who

A, B, F, R = Action.ALLOW, Action.BLOCK, Action.FLAG, Action.REWRITE
MAC = "aa:bb:cc:00:00:01"
STAFF_SIGNED_IN = Identity(
    "staff", Via.SESSION, Device("pc", "teen", mac=MAC), Child("s-r", "rose", "staff", staff=True)
)
STAFF_DEVICE = Identity("staff", Via.MAC, Device("office-pc", "staff", mac=MAC))


def paused(scope: Scope = Scope.DEVICE, *, at: datetime = OPEN, minutes: int | None = 30) -> Standing:
    until = None if minutes is None else at + timedelta(minutes=minutes)
    return Standing(
        pause=Pause(id=7, scope=scope, target=MAC, since=at - timedelta(minutes=1), until=until, by="rose")
    )


def granted(
    *, host: str | None = None, category: str | None = None, at: datetime = OPEN, **kw: object
) -> Standing:
    grant = Grant(
        id=12,
        child=None,
        device=MAC,
        host=host,
        category=category,
        since=at - timedelta(minutes=1),
        until=at + timedelta(minutes=30),
        by="rose",
        reason="project on the Tudors",
    )
    return Standing(grants=(grant,), **kw)  # type: ignore[arg-type]


def ask(
    policy: Policy, identity: str | Identity, subject: str, standing: Standing, at: datetime = OPEN, **kw: str
) -> Verdict:
    request = Request.web(subject, **kw) if "://" in subject else Request(subject)
    return decide(request, policy, who(identity) if isinstance(identity, str) else identity, at, standing)


def steps(verdict: Verdict) -> list[Step]:
    return [r.step for r in verdict.reasons]


# --- pauses --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "subject", "action", "step"),
    [
        # a paused device reaches help and the portal (to sign out), nothing else
        ("teen", "childline.org.uk", A, Step.HELP_SERVICE),
        ("teen", "appliance.lan", A, Step.PORTAL),
        ("teen", "use-application-dns.net", B, Step.BYPASS_CANARY),  # canaries as ever
        ("teen", "random.example", B, Step.PAUSED),
        ("teen", "edu.example", B, Step.PAUSED),  # allowlisted
        ("kid", "kids-news.example", B, Step.PAUSED),  # the profile's own allow entry
        ("teen", "adult.example", B, Step.PAUSED),  # what is blocked anyway is paused first
        ("teen", "malware.example", B, Step.PAUSED),
        ("tech", "random.example", B, Step.PAUSED),  # a device pause covers a bypassing profile's device
        ("teen", "https://www.google.com/search?q=homework", B, Step.PAUSED),
    ],
)
def test_a_pause_beats_everything_but_help_and_the_portal(
    policy: Policy, name: str, subject: str, action: Action, step: Step
) -> None:
    verdict = ask(policy, name, subject, paused())
    assert verdict.action is action
    assert steps(verdict)[0] is step


def test_a_pause_says_until_when_on_the_centres_clock_and_is_only_counted(policy: Policy) -> None:
    verdict = ask(policy, "teen", "random.example", paused(minutes=30))
    assert verdict.reasons == (Reason(Step.PAUSED, B, "paused by staff until 16:30", rule="7"),)
    assert verdict.log is LogDetail.COUNT
    summer = datetime(2026, 7, 14, 15, 0, tzinfo=UTC)  # London is an hour ahead in summer
    assert ask(policy, "teen", "random.example", paused(at=summer), summer).reasons[0].detail == (
        "paused by staff until 16:30"
    )
    assert ask(policy, "teen", "random.example", paused(minutes=None)).reasons[0].detail == "paused by staff"


def test_a_pause_over_at_now_blocks_nothing(policy: Policy) -> None:
    standing = paused(at=OPEN - timedelta(minutes=30), minutes=30)  # until == OPEN
    assert ask(policy, "teen", "random.example", standing).action is A


@pytest.mark.parametrize(
    ("identity", "action", "step"),
    [
        ("teen", B, Step.PAUSED),
        ("guest", B, Step.PAUSED),
        (STAFF_DEVICE, B, Step.PAUSED),  # staff's own device under a filtering profile: a device, paused
        (STAFF_SIGNED_IN, A, None),  # staff signed in at the portal keep working
        ("tech", A, Step.STAFF_BYPASS),  # so do profiles that bypass filtering
    ],
)
def test_a_centre_pause_is_for_the_children(
    policy: Policy, identity: str | Identity, action: Action, step: Step | None
) -> None:
    verdict = ask(policy, identity, "random.example", paused(Scope.CENTRE))
    assert verdict.action is action
    assert (steps(verdict) or [None])[0] is step


def test_a_pause_beats_a_grant(policy: Policy) -> None:
    standing = granted(host="random.example", pause=paused().pause)
    assert steps(ask(policy, "teen", "random.example", standing)) == [Step.PAUSED]


# --- grants --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "subject", "grant", "at", "action", "steps_"),
    [
        # a grant opens what the profile blocks: a blocked category, allowlist-only, own block entries
        ("teen", "adult.example", {"host": "adult.example"}, OPEN, A, [Step.GRANT]),
        ("teen", "www.adult.example", {"host": "adult.example"}, OPEN, A, [Step.GRANT]),  # subdomains
        ("kid", "random.example", {"host": "random.example"}, OPEN, A, [Step.GRANT]),
        (
            "teen",
            "https://social.example/groups/x",
            {"host": "social.example"},
            OPEN,
            F,
            [Step.GRANT, Step.FLAG_CATEGORY],
        ),
        # a grant for a category opens every site of it, and only those
        ("teen", "adult.example", {"category": "adult"}, OPEN, A, [Step.GRANT]),
        ("teen", "xxx.example", {"category": "adult"}, OPEN, A, [Step.GRANT]),
        ("guest", "chat.social.example", {"category": "social"}, OPEN, A, [Step.GRANT]),
        ("teen", "othersite.example", {"category": "adult"}, OPEN, A, []),
        ("kid", "othersite.example", {"category": "adult"}, OPEN, B, [Step.NOT_ALLOWLISTED]),
        # another site stays what it was
        ("teen", "xxx.example", {"host": "adult.example"}, OPEN, B, [Step.CATEGORY]),
        # never over an always-blocked category
        ("teen", "malware.example", {"host": "malware.example"}, OPEN, B, [Step.ALWAYS_BLOCKED]),
        ("teen", "doh.example", {"category": "bypass"}, OPEN, B, [Step.ALWAYS_BLOCKED]),
        # never over the schedule: closed is closed
        ("night", "random.example", {"host": "random.example"}, CLOSED, B, [Step.SCHEDULE]),
        ("kid", "random.example", {"host": "random.example"}, CLOSED, B, [Step.SCHEDULE]),
        ("kid", "random.example", {"host": "random.example"}, OPEN, A, [Step.GRANT]),
        # a flag-only schedule still flags
        ("late", "random.example", {"host": "random.example"}, CLOSED, F, [Step.SCHEDULE, Step.GRANT]),
    ],
)
def test_what_a_grant_opens(
    policy: Policy,
    name: str,
    subject: str,
    grant: dict[str, str],
    at: datetime,
    action: Action,
    steps_: list[Step],
) -> None:
    verdict = ask(policy, name, subject, granted(at=at, **grant), at)  # type: ignore[arg-type]
    assert verdict.action is action, verdict
    assert steps(verdict) == steps_, verdict


def test_a_grant_says_until_when_and_names_itself(policy: Policy) -> None:
    verdict = ask(policy, "teen", "adult.example", granted(host="adult.example"))
    assert verdict.reasons == (Reason(Step.GRANT, A, "allowed by staff until 16:30", rule="12"),)


def test_a_grant_ended_opens_nothing(policy: Policy) -> None:
    later = OPEN + timedelta(minutes=30)  # the grant's until
    assert ask(policy, "teen", "adult.example", granted(host="adult.example"), later).action is B


def test_a_grant_never_beats_a_spent_internet_budget(policy: Policy) -> None:
    standing = granted(host="adult.example", spent=frozenset({INTERNET}))
    assert steps(ask(policy, "teen", "adult.example", standing)) == [Step.BUDGET]


def test_a_granted_search_engine_is_still_made_safe_and_its_searches_still_watched(policy: Policy) -> None:
    standing = granted(host="www.google.com")
    search = ask(policy, "teen", "https://www.google.com/search?q=maths", standing)
    assert search.action is R and search.safe_search is not None
    assert search.safe_search.host == "forcesafesearch.google.com"
    assert Step.GRANT in steps(search)
    worrying = ask(policy, "teen", "https://www.google.com/search?q=suicide", standing)
    assert worrying.action is R and Step.WATCH_LIST in steps(worrying)
    assert worrying.log is LogDetail.EVENT
    blocked = ask(policy, "teen", "https://www.google.com/search?q=buy+a+gun", standing)
    assert blocked.action is B and steps(blocked) == [Step.WATCH_LIST]


def test_a_grant_still_stops_personal_information(policy: Policy) -> None:
    standing = granted(host="random.example")
    verdict = ask(
        policy, "kid", "https://random.example/form", standing, outbound_text="my email is amina@example.com"
    )
    assert verdict.action is B and steps(verdict) == [Step.PERSONAL_INFO]


def test_a_grant_does_not_open_downloads_the_profile_blocks(policy: Policy) -> None:
    standing = granted(host="random.example")
    assert steps(ask(policy, "teen", "https://random.example/setup.exe", standing)) == [Step.DOWNLOAD]


# --- budgets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "subject", "action", "step"),
    [
        ("teen", "random.example", B, Step.BUDGET),
        ("teen", "edu.example", B, Step.BUDGET),
        ("kid", "kids-news.example", B, Step.BUDGET),
        ("teen", "childline.org.uk", A, Step.HELP_SERVICE),
        ("teen", "appliance.lan", A, Step.PORTAL),
    ],
)
def test_a_spent_internet_budget_blocks_all_but_help_and_the_portal(
    policy: Policy, name: str, subject: str, action: Action, step: Step
) -> None:
    verdict = ask(policy, name, subject, Standing(spent=frozenset({INTERNET})))
    assert verdict.action is action
    assert steps(verdict)[0] is step


def test_a_spent_internet_budget_says_so_and_is_only_counted(policy: Policy) -> None:
    verdict = ask(policy, "teen", "random.example", Standing(spent=frozenset({INTERNET})))
    assert verdict.reasons == (Reason(Step.BUDGET, B, "today's internet time is used up"),)
    assert verdict.log is LogDetail.COUNT


@pytest.mark.parametrize(
    ("name", "subject", "action", "steps_"),
    [
        ("teen", "games.example", B, [Step.BUDGET]),  # flagged for teen, allowlisted too: spent is spent
        ("guest", "games.example", B, [Step.BUDGET]),  # a category the profile says nothing of
        ("teen", "social.example", F, [Step.FLAG_CATEGORY]),  # other sites stay open
        ("teen", "random.example", A, []),
        ("teen", "adult.example", B, [Step.CATEGORY]),
        ("teen", "malware.example", B, [Step.ALWAYS_BLOCKED]),
    ],
)
def test_a_spent_category_budget_blocks_only_its_category(
    policy: Policy, name: str, subject: str, action: Action, steps_: list[Step]
) -> None:
    verdict = ask(policy, name, subject, Standing(spent=frozenset({"games"})))
    assert verdict.action is action, verdict
    assert steps(verdict) == steps_, verdict


def test_a_spent_category_budget_names_the_category_and_is_only_counted(policy: Policy) -> None:
    verdict = ask(policy, "teen", "games.example", Standing(spent=frozenset({"games"})))
    assert verdict.reasons == (Reason(Step.BUDGET, B, "today's time for Games is used up", rule="games"),)
    assert verdict.log is LogDetail.COUNT


def test_a_grant_beats_a_spent_category_budget(policy: Policy) -> None:
    for grant in ({"host": "games.example"}, {"category": "games"}):
        standing = granted(spent=frozenset({"games"}), counted=frozenset({"games"}), **grant)
        verdict = ask(policy, "teen", "games.example", standing)
        assert verdict.action is F
        assert steps(verdict) == [Step.GRANT, Step.FLAG_CATEGORY, Step.BUDGET]  # still counted


def test_a_counted_category_is_named_and_changes_nothing_else(policy: Policy) -> None:
    counted = Standing(counted=frozenset({"games", "social"}))
    for name, subject in (("teen", "games.example"), ("teen", "social.example"), ("guest", "games.example")):
        plain = ask(policy, name, subject, NO_STANDING)
        verdict = ask(policy, name, subject, counted)
        category = subject.split(".")[0]
        title = {"games": "Games", "social": "Social networks"}[category]
        assert verdict.reasons == (
            *plain.reasons,
            Reason(Step.BUDGET, A, f"counts towards today's time for {title}", rule=category),
        )
        assert (verdict.action, verdict.severity, verdict.log) == (plain.action, plain.severity, plain.log)
    # a block is not time spent on the category; a site of no counted category is not named
    assert steps(ask(policy, "guest", "social.example", counted)) == [Step.CATEGORY]
    assert ask(policy, "teen", "random.example", counted).reasons == ()


# --- remembering ---------------------------------------------------------------------------------------


def test_verdicts_under_a_standing_are_never_remembered_nor_taken_from_memory(policy: Policy) -> None:
    spent = Standing(spent=frozenset({"games"}))
    first = ask(policy, "teen", "games.example", NO_STANDING)
    assert ask(policy, "teen", "games.example", NO_STANDING) is first  # remembered
    assert steps(ask(policy, "teen", "games.example", spent)) == [Step.BUDGET]
    assert ask(policy, "teen", "games.example", NO_STANDING) is first
    assert steps(ask(policy, "guest", "games.example", spent)) == [Step.BUDGET]
    assert ask(policy, "guest", "games.example", NO_STANDING).action is A
    paused_first = ask(policy, "teen", "plain-never-asked.example", paused())
    assert paused_first.action is B
    assert ask(policy, "teen", "plain-never-asked.example", NO_STANDING).action is A
