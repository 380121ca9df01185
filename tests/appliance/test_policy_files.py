"""The policy files: the shipped ones read cleanly; a mistake is refused with file:line and a hint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from appliance.config import PolicySettings
from appliance.policy_files import PolicyFileErrors, read_policy_files
from profiles.categories import Kind, Severity
from profiles.controls import Budget
from profiles.profile import Mode
from profiles.safesearch import YouTubeMode
from profiles.schedule import Outside
from profiles.verdict import Action

SHIPPED = PolicySettings()


def test_the_shipped_policy_reads_cleanly() -> None:
    files = read_policy_files(SHIPPED)
    assert set(files.profiles) == {"guest", "under-10", "10-12", "13-17", "staff"}
    for profile in files.profiles.values():
        assert profile.description and profile.reasoning, f"{profile.name} must explain itself"
    for category in files.categories.values():
        if category.kind is Kind.RISK:
            assert category.grid.count("/") == 1 and category.severity > Severity.NONE
    assert files.profiles["under-10"].mode is Mode.ALLOWLIST_ONLY
    assert "social-networks" in files.profiles["10-12"].blocked_categories
    assert "social-networks" in files.profiles["13-17"].flagged_categories
    assert files.profiles["13-17"].safe_search.youtube is YouTubeMode.MODERATE
    assert not files.profiles["staff"].intercept_tls and not files.profiles["staff"].safe_search.enabled
    assert files.categories.for_label("IllegalDrugs") is files.categories["drugs"]  # an e2guardian label
    assert files.safe_search.engine_for("www.google.co.uk") is not None
    assert len(files.watch_lists["self-harm"].terms) > 10


def _setup(tmp_path: Path, file: str, old: str, new: str) -> tuple[PolicySettings, Path, int]:
    """Copy the shipped files, replace `old` by `new` in one; return settings, that file, new's line."""
    paths = {}
    for field in ("categories", "profiles", "safe_search", "watch_lists"):
        source: Path = getattr(SHIPPED, field)
        target = tmp_path / source.name
        target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
        paths[field] = target
    path = paths[file]
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    line = text[: text.index(new)].count("\n") + 1 + (new.lstrip("\n") != new)
    return dataclasses.replace(SHIPPED, **paths), path, line


MISTAKES = [
    # file, text in the shipped file, the mistake, words the message must have
    (
        "profiles",
        "blocked_categories: [adult, violence-hate, weapons, drugs, dating,",
        "blocked_categories: [adult, gamez, violence-hate, weapons, drugs, dating,",
        ["profile '13-17': unknown category 'gamez'"],
    ),
    (
        "profiles",
        "    blocked_downloads: [exe, msi, apk, bat, cmd, scr, torrent]\n",
        "    blocked_downlods: [exe]\n",
        ["unknown key 'blocked_downlods'", "did you mean 'blocked_downloads'"],
    ),
    (
        "profiles",
        '{days: sat, from: "10:00", to: "17:00"}',
        '{days: sat, from: "10:00", to: "25:00"}',
        ["schedule 'opening-hours'", "'25:00'", "between 00:00 and 24:00"],
    ),
    (
        "profiles",
        "windows: [opening-hours, late-club]",
        "windows: [opening-hours, after-hours]",
        ["unknown schedule 'after-hours'", "known: holiday-club, late-club, opening-hours"],
    ),
    (
        "profiles",
        "    mode: allowlist-only\n",
        "    mode: whitelist\n",
        ["profile 'under-10'", "'mode' is 'whitelist'", "filtered, allowlist-only"],
    ),
    (
        "profiles",
        "youtube: moderate}",
        "youtube: sometimes}",
        ["'youtube' is 'sometimes'", "strict, moderate, off"],
    ),
    (
        "profiles",
        "{adult: 150, violence-hate: 200}",
        "{adult: lots, violence-hate: 200}",
        ["the limit for 'adult' must be a whole number"],
    ),
    (
        "profiles",
        "watch: [self-harm, grooming, bullying, violence]\n    personal_info: {action: flag",
        "watch: [self-harm, groming, bullying, violence]\n    personal_info: {action: flag",
        ["unknown watch list 'groming'"],
    ),
    (
        "profiles",
        "    personal_info: {action: flag, kinds: [phone, email, address, handle]}\n    intercept_tls: true",
        "    personal_info: {action: flag, kinds: [phone, postcard]}\n    intercept_tls: true",
        ["'postcard' is not one of"],
    ),
    ("profiles", "  staff:\n", "  staff\n", ["not valid YAML"]),
    (
        "categories",
        "    area: content\n    risk: sexual\n    severity: high\n",
        "    area: content\n    risk: sexual\n    severity: dire\n",
        ["'severity' is 'dire'"],
    ),
    (
        "categories",
        "    area: contact\n    risk: commercial\n    severity: low\n",
        "    area: contract\n    risk: commercial\n    severity: low\n",
        ["'area' is 'contract'", "content, contact, conduct"],
    ),
    (
        "categories",
        "    labels: [gambling, arjel]",
        "    labels: [gambling, arjel, agressif]",
        ["'agressif' feeds both"],
    ),
    (
        "safe_search",
        "    target: strict.bing.com",
        "    target: strict..bing.com",
        ["'strict..bing.com' is not a host name"],
    ),
    ("watch_lists", "    category: bullying\n", "    category: bulying\n", ["unknown category 'bulying'"]),
]


@pytest.mark.parametrize(("file", "old", "new", "words"), MISTAKES)
def test_a_mistake_is_refused_with_file_line_and_hint(
    tmp_path: Path, file: str, old: str, new: str, words: list[str]
) -> None:
    settings, path, line = _setup(tmp_path, file, old, new)
    with pytest.raises(PolicyFileErrors) as caught:
        read_policy_files(settings)
    messages = caught.value.errors
    found = [m for m in messages if all(w in m for w in words)]
    assert found, messages
    assert found[0].startswith(f"{path}:"), found[0]
    reported = int(found[0].split(":")[1])
    assert abs(reported - line) <= 2, (found[0], line)  # the line of the mistake, or its entry's first line


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    settings, path, _ = _setup(tmp_path, "profiles", "    mode: allowlist-only\n", "    mode: whitelist\n")
    text = (
        path.read_text()
        .replace("youtube: moderate}", "youtube: loud}")
        .replace(
            "[adult, violence-hate, weapons, drugs, dating, gambling, piracy, hacking, scams, ads]",
            "[adult, gamez]",
        )
    )
    path.write_text(text)
    with pytest.raises(PolicyFileErrors) as caught:
        read_policy_files(dataclasses.replace(settings, timezone="Europe/Atlantis"))
    joined = "\n".join(caught.value.errors)
    for words in ("whitelist", "'loud'", "'gamez'", "Europe/Atlantis"):
        assert words in joined
    assert len(caught.value.errors) >= 4


def test_a_missing_guest_profile_is_refused(tmp_path: Path) -> None:
    settings, _, _ = _setup(tmp_path, "profiles", "  guest:\n", "  visitor:\n")
    with pytest.raises(PolicyFileErrors, match="no profile 'guest'"):
        read_policy_files(settings)


def test_a_key_written_twice_is_refused(tmp_path: Path) -> None:
    settings, _, _ = _setup(
        tmp_path,
        "profiles",
        "    log_allowed: count\n\n  under-10:",
        "    log_allowed: count\n    log_allowed: event\n\n  under-10:",
    )
    with pytest.raises(PolicyFileErrors, match="'log_allowed' appears twice"):
        read_policy_files(settings)


def test_profile_entries_keep_the_case_of_their_paths(tmp_path: Path) -> None:
    settings, _, _ = _setup(
        tmp_path,
        "profiles",
        "    allowed_categories: [educational]\n",
        "    allowed_categories: [educational]\n    block: [EN.Wikipedia.org/wiki/Some_Page]\n",
    )
    assert read_policy_files(settings).profiles["13-17"].block == ("en.wikipedia.org/wiki/Some_Page",)


def test_times_and_answers_read_as_written(tmp_path: Path) -> None:
    # YAML 1.1 would read 15:00 as the number 900 and `off` as false; these files are read as YAML 1.2.
    settings, _, _ = _setup(
        tmp_path,
        "profiles",
        '{days: mon-fri, from: "15:00", to: "19:30"}',
        "{days: mon-fri, from: 15:00, to: 19:30}",
    )
    path = settings.profiles
    path.write_text(path.read_text().replace("youtube: moderate}", "youtube: off}"))
    files = read_policy_files(settings)
    assert files.profiles["13-17"].safe_search.youtube is YouTubeMode.OFF
    schedule = files.profiles["13-17"].schedule
    assert schedule is not None and schedule.outside is Outside.ALLOWLIST
    window = schedule.schedules[0].windows[0]
    assert (window.start, window.end) == (15 * 60, 19 * 60 + 30)
    assert files.watch_lists["self-harm"].action is Action.FLAG


_TEEN_DOWNLOADS = "    blocked_downloads: [exe, msi, apk, bat, cmd, scr, torrent]\n"


def test_a_profiles_budget_reads_as_written(tmp_path: Path) -> None:
    settings, _, _ = _setup(
        tmp_path,
        "profiles",
        _TEEN_DOWNLOADS,
        _TEEN_DOWNLOADS + "    budget: {minutes: 120, categories: {games: 30, social-networks: 45}}\n",
    )
    files = read_policy_files(settings)
    assert files.profiles["13-17"].budget == Budget(120, {"games": 30, "social-networks": 45})
    assert files.profiles["10-12"].budget is None  # none unless written


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("{minutes: 90}", Budget(90)),
        ("{categories: {games: 30}}", Budget(None, {"games": 30})),
        ("{minutes: 1440}", Budget(1440)),
        ("{}", None),
    ],
)
def test_a_budget_may_limit_the_internet_or_categories_or_both(
    tmp_path: Path, written: str, read: Budget | None
) -> None:
    settings, _, _ = _setup(
        tmp_path, "profiles", _TEEN_DOWNLOADS, _TEEN_DOWNLOADS + f"    budget: {written}\n"
    )
    assert read_policy_files(settings).profiles["13-17"].budget == read


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("{minutes: 120, categories: {gamez: 30}}", ["profile '13-17': budget: unknown category 'gamez'"]),
        ("{minutes: 0}", ["profile '13-17': budget: minutes must be a whole number from 1 to 1440"]),
        ("{minutes: -5}", ["minutes must be a whole number from 1 to 1440"]),
        ("{minutes: 1441}", ["minutes must be a whole number from 1 to 1440"]),
        ("{minutes: 1.5}", ["minutes must be a whole number from 1 to 1440"]),
        ("{minutes: lots}", ["minutes must be a whole number from 1 to 1440"]),
        ("{categories: {games: 0}}", ["the minutes for 'games' must be a whole number from 1 to 1440"]),
        ("{categories: {games: 2000}}", ["the minutes for 'games' must be a whole number from 1 to 1440"]),
        ("{minuts: 120}", ["unknown key 'minuts' in profile '13-17' budget", "did you mean 'minutes'"]),
        ("{categories: [games]}", ["'categories' must be a mapping"]),
        ("120", ["'budget' must be a mapping"]),
    ],
)
def test_a_wrong_budget_is_refused_with_file_line_and_hint(
    tmp_path: Path, written: str, words: list[str]
) -> None:
    settings, path, line = _setup(
        tmp_path, "profiles", _TEEN_DOWNLOADS, _TEEN_DOWNLOADS + f"    budget: {written}\n"
    )
    with pytest.raises(PolicyFileErrors) as caught:
        read_policy_files(settings)
    found = [m for m in caught.value.errors if all(w in m for w in words)]
    assert found, caught.value.errors
    assert found[0].startswith(f"{path}:{line + 1}:"), (found[0], line)
