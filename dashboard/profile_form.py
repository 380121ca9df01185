"""One profile as a form: what the form shows of a profile, and the profiles file with the form's
answers written in.

The file is edited as a ruamel.yaml round trip (a dependency of mitmproxy, already installed with the
appliance): its comments, its layout and every key the form does not own are kept as they were. The
form owns a profile's mode, blocked / flagged / allowed categories, its hours, its safe search and its
own allow and block entries; nothing here judges the result: the caller checks the new text as
`appliance check` does before it replaces the file.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from filters.errors import ApplianceError
from profiles.categories import Category, CategoryMap, Kind
from profiles.profile import Mode, Profile
from profiles.schedule import DAYS, Outside, Window, day_runs

SEVERITIES = ("low", "medium", "high")
# A risk category's choices in the form, in the order shown; an allowlist category is `allow` or ``.
RISK_CHOICES = ("", "block", *(f"flag-{s}" for s in SEVERITIES))
YOUTUBE_MODES = ("strict", "moderate", "off")
OUTSIDE_CHOICES = tuple(o.value for o in Outside)
SPARE_WINDOWS = 2  # empty rows offered below a profile's windows, to add some


class FormError(ApplianceError):
    """The profiles file cannot be edited with the form (not YAML, or the profile is not in it)."""


@dataclass(frozen=True)
class CategoryChoice:
    """One category as the form offers it: its plain label, its three-Cs place and the current choice."""

    name: str
    label: str
    grid: str  # `contact / sexual`, or `allowlist`
    choices: tuple[str, ...]
    chosen: str
    always_blocked: bool


@dataclass(frozen=True)
class HoursRow:
    """One opening window as text fields: days (`mon-fri`), from and to (`HH:MM`)."""

    days: str
    start: str
    end: str


@dataclass(frozen=True)
class ProfileForm:
    """What the form shows for one profile."""

    name: str
    mode: str
    categories: tuple[CategoryChoice, ...]
    hours: tuple[HoursRow, ...]
    outside: str
    limited: bool  # has opening hours at all
    safe_search: bool
    youtube: str
    allow: str  # one entry a line
    block: str


def _days_text(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "daily"
    runs = day_runs(days)
    return ",".join(DAYS[r[0]] if len(r) == 1 else f"{DAYS[r[0]]}-{DAYS[r[-1]]}" for r in runs)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def hours_rows(profile: Profile) -> tuple[HoursRow, ...]:
    """The profile's opening windows, every named schedule it uses resolved."""
    if profile.schedule is None:
        return ()
    windows: list[Window] = [w for s in profile.schedule.schedules for w in s.windows]
    return tuple(HoursRow(_days_text(w.days), _clock(w.start), _clock(w.end)) for w in windows)


def category_choice(profile: Profile, category: Category, label: str) -> CategoryChoice:
    name = category.name
    if category.kind is Kind.ALLOWLIST:
        choices: tuple[str, ...] = ("", "allow")
        chosen = "allow" if name in profile.allowed_categories else ""
    else:
        choices = RISK_CHOICES
        if name in profile.blocked_categories:
            chosen = "block"
        elif name in profile.flagged_categories:
            chosen = f"flag-{profile.flagged_categories[name]}"
        else:
            chosen = ""
    return CategoryChoice(name, label, category.grid, choices, chosen, category.always_blocked)


def profile_form(profile: Profile, categories: CategoryMap, labels: Mapping[str, str]) -> ProfileForm:
    """The form for `profile` as the policy in force has it; `labels` are the categories in words."""
    return ProfileForm(
        name=profile.name,
        mode=profile.mode.value,
        categories=tuple(
            category_choice(profile, c, labels.get(c.name, c.title))
            for c in sorted(categories.values(), key=lambda c: (c.kind is Kind.ALLOWLIST, c.grid, c.name))
        ),
        hours=hours_rows(profile),
        outside=(profile.schedule.outside.value if profile.schedule else Outside.ALLOWLIST.value),
        limited=profile.schedule is not None,
        safe_search=profile.safe_search.enabled,
        youtube=str(profile.safe_search.youtube.value),
        allow="\n".join(profile.allow),
        block="\n".join(profile.block),
    )


@dataclass(frozen=True)
class Answers:
    """The form as submitted: what the profile should become."""

    mode: str
    categories: Mapping[str, str]  # name -> `block`, `flag-low` ..., `allow` or ``
    hours: tuple[HoursRow, ...]  # empty rows left out
    outside: str
    limited: bool
    safe_search: bool
    youtube: str
    allow: tuple[str, ...]
    block: tuple[str, ...]


def _yaml() -> YAML:
    yaml = YAML()  # round trip: comments, order and flow style kept
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _flow(items: list[Any]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _flow_map(items: Mapping[str, Any]) -> CommentedMap:
    node = CommentedMap(items)
    node.fa.set_flow_style()
    return node


def _set(node: CommentedMap, key: str, value: Any, *, keep_if: bool = True) -> None:
    """Set `key` (or drop it when `keep_if` is false), leaving a value that says the same thing as it was."""
    if not keep_if:
        node.pop(key, None)
    elif node.get(key) != value:
        node[key] = value


def _update_list(node: CommentedMap, key: str, wanted: list[str]) -> None:
    """Make `node[key]` hold `wanted`: the entries kept in their order, new ones added at the end."""
    current = node.get(key)
    if not wanted:
        node.pop(key, None)
    elif isinstance(current, CommentedSeq):
        for item in [i for i in current if i not in wanted]:
            current.remove(item)
        current.extend(w for w in wanted if w not in current)
    else:
        node[key] = _flow(wanted)


def _update_flags(node: CommentedMap, wanted: Mapping[str, str]) -> None:
    """`flagged_categories` as `wanted` (category: severity), its order and form kept where it can be."""
    current = node.get("flagged_categories")
    if not wanted:
        node.pop("flagged_categories", None)
    elif isinstance(current, CommentedMap):
        for name in [n for n in current if n not in wanted]:
            del current[name]
        for name, severity in wanted.items():
            if current.get(name) != severity:
                current[name] = severity
    else:
        node["flagged_categories"] = _flow_map(wanted)


def _load(text: str, name: str) -> tuple[YAML, CommentedMap, CommentedMap]:
    yaml = _yaml()
    try:
        data = yaml.load(text)
    except YAMLError as e:
        raise FormError(f"the profiles file is not valid YAML, so the form cannot change it: {e}") from e
    profiles = data.get("profiles") if isinstance(data, CommentedMap) else None
    if not isinstance(profiles, CommentedMap) or not isinstance(profiles.get(name), CommentedMap):
        raise FormError(f"there is no profile {name!r} in the profiles file")
    return yaml, data, profiles[name]


def _dump(yaml: YAML, data: CommentedMap) -> str:
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def apply_answers(text: str, profile: Profile, answers: Answers) -> str:
    """The profiles file `text` with `profile` changed to `answers`; everything else as it was.

    Hours that differ from the profile's are written as a schedule of its own (`<name>-hours`), so a
    named schedule other profiles share is never changed; unchanged hours keep their names."""
    yaml, data, node = _load(text, profile.name)
    _set(node, "mode", answers.mode, keep_if=answers.mode != Mode.FILTERED.value or "mode" in node)
    chosen = answers.categories
    blocked = [n for n, c in chosen.items() if c == "block"]
    flagged = {n: c.removeprefix("flag-") for n, c in chosen.items() if c.startswith("flag-")}
    allowed = [n for n, c in chosen.items() if c == "allow"]
    if set(blocked) != set(profile.blocked_categories):
        _update_list(node, "blocked_categories", blocked)
    if flagged != {n: str(s) for n, s in profile.flagged_categories.items()}:
        _update_flags(node, flagged)
    if set(allowed) != set(profile.allowed_categories):
        _update_list(node, "allowed_categories", allowed)
    if answers.allow != profile.allow:
        _update_list(node, "allow", list(answers.allow))
    if answers.block != profile.block:
        _update_list(node, "block", list(answers.block))
    safe = profile.safe_search
    if (answers.safe_search, answers.youtube) != (safe.enabled, str(safe.youtube.value)):
        node["safe_search"] = _flow_map({"enabled": answers.safe_search, "youtube": answers.youtube})
    _apply_hours(data, node, profile, answers)
    return _dump(yaml, data)


def _apply_hours(data: CommentedMap, node: CommentedMap, profile: Profile, answers: Answers) -> None:
    if not answers.limited:
        node.pop("schedule", None)
        return
    same_windows = profile.schedule is not None and answers.hours == hours_rows(profile)
    if same_windows and profile.schedule is not None:
        if answers.outside != profile.schedule.outside.value:
            node["schedule"]["outside"] = answers.outside
        return
    own = f"{profile.name}-hours"
    schedules = data.get("schedules")
    if not isinstance(schedules, CommentedMap):
        schedules = data["schedules"] = CommentedMap()
    schedules[own] = CommentedSeq(
        [_flow_map({"days": h.days, "from": h.start, "to": h.end}) for h in answers.hours]
    )
    node["schedule"] = _flow_map({"windows": _flow([own]), "outside": answers.outside})


def add_allow_entry(text: str, profile: Profile, host: str) -> str:
    """The profiles file `text` with `host` added to `profile`'s own allow entries."""
    yaml, data, node = _load(text, profile.name)
    entries = node.get("allow")
    if isinstance(entries, list):
        entries.append(host)
    else:
        node["allow"] = _flow([host])
    return _dump(yaml, data)


def changes(old: Profile, new: Profile) -> list[str]:
    """What the form changed, for the audit log: `blocked categories +games`, `allow +example.org`."""

    def diff(what: str, before: Any, after: Any) -> None:
        gone = sorted(set(before) - set(after))
        added = sorted(set(after) - set(before))
        if gone or added:
            out.append(f"{what} " + " ".join([*(f"+{a}" for a in added), *(f"-{g}" for g in gone)]))

    out: list[str] = []
    if old.mode != new.mode:
        out.append(f"mode {old.mode.value} → {new.mode.value}")
    diff("blocked categories", old.blocked_categories, new.blocked_categories)
    before_flags = {f"{n}:{s}" for n, s in old.flagged_categories.items()}
    diff("flagged categories", before_flags, {f"{n}:{s}" for n, s in new.flagged_categories.items()})
    diff("allowed categories", old.allowed_categories, new.allowed_categories)
    diff("allow", old.allow, new.allow)
    diff("block", old.block, new.block)
    if hours_rows(old) != hours_rows(new) or (old.schedule is None) != (new.schedule is None):
        words = "; ".join(f"{h.days} {h.start}–{h.end}" for h in hours_rows(new)) or "no time limits"
        out.append(f"hours {words}")
    if old.schedule and new.schedule and old.schedule.outside != new.schedule.outside:
        out.append(f"outside hours {new.schedule.outside.value}")
    if old.safe_search != new.safe_search:
        s = new.safe_search
        out.append(f"safe search {'on' if s.enabled else 'off'}, YouTube {s.youtube.value}")
    return out
