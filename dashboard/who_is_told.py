"""The alerts page's "Who is told" panel: alerts.yaml's contacts, rota, ladder and digest in words, as
staff need them at a glance (who is on duty now and until when, who hears next if nobody acknowledges).

Channels are shown by their name in alerts.yaml and the kind of service (from the URL's scheme) only:
never the URL, which may hold a password. Pure: the centre's time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from profiles.alerts import ON_DUTY, AlertPolicy, Channel, Digest, LadderStep
from profiles.categories import Severity
from profiles.escalation import next_change, on_duty

# A channel's kind in words, by its Apprise URL's scheme (the secure variant, ending in s, alike).
CHANNEL_KINDS = {
    "mailto": "e-mail",
    "ntfy": "ntfy",
    "tgram": "Telegram",
    "matrix": "Matrix",
    "json": "webhook",
    "xml": "webhook",
    "form": "webhook",
    "signal": "Signal",
    "slack": "Slack",
    "discord": "Discord",
    "msteams": "Microsoft Teams",
    "whatsapp": "WhatsApp",
    "sns": "SMS (Amazon SNS)",
    "twilio": "SMS (Twilio)",
}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def channel_kind(channel: Channel) -> str:
    """The kind of service a channel is (`e-mail`, `ntfy`, `webhook`), from its URL's scheme only."""
    scheme = channel.url.split("://", 1)[0].lower() if "://" in channel.url else ""
    if scheme in CHANNEL_KINDS:
        return CHANNEL_KINDS[scheme]
    if scheme.endswith("s") and scheme[:-1] in CHANNEL_KINDS:
        return CHANNEL_KINDS[scheme[:-1]]
    return scheme or "unknown"


@dataclass(frozen=True)
class ContactLine:
    """A contact as the panel shows it: the display name, its alerts.yaml key, its channels in words."""

    name: str
    key: str
    channels: tuple[str, ...]  # "phone (ntfy)", or just "ntfy" when the name is the kind


@dataclass(frozen=True)
class WhoIsTold:
    """The panel: who is on duty now (display name, '' for nobody) and until when (words, '' when it
    never changes), the ladder and the digest in words, the contacts, and warnings to show first."""

    on_duty: str
    until: str
    ladder: tuple[str, ...]
    digest: str
    contacts: tuple[ContactLine, ...]
    warnings: tuple[str, ...]


def display_names(policy: AlertPolicy) -> dict[str, str]:
    """alerts.yaml's contact keys -> the names staff read (the key when no name is written)."""
    return {c.name: c.display_name or c.name for c in policy.contacts}


def clock_words(moment: datetime, local: datetime) -> str:
    """`18:00 today`, `09:00 tomorrow`, `Monday 09:00`, or `Mon 14 Dec 09:00` further off."""
    days = (moment.date() - local.date()).days
    if days == 0:
        return f"{moment:%H:%M} today"
    if days == 1:
        return f"{moment:%H:%M} tomorrow"
    if days < 7:
        return f"{WEEKDAYS[moment.weekday()]} {moment:%H:%M}"
    return f"{moment:%a} {moment.day} {moment:%b %H:%M}"


def _after(step: LadderStep) -> str:
    minutes = round(step.after_s / 60)
    if minutes == 0:
        return "At once"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"After {hours} {'hour' if hours == 1 else 'hours'} unacknowledged"
    return f"After {minutes} {'minute' if minutes == 1 else 'minutes'} unacknowledged"


def _for_whom(severity: Severity) -> str:
    if severity >= Severity.CRITICAL:
        return "critical alerts only"
    if severity >= Severity.HIGH:
        return "high and critical alerts"
    return "every alert"


def ladder_words(policy: AlertPolicy, local: datetime) -> tuple[str, ...]:
    """Each step of the ladder in a line: `At once: whoever is on duty (now Duty phone), for high and
    critical alerts`."""
    names = display_names(policy)
    now_on = on_duty(policy, local)
    lines = []
    for step in policy.ladder:
        if step.notify == ON_DUTY:
            who = (
                f"whoever is on duty (now {names.get(now_on, now_on)})"
                if now_on
                else ("whoever is on duty (nobody now)")
            )
        else:
            who = names.get(step.notify, step.notify)
        lines.append(f"{_after(step)}: {who}, for {_for_whom(step.min_severity)}")
    return tuple(lines)


def digest_words(digest: Digest | None, names: dict[str, str]) -> str:
    if digest is None:
        return "No digest (alerts.yaml has no 'digest')."
    at = f"{digest.at // 60:02d}:{digest.at % 60:02d}"
    when = f"every day at {at}" if digest.weekday is None else f"every {WEEKDAYS[digest.weekday]} at {at}"
    return (
        f"A summary {when} to {names.get(digest.to, digest.to)}: events by area, open incidents and "
        "alerts nobody has acknowledged."
    )


def who_is_told(policy: AlertPolicy, local: datetime) -> WhoIsTold:
    """The panel's words for `policy` at `local` (naive, the centre's time)."""
    names = display_names(policy)
    duty = on_duty(policy, local)
    change = next_change(policy, local)
    until = ""
    if duty and change is not None:
        until = f"until {clock_words(change, local)}"
        after = on_duty(policy, change)
        until += f", then {names.get(after, after)}" if after else ", then nobody"
    elif not duty and change is not None:
        later = on_duty(policy, change)
        until = f"until {clock_words(change, local)}, when {names.get(later, later)} comes on duty"
    warnings = []
    if not policy.contacts:
        warnings.append(
            "No contact is written in alerts.yaml: only the banner on the staff pages tells anyone of an "
            "alert, and only while a staff page is open. Ask the administrator to add contacts, a rota "
            "and a ladder (see the staff guide)."
        )
    elif not policy.ladder:
        warnings.append(
            "alerts.yaml has contacts but no ladder: nobody is sent a message; only the banner tells."
        )
    elif not duty and any(s.notify == ON_DUTY for s in policy.ladder):
        warnings.append(
            "Nobody is on duty now and there is no out-of-hours contact: the ladder's on-duty step tells "
            "no one until the next shift."
        )
    contacts = tuple(
        ContactLine(
            name=names[c.name],
            key=c.name,
            channels=tuple(
                ch.name if ch.name == channel_kind(ch) else f"{ch.name} ({channel_kind(ch)})"
                for ch in c.channels
            ),
        )
        for c in policy.contacts
    )
    return WhoIsTold(
        on_duty=names.get(duty, duty),
        until=until,
        ladder=ladder_words(policy, local),
        digest=digest_words(policy.digest, names),
        contacts=contacts,
        warnings=tuple(warnings),
    )
