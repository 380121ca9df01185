"""The verdict on one host or URL for one profile at one time, with every reason: what `appliance explain`
prints, the dashboard's profile editor shows and head office's bundle checks judge a bundle by."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from appliance.config import ConfigError
from appliance.policy_files import PolicyFiles
from filters.names import BadName, normalise_host
from profiles.decide import decide
from profiles.identity import GUEST, Identity, Via
from profiles.policy import Policy
from profiles.request import Channel, Request
from profiles.verdict import Action, Verdict


def parse_time(text: str | None, zone: tzinfo) -> datetime:
    """An ISO time (centre time unless it has an offset) as an aware datetime; now if None or empty."""
    if not text:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise ConfigError(f"--at {text!r}: give an ISO time like 2026-11-24T16:30 (centre time)") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when


@dataclass(frozen=True)
class Explanation:
    """The verdict on one host or URL for one profile at one time, as `appliance explain` shows it."""

    subject: str
    at: datetime  # aware
    zone: ZoneInfo
    verdict: Verdict
    intercept_tls: bool  # may the profile's traffic be decrypted on centre-managed devices

    @property
    def local(self) -> datetime:
        """The time in the centre's time zone."""
        return self.at.astimezone(self.zone)

    @property
    def action_words(self) -> str:
        """`BLOCK`, `ALLOW and FLAG`, ... as the explanation's headline."""
        what = self.verdict.action.value.upper()
        if self.verdict.flagged and self.verdict.action is not Action.FLAG:
            what += " and FLAG"
        return what


def explain_request(
    subject: str,
    *,
    source_url: str | None = None,
    request_type: str = "document",
    send: str | None = None,
) -> Request:
    """The request `appliance explain` judges: a URL (with a `/`) as a web request, else a DNS name.
    Raises ConfigError if the subject is not a host name or URL."""
    subject = subject.strip()
    if "/" in subject or "://" in subject:
        url = subject if "://" in subject else "https://" + subject
        request = Request.web(url, source_url=source_url, request_type=request_type, outbound_text=send)
    else:
        request = Request(subject.lower().rstrip("."), channel=Channel.DNS)
    try:
        ipaddress.ip_address(request.host)
    except ValueError:
        try:
            normalise_host(request.host)
        except BadName as e:
            raise ConfigError(f"{subject!r} is not a host name or URL ({e})") from e
    return request


def explain(
    files: PolicyFiles,
    policy: Policy,
    profile: str,
    subject: str,
    at: str | None = None,
    *,
    source_url: str | None = None,
    request_type: str = "document",
    send: str | None = None,
) -> Explanation:
    """The verdict on `subject` (a host or URL) for `profile` at `at` (ISO, centre time; None: now),
    with every reason. Raises ConfigError for an unknown profile, a bad time or a bad subject."""
    if profile not in files.profiles and profile != GUEST:  # `guest`: the policy names its own
        raise ConfigError(f"no profile {profile!r} (profiles: {', '.join(files.profiles)})")
    now = parse_time(at, files.zone)
    subject = subject.strip()
    request = explain_request(subject, source_url=source_url, request_type=request_type, send=send)
    verdict = decide(request, policy, Identity(profile, Via.ASSUMED), now)
    return Explanation(subject, now, files.zone, verdict, files.profiles[verdict.profile].intercept_tls)
