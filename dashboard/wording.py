"""Plain words for staff: what a verdict's reasons, an audit entry and a time say, in sentences a
non-IT reader follows ("Blocked: pornography and sexual content. Listed by StevenBlack hosts
(stevenblack-porn), line 4,512.").

Pure: the names come in as a `Vocabulary` (the policy's category titles, who publishes each list), so
these functions read no file, no store and no clock; `dashboard.database.vocabulary()` builds the one
in force and `dashboard.security` registers the Jinja filters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The shipped categories (appliance/defaults/policy/categories.yaml) in a few words each: what staff
# read where the policy in force does not name a category (an event kept from before a category was
# taken out of the policy, or a head-office set with other titles).
SHIPPED_CATEGORY_LABELS: Mapping[str, str] = {
    "ads": "advertising",
    "adult": "pornography",
    "mixed-adult": "sites with some adult content",
    "violence-hate": "violence and hate",
    "weapons": "weapons",
    "drugs": "drugs and vaping",
    "misleading": "misleading news and sects",
    "shopping": "shopping",
    "games": "online games",
    "tracking": "tracking",
    "phishing": "phishing",
    "social-networks": "social networks",
    "chat": "chat rooms and messaging",
    "dating": "dating",
    "personal-info": "sharing personal information",
    "ai-chatbots": "AI chatbots",
    "self-harm": "self-harm and suicide",
    "grooming": "grooming",
    "bullying": "bullying",
    "gambling": "gambling",
    "piracy": "piracy and illegal downloads",
    "hacking": "hacking and cheating",
    "scams": "scams",
    "malware": "malware",
    "filter-bypass": "getting round the filter",
    "url-shorteners": "link shorteners",
    "children-safe": "sites made for children",
    "educational": "educational sites",
}

# A reason without a category, by its step (profiles.verdict.Step): what it was about.
STEP_LABELS: Mapping[str, str] = {
    "schedule": "outside opening hours",
    "always-blocked": "blocked for everyone",
    "bypass-canary": "a check for getting round the filter",
    "safe-search": "safe search",
    "safe-search-unsupported": "a search engine without safe search",
    "override": "this profile's own list of sites",
    "allowlist": "a site made for children",
    "not-on-allowlist": "not on this profile's list of allowed sites",
    "download": "a download",
    "watch-list": "a watch-list search",
    "personal-info": "personal information sent",
    "phrases": "words on the page",
    "child-report": "the child reported a problem",
    "bypass-attempt": "an attempt to get round the filter",
    "help-service": "a help service",
    "portal": "the centre's portal",
    "staff-bypass": "a staff profile",
}

EFFECT_WORDS: Mapping[str, str] = {
    "block": "Blocked",
    "flag": "Flagged",
    "rewrite": "Sent to safe search",
    "allow": "Allowed",
}
_EFFECT_ORDER = ("block", "flag", "rewrite", "allow")


@dataclass(frozen=True)
class Vocabulary:
    """The names in force: a category's title by its name ("adult" -> "Pornography and sexual content"),
    and who a list source is by its name ("stevenblack-porn" -> "StevenBlack hosts (stevenblack-porn)")."""

    categories: Mapping[str, str] = field(default_factory=dict)
    lists: Mapping[str, str] = field(default_factory=dict)


def _lower_first(text: str) -> str:
    """'Pornography and sexual content' -> 'pornography and sexual content'; 'AI chatbots' stays."""
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def category_label(name: str, words: Vocabulary) -> str:
    """A category in words, lower case for use in a sentence: the policy's title, else the shipped
    label, else the name with its dashes as spaces."""
    title = words.categories.get(name)
    if title:
        return _lower_first(title)
    return SHIPPED_CATEGORY_LABELS.get(name) or name.replace("-", " ")


def list_label(source: str, words: Vocabulary) -> str:
    """Who listed it: the catalogue's provider and the list's name, else the list's name quoted."""
    return words.lists.get(source) or f"the list “{source}”"


def _what(reason: Mapping[str, Any], words: Vocabulary) -> str:
    category = str(reason.get("category") or "")
    if category:
        return category_label(category, words)
    step = str(reason.get("step") or "")
    return STEP_LABELS.get(step) or step.replace("-", " ")


def _where(reasons: Iterable[Mapping[str, Any]], words: Vocabulary) -> str:
    """ "Listed by A, line 4,512 and by B, line 7." for the lists among `reasons` (each list once, at
    its first line); "" where none names a list."""
    seen: dict[str, int] = {}
    for r in reasons:
        source = str(r.get("source") or "")
        if source and source not in seen:
            seen[source] = int(r.get("line") or 0)
    if not seen:
        return ""
    parts = [list_label(s, words) + (f", line {line:,}" if line else "") for s, line in seen.items()]
    return "Listed by " + " and by ".join(parts) + "."


def why(reasons: Iterable[Mapping[str, Any]], words: Vocabulary) -> str:
    """A verdict's reasons (as the event log keeps them) in sentences, one per effect and category:
    `Blocked: pornography and sexual content. Listed by StevenBlack hosts (stevenblack-porn), line
    4,512.` Reasons of the same effect and category are said once, naming each list once. Allow
    reasons are said only when nothing blocked, flagged or rewrote (they are then the whole story)."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in reasons:
        effect = str(r.get("effect") or "")
        groups.setdefault((effect, _what(r, words)), []).append(r)
    keys = sorted(groups, key=lambda k: _EFFECT_ORDER.index(k[0]) if k[0] in _EFFECT_ORDER else 9)
    acting = [k for k in keys if k[0] != "allow"]
    sentences = []
    for effect, what in acting or keys:
        said = f"{EFFECT_WORDS.get(effect, effect.capitalize())}: {what}."
        where = _where(groups[(effect, what)], words)
        sentences.append(f"{said} {where}" if where else said)
    return " ".join(sentences)


@dataclass(frozen=True)
class AuditLine:
    """One audit entry as the audit page shows it: who did what in a sentence, with any detail kept."""

    sentence: str
    detail: str


# action -> the sentence after the person's name; {about} is the subject in words, {detail} the entry's
# detail. An action not here is said as its words ("did something-new to ...").
_AUDIT: Mapping[str, str] = {
    "sign-in": "signed in to the dashboard",
    "sign-out": "signed out of the dashboard",
    "add-staff": "added {about} to the staff",
    "change-staff": "changed {about}'s account",
    "change-password": "changed {about}'s password",
    "view-events": "looked at {about}",
    "view-event": "looked at one event of {about}",
    "view-children": "looked at the children and who is signed in where",
    "view-overview": "looked at the overview (who is signed in, today's events)",
    "view-child": "looked at {about}'s page (where they are signed in, their time today)",
    "add-child": "added {about}",
    "reset-pin": "reset {about}'s PIN",
    "archive-child": "archived {about}",
    "change-child": "changed {about}'s name, profile or archiving",
    "unlock-pin": "let {about} sign in again after wrong PINs",
    "end-session": "signed {about} out",
    "view-devices": "looked at the devices",
    "save-device": "saved {about}",
    "remove-device": "forgot {about}",
    "arp-sweep": "looked for devices on {about}",
    "view-report": "looked at {about}",
    "export-report": "downloaded {about}",
    "view-incidents": "looked at the incidents",
    "open-incident": "opened {about}",
    "view-incident": "looked at an incident about {about}",
    "change-incident": "changed an incident about {about}",
    "add-to-incident": "added events to an incident about {about}",
    "flag-record": "flagged {about} for the e-safety lead",
    "resolve-flag": "marked the flag on {about} resolved",
    "switch-list": "switched {about}",
    "change-profile": "changed the profiles ({about})",
    "portal-sign-in": "signed in at the portal on {about}",
    "portal-sign-in-refused": "was refused at the portal on {about}",
    "portal-sign-out": "signed out of the portal on {about}",
    "view-alerts": "looked at the alerts",
    "view-alert": "looked at an alert about {about}",
    "acknowledge-alert": "acknowledged an alert about {about}",
    # Staff in control (appliance.store.controls writes these).
    "pause": "paused the internet for {about}",
    "resume": "switched the internet back on for {about}",
    "grant": "allowed {about} a site or category for a while",
    "end-grant": "ended a grant to {about} early",
    "ask-to-use": "asked to use a blocked site ({about})",
    "refuse-ask": "refused {about}'s ask to use a site",
    "add-time": "added time to {about}'s budget",
    "set-budget": "set {about}'s time budget",
    # The alerter's (`appliance alerts`): the actor is the appliance.
    "raise-alert": "raised an alert about {about}",
    "alert-sent": "sent a message about {about}",
    "alert-failed": "could not send a message about {about}",
    "alert-escalated": "told the next person on the ladder about {about}: nobody had acknowledged it",
}

# The alerter's messages that are about no one alert (an audit entry's subject is then the kind).
_MESSAGE_KINDS: Mapping[str, str] = {
    "digest": "the digest",
    "test": "a test message",
    "channel-failure": "a warning that a channel is failing",
}


def subject_words(subject: str, children: Mapping[str, str], staff: Mapping[str, str]) -> str:
    """An audit entry's subject in words: a child's display name (never their id), a member of staff's
    name, "the flagged feed", "incident 4", "device hall-pc"."""
    kind, _, rest = subject.partition(":")
    if subject == "feed":
        return "the flagged feed"
    if kind == "child":
        return children.get(rest, "a child no longer listed")
    if kind == "staff":
        return staff.get(rest, rest)
    if kind == "device":
        return f"device {rest}"
    if kind == "incident":
        return f"incident {rest}"
    if kind == "report":
        return f"the report for {rest}"
    if kind == "catalogue":
        return f"the list {rest}"
    if kind == "network":
        return f"network {rest}"
    if kind == "file":
        return rest.rsplit("/", 1)[-1]
    if kind == "alert":
        return f"alert {rest}"
    if kind == "profile":
        return f"everyone under profile {rest}"
    if subject == "centre":
        return "the whole centre"
    if subject == "guest":
        return "a guest device"
    return subject


def audit_line(
    *,
    action: str,
    subject: str,
    detail: str,
    actor: str,
    children: Mapping[str, str],
    staff: Mapping[str, str],
    contacts: Mapping[str, str] | None = None,
) -> AuditLine:
    """`Amina looked at the flagged feed`, `Amina looked at Sam's events`: the actor by name, the
    subject in words. What the detail adds stays beside it (the feed's filter, an incident's change),
    except where the sentence says it already ("newest": the feed unfiltered). `contacts`: alerts.yaml's
    contact keys -> display names, for an alert acknowledged from the link sent to one."""
    about = subject_words(subject, children, staff)
    if action == "view-events" and subject.startswith(("child:", "device:")):
        about = f"{about}'s events" if subject.startswith("child:") else f"the events of {about}"
    template = _AUDIT.get(action)
    said = template.format(about=about) if template else f"did {action.replace('-', ' ')} ({about})"
    if action == "view-events":
        detail = _feed_choice(detail, children)
    elif action in ("view-incident", "change-incident") and detail.startswith("incident:"):
        # "incident:4 status closed": the incident's number into the sentence, the change beside it.
        number, _, detail = detail[len("incident:") :].partition(" ")
        verb = "looked at" if action == "view-incident" else "changed"
        said = f"{verb} incident {number}, about {about}"
    elif action in ("alert-sent", "alert-failed") and subject in _MESSAGE_KINDS:
        message = _MESSAGE_KINDS[subject]
        said = f"sent {message}" if action == "alert-sent" else f"could not send {message}"
    if actor == "appliance":  # entries the appliance itself made (a store migration, a command)
        actor = "The appliance"
    elif actor.startswith("link:"):  # an alert acknowledged from the link in a message to a contact
        contact = actor[5:]
        actor = f"Someone with the link sent to {(contacts or {}).get(contact, contact)}"
    return AuditLine(f"{actor} {said}", detail)


_FEED_CHOICE: Mapping[str, str] = {
    "area": "three Cs: {}",
    "category": "category {}",
    "severity": "at least {}",
    "since": "from {}",
    "until": "to {}",
    "device": "device {}",
    "child": "child {}",
}


def _feed_choice(detail: str, children: Mapping[str, str]) -> str:
    """The feed's filter as the audit log keeps it (`area=content child=ID`) in words, the child named;
    "" for the feed unfiltered ("newest"). The child or device the sentence names is said once."""
    if detail == "newest":
        return ""
    said = []
    for pair in detail.split(" "):
        key, _, value = pair.partition("=")
        if key == "child":
            continue  # the sentence names them
        if key == "action":
            said.append({"block": "blocked only", "flag": "flagged only"}.get(value, value))
        elif key in _FEED_CHOICE:
            said.append(_FEED_CHOICE[key].format(value))
        elif key == "before":
            continue
        else:
            said.append(pair)
    return ", ".join(said)


def centre_time(moment: datetime) -> str:
    """A time as the staff pages show it, in the centre's zone (the caller's `moment` is in it):
    `Mon 7 Dec 2026, 17:25`."""
    return f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M}"


# An alert's kind (the alerts.yaml rule's trigger) in words, where the alert has no category.
ALERT_KIND_LABELS: Mapping[str, str] = {
    "watch-list": "a watch-list search",
    "personal-info": "personal information sent",
    "child-report": "the child reported a problem",
    "bypass": "trying to get round the filter",
}


def alert_what(*, kind: str, category: str, rule: str, words: Vocabulary) -> str:
    """What an alert is about, in a few plain words: its category's (`self-harm and suicide`), else
    its kind's (`the child reported a problem`), else its rule's name."""
    if category:
        return category_label(category, words)
    label = ALERT_KIND_LABELS.get(kind)
    if label and kind == "watch-list" and rule:
        return f"{label} ({rule.replace('-', ' ')})"
    return label or rule.replace("-", " ")
