"""Profiles and lists: the profiles in force in plain words, "why is this blocked?", the list sources
as the last compile found them with what leaves protection short, the e-safety lead's switches for
the list catalogue's entries, and the lead's profile editor.

The editor judges a new profiles file with the same code as `appliance check` (written to a file beside
the real one, read with the rest of the policy), and replaces the real file atomically only if it has
no mistake; the DNS filter and the proxy notice the new file and reload it by themselves.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.bundles.state import bundle_age, read_state
from appliance.checks import policy_problems, protection_warnings
from appliance.config import Config, ConfigError
from appliance.config.catalogue import (
    Catalogue,
    CatalogueError,
    load_catalogue,
    read_switches,
    select,
    switches_text,
)
from appliance.explain import Explanation, explain
from appliance.files import write_atomically
from appliance.in_force.head_office import load_config_in_force
from appliance.lists import CompiledSource, CompileReport, read_compile_report
from appliance.policy_files import PolicyFileErrors, PolicyFiles, read_policy_files
from appliance.store import people
from appliance.store.staff import Role
from dashboard.database import config, now, store, vocabulary
from dashboard.database import policy as policy_in_force
from dashboard.profile_form import (
    OUTSIDE_CHOICES,
    SPARE_WINDOWS,
    YOUTUBE_MODES,
    Answers,
    FormError,
    HoursRow,
    add_allow_entry,
    apply_answers,
    changes,
    profile_form,
)
from dashboard.security import current_user, log_action, requires
from dashboard.wording import category_label
from filters.errors import FilterError
from filters.names import BadName, normalise_host
from profiles.categories import CategoryMap
from profiles.profile import Mode, Profile
from profiles.schedule import DAYS, Outside, Window, day_runs
from profiles.verdict import Action, LogDetail

bp = Blueprint("policy_views", __name__)


# ---- the profiles in plain words ----


@dataclass(frozen=True)
class ProfileWords:
    """One profile as staff read it: a title line and the rules as sentences."""

    name: str
    description: str
    reasoning: str
    rules: tuple[tuple[str, str], ...]  # (what, in words)


def _titles(names: Iterable[str], categories: CategoryMap) -> str:
    return ", ".join(sorted(categories[n].title if n in categories else n for n in names)) or "none"


def _days(days: frozenset[int]) -> str:
    """`Mon–Fri, Sat`: runs of three days or more as ranges."""
    if len(days) == 7:
        return "every day"
    runs = day_runs(days)
    parts: list[str] = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{DAYS[run[0]].title()}–{DAYS[run[-1]].title()}")
        else:
            parts.extend(DAYS[d].title() for d in run)
    return ", ".join(parts)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _window(window: Window) -> str:
    late = " (to the next morning)" if window.end <= window.start else ""
    return f"{_days(window.days)} {_clock(window.start)}–{_clock(window.end)}{late}"


_OUTSIDE = {
    Outside.ALLOWLIST: "only the help services and the profile's allowlist work",
    Outside.BLOCK: "nothing works but the help services and the sign-in page",
    Outside.FLAG: "everything works as usual, but every visit is flagged for staff",
}


def profile_words(profile: Profile, files: PolicyFiles) -> ProfileWords:
    """The profile's rules as sentences, in the order they apply."""
    cats = files.categories
    rules: list[tuple[str, str]] = []
    if profile.bypass:
        rules.append(
            ("Filtering", "None at all: a technician's device. Only help services are treated apart.")
        )
    elif profile.mode is Mode.ALLOWLIST_ONLY:
        rules.append(("Filtering", "Only sites on its allowlist open; everything else is blocked."))
    else:
        rules.append(("Filtering", "Everything opens except what is blocked below."))
    always = [c.name for c in cats.values() if c.always_blocked]
    if always and not profile.bypass:
        rules.append(("Always blocked", f"{_titles(always, cats)} (for every profile)"))
    if profile.blocked_categories:
        rules.append(("Blocked", _titles(profile.blocked_categories, cats)))
    if profile.flagged_categories:
        flagged = ", ".join(
            f"{cats[c].title if c in cats else c} ({severity})"
            for c, severity in sorted(profile.flagged_categories.items())
        )
        rules.append(("Allowed, but staff are told", flagged))
    if profile.allowed_categories:
        rules.append(
            (
                "Allowlist",
                f"{_titles(profile.allowed_categories, cats)}: open even if a blocked list has them",
            )
        )
    if profile.allow:
        rules.append(("Its own allow entries", ", ".join(profile.allow)))
    if profile.block:
        rules.append(("Its own block entries", ", ".join(profile.block)))
    if profile.schedule is not None:
        windows = "; ".join(_window(w) for s in profile.schedule.schedules for w in s.windows) or "never"
        rules.append(("Hours", f"Open {windows}. Outside these hours {_OUTSIDE[profile.schedule.outside]}."))
    else:
        rules.append(("Hours", "No time limits."))
    safe = profile.safe_search
    if safe.enabled:
        engines = ", ".join(e.name for e in files.safe_search.engines) or "the search engines"
        rules.append(("Safe search", f"Forced on {engines}; YouTube {safe.youtube}."))
    else:
        rules.append(("Safe search", "Off."))
    if profile.phrases.limits:
        limits = ", ".join(
            f"{cats[c].title if c in cats else c} {n}" for c, n in profile.phrases.limits.items()
        )
        verb = "blocked" if profile.phrases.action is Action.BLOCK else "flagged"
        rules.append(("Page words", f"A page whose weighted words reach a limit is {verb} ({limits})."))
    if profile.watch:
        rules.append(("Watched search words", ", ".join(profile.watch) + ": staff are told"))
    pii = profile.personal_info
    if pii.action is Action.ALLOW or not pii.kinds:
        rules.append(("Personal information sent", "Not checked."))
    else:
        verb = "blocked" if pii.action is Action.BLOCK else "allowed, but staff are told"
        rules.append(("Personal information sent", f"{', '.join(sorted(pii.kinds))}: {verb}."))
    if profile.blocked_downloads:
        rules.append(("Downloads blocked", ", ".join(sorted(profile.blocked_downloads))))
    rules.append(
        (
            "Decrypted",
            "Yes, on centre-managed devices (so pages and searches can be checked)"
            if profile.intercept_tls
            else "Never.",
        )
    )
    rules.append(
        (
            "Kept in the log",
            "Every allowed visit, under the child's pseudonym"
            if profile.log_allowed is LogDetail.EVENT
            else "Blocks and flags; allowed visits only as daily totals.",
        )
    )
    return ProfileWords(profile.name, profile.description, profile.reasoning, tuple(rules))


def _policy() -> tuple[PolicyFiles | None, list[str]]:
    try:
        return read_policy_files(config().policy), []
    except PolicyFileErrors as e:
        return None, e.errors


def _may_edit() -> bool:
    user = current_user()
    return user is not None and user.role.may(Role.LEAD)


@bp.route("/policy")
@requires(Role.STAFF)
def index() -> str:
    files, errors = _policy()
    words = [profile_words(p, files) for p in files.profiles.values()] if files else []
    return render_template(
        "policy/index.html",
        profiles=words,
        names=list(files.profiles) if files else [],
        zone=files.zone.key if files else "",
        errors=errors,
        may_edit=_may_edit(),
        form={},
        found=None,
        explain_error="",
    )


# ---- "why is this blocked?" ----


@bp.route("/policy/explain")
@requires(Role.STAFF)
def why() -> tuple[str, int]:
    files, errors = _policy()
    form = {k: request.args.get(k, "").strip() for k in ("subject", "profile", "at")}
    found: Explanation | None = None
    problem, status = "", 200
    if files is None:
        problem, status = "The policy files have mistakes, so nothing can be explained.", 500
    elif not form["subject"]:
        problem, status = "Type a web address or a site name, like www.example.com.", 400
    else:
        try:
            policy = policy_in_force()
            at = form["at"] or datetime.fromtimestamp(now(), UTC).isoformat()
            found = explain(files, policy, form["profile"], form["subject"], at)
        except ConfigError as e:
            problem, status = str(e).replace("--at ", "time "), 400
        except FilterError as e:
            problem, status = f"The lists are not compiled yet ({e}).", 500
    page = render_template(
        "policy/index.html",
        profiles=[profile_words(p, files) for p in files.profiles.values()] if files else [],
        names=list(files.profiles) if files else [],
        zone=files.zone.key if files else "",
        errors=errors,
        may_edit=_may_edit(),
        form=form,
        found=found,
        categories=files.categories if files else None,
        explain_error=problem,
    )
    return page, status


# ---- the list sources ----


def _fresh_config() -> Config:
    """The configuration as its file says now (the lead's switches change it while the dashboard runs)."""
    cfg = config()
    try:
        return load_config_in_force(Path(cfg.origin))
    except ConfigError:
        return cfg


def _age(iso: str | None, now_ts: float) -> str:
    """`3 h`, `2 days`: how long ago an ISO time was; `never` for none."""
    if not iso:
        return "never"
    try:
        seconds = now_ts - datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return "?"
    if seconds < 3600:
        return f"{max(int(seconds // 60), 0)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


@dataclass(frozen=True)
class SourceRow:
    """One list source as the Lists page shows it: where it comes from, and its last compile."""

    name: str
    origin: str  # `preset recommended`, `switched on`, `the centre's own`, `bundled fallback` ...
    category: str
    compiled: CompiledSource | None  # as the last compile found it, if it took this source
    age: str
    pending: str  # what changes at the next list update, if anything


def _source_rows(cfg: Config, report: CompileReport | None, catalogue: Catalogue | None) -> list[SourceRow]:
    chosen = cfg.catalogue
    compiled = {s.report.source: s for s in report.sources} if report else {}
    downloaded = [s.name for s in cfg.sources if s.is_url]
    # The bundled lists stand in while none of the lists to download has come in (appliance.stand_in).
    stand_in = bool(downloaded) and not any(compiled[n].report.entries for n in downloaded if n in compiled)
    now_ts = now()
    rows = []
    configured = {s.name: s for s in cfg.sources}
    for name, source in configured.items():
        if name in chosen.entries:
            origin = chosen.why(name)
        elif source.name.startswith("hq."):
            origin = "head office"
        else:
            origin = "the centre's own"
        found = compiled.get(name)
        if found is not None:
            pending = ""
        elif source.is_url and stand_in:
            pending = "not downloaded yet: the bundled lists stand in"
        else:
            pending = "added: compiled at the next list update"
        rows.append(
            SourceRow(
                name, origin, source.category, found, _age(found.updated if found else None, now_ts), pending
            )
        )
    demo = set(catalogue.presets["demo"].entries) if catalogue else set()
    for name, found in compiled.items():
        if name in configured:
            continue
        if name in demo and stand_in:
            origin, pending = "bundled, until the lists are downloaded", ""
        else:
            origin, pending = "no longer configured", "switched off: in force until the next list update"
        rows.append(SourceRow(name, origin, found.category, found, _age(found.updated, now_ts), pending))
    return rows


def _switches_refusal(cfg: Config) -> str:
    """Why the lead cannot switch catalogue entries here, if so."""
    chosen = cfg.catalogue
    if chosen.inline:
        return (
            f"The catalogue switches are written in {cfg.origin} itself (lists.catalogue), which the "
            "dashboard does not edit: change them there, or move them to a file of their own "
            "(lists.catalogue: a path, as the Raspberry Pi's install does) for the dashboard to switch them."
        )
    if chosen.switches_file is None:
        return (
            "This configuration keeps no file of catalogue switches, so they are not changed here: set "
            "lists.catalogue in appliance.yaml to a file the dashboard may write (the Raspberry Pi's install "
            "uses /var/lib/appliance/catalogue.yaml), then restart the dashboard."
        )
    path = chosen.switches_file
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"The dashboard may not write {path}: its owner must let the dashboard's user write it."
    return ""


def _switches_digest(cfg: Config) -> str:
    path = cfg.catalogue.switches_file
    try:
        return _digest(path.read_bytes()) if path else ""
    except FileNotFoundError:
        return _digest(b"")


@bp.route("/policy/lists")
@requires(Role.STAFF)
def lists() -> str:
    cfg = _fresh_config()
    report = read_compile_report(cfg)
    try:
        modified = os.stat(cfg.index_path).st_mtime
    except OSError:
        modified = None
    synced = read_state(cfg.data_dir) if cfg.sync else None
    files, policy_errors = _policy()
    warnings = protection_warnings(cfg, files, report) if files else []
    try:
        catalogue: Catalogue | None = load_catalogue()
    except CatalogueError:
        catalogue = None
    return render_template(
        "policy/lists.html",
        report=report,
        index_present=modified is not None,
        sync=cfg.sync,
        synced=synced,
        age=bundle_age(synced.created, datetime.now(UTC)) if synced and synced.created else None,
        minimal=[w for w in warnings if w.startswith("protection is minimal")],
        warnings=[w for w in warnings if not w.startswith("protection is minimal")],
        policy_errors=policy_errors,
        rows=_source_rows(cfg, report, catalogue),
        catalogue=catalogue,
        chosen=cfg.catalogue,
        may_switch=_may_edit(),
        refusal=_switches_refusal(cfg),
        base=_switches_digest(cfg),
    )


@bp.route("/policy/lists/catalogue", methods=["POST"])
@requires(Role.LEAD)
def switch_entry() -> Response:
    """Switch one catalogue entry on or off: checked as every policy change is, written atomically to
    the switches file the configuration names, and audited. Takes effect at the next list update."""
    cfg = _fresh_config()
    name, state = request.form.get("entry", ""), request.form.get("state", "")
    catalogue = load_catalogue()
    chosen = cfg.catalogue
    path = chosen.switches_file
    if name not in catalogue.entries or state not in ("on", "off"):
        abort(400, f"No catalogue entry {name!r} to switch {state!r}.")
    refusal = _switches_refusal(cfg)
    if refusal or path is None:
        abort(400, refusal)
    if request.form.get("base", "") != _switches_digest(cfg):
        abort(
            409,
            "Someone changed the catalogue switches since you opened the page: nothing was saved. Reload "
            "the Lists page and switch it again.",
        )
    try:
        switches, _ = read_switches(path, catalogue)
    except CatalogueError as e:
        abort(400, f"The switches file cannot be read, so nothing was changed: {e}")
    on = state == "on"
    in_preset = bool(chosen.preset) and name in catalogue.presets[chosen.preset or ""].entries
    if (name in chosen.entries) == on:
        flash(f"{name} is already {state}.")
        return redirect(url_for("policy_views.lists") + "#catalogue")
    switches.pop(name, None)
    if on != in_preset:
        switches[name] = on  # only what differs from the preset is written: switching back restores it
    # Checked as `appliance check` would check the configuration with this change, before it is written.
    new_choice = select(catalogue, chosen.preset, switches, switches_file=path)
    own = [s for s in cfg.sources if s.name not in chosen.entries]
    clash = [s.name for s in own if s.name in new_choice.entries]
    changed = dataclasses.replace(
        cfg, sources=(*(catalogue.source(n) for n in new_choice.entries), *own), catalogue=new_choice
    )
    files, errors = policy_problems(changed)
    errors += [f"a list of the centre's own is already named {n!r}: rename it first" for n in clash]
    if errors or files is None:
        abort(400, "Not switched: " + "; ".join(errors))
    write_atomically(path, switches_text(switches).encode("utf-8"))
    was = "on" if name in chosen.entries else "off"
    log_action("switch-list", f"catalogue:{name}", f"{state} (was {was}; preset {chosen.preset or 'none'})")
    report = read_compile_report(cfg)
    before = set(protection_warnings(cfg, files, report))
    new = [
        w for w in protection_warnings(changed, files, report) if w not in before and "last compile" not in w
    ]
    flash(
        f"{name} switched {state}. It takes effect at the next list update (tonight's, or "
        "`appliance lists compile` on the appliance)." + "".join(f" Warning: {w}." for w in new)
    )
    return redirect(url_for("policy_views.lists") + "#catalogue")


# ---- editing the profiles file ----


def _shipped_file(path: Path) -> bool:
    """Is `path` inside the installed software (replaced by every update, so not to be edited)?"""
    package = Path(str(resources.files("appliance"))).resolve()
    return path.resolve().is_relative_to(package)


def _edit_refusal(path: Path) -> str:
    if _shipped_file(path):
        return (
            f"The profiles in force are the ones shipped with the appliance software ({path}). They are "
            "replaced by every update, so they are not edited here. To change them, copy that file to, "
            "for example, /etc/appliance/profiles.yaml, set policy.profiles to that path in appliance.yaml, "
            "and restart the appliance's services."
        )
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"The dashboard may not write {path}: its owner must let the dashboard's user write it."
    return ""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_profiles(text: str, real: Path) -> tuple[PolicyFiles | None, list[str]]:
    """Judge `text` as the profiles file the way `appliance check` would, without touching the real one."""
    cfg = config()
    trial = real.with_name(f".{real.name}.check-{secrets.token_hex(4)}.yaml")
    try:
        trial.write_text(text, encoding="utf-8")
        changed = dataclasses.replace(cfg, policy=dataclasses.replace(cfg.policy, profiles=trial))
        files, errors = policy_problems(changed)
    except OSError as e:
        return None, [f"{real.parent}: cannot write the trial copy beside the profiles file: {e.strerror}"]
    finally:
        trial.unlink(missing_ok=True)
    errors = [e.replace(str(trial), str(real)) for e in errors]
    if files is not None:
        errors += _profiles_in_use(set(files.profiles))
    return (None if errors else files), errors


def _profiles_in_use(known: set[str]) -> list[str]:
    """A message for each profile children or named devices use that the new file no longer has."""
    db = store()
    users: dict[str, list[str]] = {}
    for child in people.children(db):
        users.setdefault(child.profile, []).append(child.display_name)
    for device in people.devices(db):
        users.setdefault(device.profile, []).append(f"device {device.name}")
    return [
        f"profile {name!r} is used by {', '.join(sorted(who)[:5])}{' and more' if len(who) > 5 else ''}: "
        "keep it, or give them another profile first (Children & devices)"
        for name, who in sorted(users.items())
        if name not in known
    ]


def _summary(old_text: str, new_text: str, old: PolicyFiles | None, new: PolicyFiles) -> str:
    diff = list(difflib.unified_diff(old_text.splitlines(), new_text.splitlines(), lineterm="", n=0))
    added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
    removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
    parts = []
    if old is not None:
        before, after = old.profiles, new.profiles
        if changed := [n for n in after if n in before and after[n] != before[n]]:
            parts.append(f"changed {', '.join(changed)}")
        if added_profiles := [n for n in after if n not in before]:
            parts.append(f"added {', '.join(added_profiles)}")
        if gone := [n for n in before if n not in after]:
            parts.append(f"removed {', '.join(gone)}")
        if not parts:
            parts.append("no rule changed")
    parts.append(f"+{added}/-{removed} lines")
    return "; ".join(parts)


@bp.route("/policy/profiles", methods=["GET", "POST"])
@requires(Role.LEAD)
def edit_profiles() -> tuple[str, int] | Response:
    cfg = config()
    real = cfg.policy.profiles
    refusal = _edit_refusal(real)
    try:
        current = real.read_bytes()
    except OSError as e:
        current, refusal = b"", refusal or f"Cannot read {real}: {e.strerror}"
    text = current.decode("utf-8", errors="replace")
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        text = request.form.get("text", "").replace("\r\n", "\n")
        if text and not text.endswith("\n"):
            text += "\n"
        if refusal:
            errors, status = [refusal], 400
        elif request.form.get("base", "") != _digest(current):
            errors = [
                "Someone changed the profiles file since you opened it. Your text is below, not saved: "
                "copy your change, reload the page, and make it again on the new file."
            ]
            status = 409
        elif text == current.decode("utf-8", errors="replace"):
            flash("Nothing changed.")
            return redirect(url_for("policy_views.index"))
        else:
            new, errors = _check_profiles(text, real)
            if new is None:
                status = 400
            else:
                old, _ = _policy()
                summary = _summary(current.decode("utf-8", errors="replace"), text, old, new)
                write_atomically(real, text.encode("utf-8"))
                log_action("change-profile", f"file:{real}", summary)
                flash(
                    f"Saved ({summary}). The DNS filter and the proxy use the new profiles within seconds; "
                    "nothing needs restarting."
                )
                return redirect(url_for("policy_views.index"))
    page = render_template(
        "policy/edit.html",
        path=real,
        text=text,
        base=_digest(current),
        refusal=refusal,
        errors=errors,
    )
    return page, status


# ---- one profile as a form ----


def _labels(categories: CategoryMap) -> dict[str, str]:
    words = vocabulary()
    labels = {c.name: category_label(c.name, words) for c in categories.values()}
    return {n: label[:1].upper() + label[1:] for n, label in labels.items()}


def _answers(form: Mapping[str, str], files: PolicyFiles, rows: int) -> Answers:
    hours = []
    for i in range(rows):
        row = HoursRow(*(form.get(f"{k}_{i}", "").strip() for k in ("days", "from", "to")))
        if row.days or row.start or row.end:
            hours.append(row)
    return Answers(
        mode=form.get("mode", Mode.FILTERED.value),
        categories={c.name: form.get(f"cat_{c.name}", "") for c in files.categories.values()},
        hours=tuple(hours),
        outside=form.get("outside", Outside.ALLOWLIST.value),
        limited=form.get("limited") == "on",
        safe_search=form.get("safe_search") == "on",
        youtube=form.get("youtube", "strict"),
        allow=tuple(dict.fromkeys(e.strip() for e in form.get("allow", "").splitlines() if e.strip())),
        block=tuple(dict.fromkeys(e.strip() for e in form.get("block", "").splitlines() if e.strip())),
    )


def _save_profile_change(real: Path, text: str, name: str, why: str = "") -> tuple[list[str], str]:
    """Check `text` as `appliance check` would, then replace the profiles file atomically and audit what
    changed in profile `name` (as the raw editor's changes are: `change-profile` of the file, the
    profile and its changes in the detail); the mistakes (nothing written) or the changes in words."""
    new, errors = _check_profiles(text, real)
    if new is None:
        return errors, ""
    old, _ = _policy()
    what = changes(old.profiles[name], new.profiles[name]) if old and name in old.profiles else []
    summary = "; ".join(what) or "no rule changed"
    write_atomically(real, text.encode("utf-8"))
    log_action("change-profile", f"file:{real}", f"{name}: {summary}{why}")
    return [], summary


@bp.route("/policy/profiles/<name>", methods=["GET", "POST"])
@requires(Role.LEAD)
def profile_page(name: str) -> tuple[str, int] | Response:
    """One profile as a form: checked as `appliance check` does, saved atomically, audited."""
    real = config().policy.profiles
    refusal = _edit_refusal(real)
    files, policy_errors = _policy()
    if files is None:
        refusal = refusal or "The policy files have mistakes: fix them in the profiles file first."
    elif name not in files.profiles:
        abort(404, f"There is no profile {name!r}.")
    try:
        current = real.read_bytes()
    except OSError as e:
        current, refusal = b"", refusal or f"Cannot read {real}: {e.strerror}"
    errors: list[str] = list(policy_errors)
    status = 200
    form = profile_form(files.profiles[name], files.categories, _labels(files.categories)) if files else None
    if request.method == "POST" and files is not None and form is not None:
        rows = len(form.hours) + SPARE_WINDOWS
        answers = _answers(request.form, files, rows)
        if refusal:
            errors, status = [refusal], 400
        elif request.form.get("base", "") != _digest(current):
            errors, status = (
                [
                    "Someone changed the profiles file since you opened this form: nothing was saved. "
                    "Reload the page and make your change again."
                ],
                409,
            )
        else:
            try:
                text = apply_answers(current.decode("utf-8"), files.profiles[name], answers)
            except (FormError, UnicodeDecodeError) as e:
                errors, status = [str(e)], 400
            else:
                errors, summary = _save_profile_change(real, text, name)
                if not errors:
                    flash(
                        f"Profile {name} saved ({summary}). The DNS filter and the proxy use it within "
                        "seconds; nothing needs restarting."
                    )
                    return redirect(url_for("policy_views.profile_page", name=name))
                status = 400
        # Show what the lead typed, not the file, so a mistake is corrected rather than retyped.
        form = dataclasses.replace(
            form,
            mode=answers.mode,
            categories=tuple(
                dataclasses.replace(c, chosen=answers.categories.get(c.name, "")) for c in form.categories
            ),
            hours=answers.hours,
            outside=answers.outside,
            limited=answers.limited,
            safe_search=answers.safe_search,
            youtube=answers.youtube,
            allow="\n".join(answers.allow),
            block="\n".join(answers.block),
        )
    page = render_template(
        "policy/profile.html",
        name=name,
        form=form,
        spare=SPARE_WINDOWS,
        path=real,
        base=_digest(current),
        refusal=refusal,
        errors=errors,
        modes=[m.value for m in Mode],
        youtube_modes=YOUTUBE_MODES,
        outside_choices=OUTSIDE_CHOICES,
    )
    return page, status


@bp.route("/policy/profiles/<name>/allow", methods=["POST"])
@requires(Role.LEAD)
def allow_site(name: str) -> Response:
    """ "Allow this site for this profile", from an event: the host joins the profile's own allow
    entries, checked and saved as the form saves, and audited."""
    real = config().policy.profiles
    event_id = request.form.get("event", "")
    back = url_for("review.event", event_id=event_id) if event_id else url_for("policy_views.index")
    refusal = _edit_refusal(real)
    files, _ = _policy()
    if refusal:
        abort(400, refusal)
    if files is None or name not in files.profiles:
        abort(400, f"There is no profile {name!r} in the policy in force, so nothing was allowed.")
    try:
        host = normalise_host(request.form.get("host", "").strip())
    except BadName:
        abort(400, "That is not a site name, so nothing was allowed.")
    if host in files.profiles[name].allow:
        flash(f"{host} is already allowed for profile {name}.")
        return redirect(back)
    current = real.read_bytes()
    try:
        text = add_allow_entry(current.decode("utf-8"), files.profiles[name], host)
    except (FormError, UnicodeDecodeError) as e:
        abort(400, f"Nothing was allowed: {e}")
    errors, _summary = _save_profile_change(real, text, name, f" (from event {event_id})" if event_id else "")
    if errors:
        abort(400, "Nothing was allowed: " + "; ".join(errors))
    flash(f"{host} is now allowed for profile {name}, within seconds (Profiles & lists shows it).")
    return redirect(back)
