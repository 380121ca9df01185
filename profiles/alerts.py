"""The alerts policy (alerts.yaml, docs/alerts.md) as values: which events raise an alert and how
urgent it is, who is told and when, the escalation ladder, the digest, and what a message may carry.

Pure values: the rules' matching is in `profiles.alert_rules`, the rota and the ladder in
`profiles.escalation`; reading alerts.yaml is `appliance.policy_files`'; raising and delivering,
`appliance.alerts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from profiles.categories import Severity


class AlertKind(StrEnum):
    """What an alert is about, as a rule's `when` names it and the store's `alerts.kind` keeps it."""

    CATEGORY = "category"  # an event of one of the rule's categories (blocked or flagged)
    WATCH_LIST = "watch-list"  # a search or page with a term of one of the rule's watch lists
    PERSONAL_INFO = "personal-info"  # personal information sent (a phone number, an address, ...)
    CHILD_REPORT = "child-report"  # the child pressed "report a problem"
    BYPASS = "bypass"  # trying to get round the filter (canaries, bypass and VPN names, refused tunnels)


@dataclass(frozen=True)
class Repeats:
    """A rule that alerts only on the `count`th matching event of one subject within `within_s`."""

    count: int
    within_s: float


@dataclass(frozen=True)
class AlertRule:
    """One rule of alerts.yaml: events of `kind` (and, for categories and watch lists, of one of
    `names`; empty: any) raise an alert of `severity`. `repeats`: only once that many are seen within
    the window. A rule that is not `enabled` raises nothing (the event stays in the feed)."""

    name: str
    kind: AlertKind
    severity: Severity
    names: tuple[str, ...] = ()
    repeats: Repeats | None = None
    enabled: bool = True
    source: str = ""  # alerts.yaml:line, for messages about the rule
    open_incident: bool = False  # a critical rule opens an incident by itself (default: severity critical)
    # A rule by the event's severity (`when: {severity: medium}`): any event of these, whatever its kind.
    event_severities: tuple[Severity, ...] = ()


@dataclass(frozen=True)
class Channel:
    """Where one contact is told: an Apprise URL (mailto://, ntfy://, tgram://, json://, ...), named so
    that the store, the dashboard and the audit log never hold the URL (it may carry a password)."""

    name: str
    url: str


@dataclass(frozen=True)
class Contact:
    """A person or a shared duty phone, with the channels they are told through."""

    name: str
    channels: tuple[Channel, ...]
    display_name: str = ""


@dataclass(frozen=True)
class Shift:
    """`contact` is on duty on `days` (0 Monday .. 6 Sunday) from `start` to `end` (minutes after
    midnight, centre's time; `end` < `start` runs past midnight)."""

    contact: str
    days: frozenset[int]
    start: int
    end: int


@dataclass(frozen=True)
class LadderStep:
    """`after_s` seconds after an alert is raised, unacknowledged, tell `notify`: a contact's name, or
    `on-duty` (the rota's contact on duty then, else the out-of-hours contact)."""

    after_s: float
    notify: str
    min_severity: Severity = Severity.HIGH


@dataclass(frozen=True)
class Digest:
    """A summary to `to` every day (`weekday` None) or week (`weekday` 0 Monday .. 6), at `at` minutes
    after midnight, centre's time."""

    to: str
    at: int = 8 * 60
    weekday: int | None = None


@dataclass(frozen=True)
class Share:
    """What a message may carry beyond severity, category, centre, time and the dashboard link. All off
    by default: nothing about a child leaves the appliance unless the centre chose it."""

    child_name: bool = False
    site: bool = False
    search_terms: bool = False


ON_DUTY = "on-duty"


@dataclass(frozen=True)
class AlertPolicy:
    """alerts.yaml whole. `throttle_s`: repeats of one rule for one subject within it are one alert with
    a count. Each ladder step's `min_severity` says which alerts it pushes; every alert shows on the
    dashboard's banner."""

    rules: tuple[AlertRule, ...] = ()
    throttle_s: float = 30 * 60
    contacts: tuple[Contact, ...] = ()
    rota: tuple[Shift, ...] = ()
    out_of_hours: str = ""
    ladder: tuple[LadderStep, ...] = ()
    digest: Digest | None = None
    share: Share = field(default_factory=Share)
    centre: str = ""  # the centre's name in messages
    link_base: str = ""  # the staff dashboard's address as staff reach it, for links in messages
    link_ttl_s: float = 7 * 24 * 3600  # how long an acknowledge link works

    def contact(self, name: str) -> Contact | None:
        return next((c for c in self.contacts if c.name == name), None)
