"""What the proxy's addons share: the worker's policy in force and event log (`Shared`), and what is known
of one web request between the addons and hooks that handle it (`Seen`, in `flow.metadata[KEY]`).

The addons (appliance/proxy/worker.py `monitoring_addons`, in the order mitmproxy calls them) each do
one job; they read the policy in force only through `Shared.live`, which the follower swaps whole on
reload, so a request is decided entirely under one policy.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

from mitmproxy import http
from mitmproxy.connection import Client

from appliance.events.recording import EventLog
from appliance.events.values import Answer, Asker
from appliance.forwarding import forwarding_key
from appliance.in_force.controls import activity
from appliance.in_force.follower import Follower
from appliance.in_force.live import IDENTITY_TTL, Live, asker_of
from appliance.net import Neighbours, is_own_address
from appliance.proxy.ca import Authority
from appliance.proxy.limits import Admission
from appliance.proxy.trust import DeviceTrust
from filters.names import is_address
from profiles.controls import NO_STANDING, Standing
from profiles.identity import Identity
from profiles.policy import Special
from profiles.profile import OnError
from profiles.verdict import Action, Step, Verdict

log = logging.getLogger("appliance.proxy")

KEY = "childsafe"  # our state in flow.metadata
# The event's channel by what was logged: a tunnel's decision is a TLS one; raw traffic is "tcp".
_CHANNELS = {"tls": "tls", "connect": "tls", "raw": "tcp"}


class Seen:
    """What the addons know of one web request between their hooks (in `flow.metadata[KEY]`)."""

    __slots__ = (
        "done_in",
        "host",
        "identity",
        "inspect",
        "ours",
        "report",
        "score",
        "sent",
        "sent_host",
        "standing",
        "started",
        "verdict",
        "who",
    )

    def __init__(
        self, who: Asker, identity: Identity, started: float, standing: Standing = NO_STANDING
    ) -> None:
        self.who = who
        self.identity = identity
        self.standing = standing  # staff's controls on the device (pause, grants, budget left)
        self.started = started
        self.host = ""  # the host decided on (and connected to); "" if the request names no usable site
        self.sent_host = ""  # the other site a request was addressed to (appliance/proxy/target.py)
        self.verdict: Verdict | None = None
        self.ours = False  # the response is ours (block page, report, certificate)
        self.inspect = False  # the request body is read for personal information
        self.report = False  # the block page's report form, read in `request` (with its body)
        self.score = False  # the response is an HTML page to score
        self.sent = 0  # bytes of a streamed response
        # The hook in which an addon finished with the flow (refused it, or deciding raised and it was
        # answered "unavailable" or let through): the addons after it leave the flow alone in that hook.
        self.done_in = ""


def seen_of(flow: http.HTTPFlow, hook: str) -> Seen | None:
    """The flow's `Seen` if the addons still act on it in `hook`: not when the answer is already ours
    or an addon finished with it in this hook."""
    seen = flow.metadata.get(KEY)
    if seen is None or seen.ours or seen.done_in == hook:
        return None
    return seen  # type: ignore[no-any-return]


def url_of(scheme: str, host: str, port: int, path: str) -> str:
    """The URL on `host` (the decided one), its port shown only when not the scheme's default."""
    default = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}{'' if port == default else f':{port}'}{path or '/'}"


def url_now(flow: http.HTTPFlow, seen: Seen) -> str:
    """The request's URL on its decided host, with its query as it is now (safe search adds to it)."""
    request = flow.request
    return url_of(request.scheme, seen.host, request.port, request.path) if seen.host else request.url


def plain(headers: http.Headers) -> dict[str, str]:
    """The request's headers as a dict with lower-case names: mitmproxy's `Headers` costs a few
    microseconds per look-up (it searches and decodes its fields every time)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers.fields}


def kept_url(url: str, verdict: Verdict) -> str:
    """The URL as the log may keep it: whole for a block or a flag (staff must see what it was), without
    its query for an allowed request kept under `log_allowed: event` (a query carries searches, ids)."""
    if verdict.action is Action.BLOCK or verdict.flagged:
        return url
    return url.split("?", 1)[0]


class Shared:
    """One worker's state, read by every addon: the policy in force (followed and swapped whole by the
    follower), who each device is and whether it trusts the CA, the CA, the event log, and the count of
    failures (`errors`)."""

    def __init__(
        self,
        live: Live,
        authority: Authority,
        events: EventLog | None,
        config_path: Path | None = None,
        neighbours: Neighbours | None = None,
        *,
        admission: Admission | None = None,
    ) -> None:
        self.follower = Follower(live, role="proxy", config_path=config_path, events=events, log=log)
        self.authority = authority
        self.events = events
        self.neighbours = neighbours or Neighbours(live.config.dns.leases)
        self.neighbours.refresh()
        self.admission = admission
        self.forwarding = forwarding_key(live.config.data_dir)
        self.errors = 0
        self.trust = DeviceTrust()  # which own devices trust the centre's certificate (proxy/trust.py)
        self._clients: dict[str, tuple[float, Identity, Asker, Standing]] = {}
        self._answers: dict[tuple[int, str, str], tuple[Verdict, Answer]] = {}

    @property
    def live(self) -> Live:
        """The policy in force (the follower swaps it whole on reload)."""
        return self.follower.live

    def now(self) -> datetime:
        return datetime.now(self.live.zone)

    # ---- who ----

    def client(self, client: Client, now: float) -> tuple[Identity, Asker, Standing]:
        """Who the device behind `client` is and staff's controls on it (`decide`'s standing), remembered
        together for IDENTITY_TTL seconds (`now` is monotonic) and forgotten when the controls change."""
        ip = client.peername[0] if client.peername else ""
        if ip.startswith("::ffff:"):
            ip = ip[7:]
        known = self._clients.get(ip)
        if known is not None and known[0] > now:
            if known[1].child is not None and self.events is not None:
                self.events.seen.add((known[1].child.id, ip))  # in use: the session is not idle
            return known[1], known[2], known[3]
        live = self.live
        mac = self.neighbours.mac_of(ip)
        identity = live.identify(ip, mac)
        who = asker_of(ip, identity, (known[1], known[2]) if known is not None else None)
        standing = live.standing(identity, ip, mac)
        if len(self._clients) >= 65_536:
            self._clients.clear()
        self._clients[ip] = (now + IDENTITY_TTL, identity, who, standing)
        return identity, who, standing

    def forget(self, *, answers: bool = False) -> None:
        """Identify every device anew (a sign-in, a new lease, staff's controls, a reload); `answers`: the
        log's answers made under the old policy go too."""
        self._clients.clear()
        if answers:
            self._answers.clear()

    def spoke(self, client: Client) -> None:
        """The device sent a whole request head or TLS hello: its connection has no deadline now."""
        if self.admission is not None:
            self.admission.spoke(client.peername)

    # ---- the policy, as the addons ask it ----

    def fails_open(self, identity: Identity | None) -> bool:
        """Is `identity`'s profile let through when deciding fails (`on_error: allow`, staff)?"""
        if identity is None:
            return False
        try:
            return self.live.policy.rules_for(identity.profile).profile.on_error is OnError.ALLOW
        except Exception:
            return False

    def help_service(self, host: str) -> bool:
        return bool(host) and self.live.policy.host_facts(host).special is Special.HELP

    def to_appliance(self, host: str) -> bool:
        """Is `host` the appliance's own pages (a portal name, or one of its own addresses)?"""
        if is_address(host):
            return is_own_address(host)
        return self.live.policy.host_facts(host).special is Special.PORTAL

    def own_device(self, identity: Identity) -> bool:
        """Is this a child's or guest's own device, which may be shown the block page if it trusts the
        centre's certificate? Not the centre's (managed) devices, and not staff's, whose traffic is never
        decrypted: a staff member signed in, or a staff profile (one that bypasses the filter or fails
        open, `on_error: allow`)."""
        if identity.managed or (identity.child is not None and identity.child.staff):
            return False
        rules = self.live.policy.rules_for(identity.profile)
        return rules.bypass is None and rules.profile.on_error is not OnError.ALLOW

    def checks_sent(self, identity: Identity) -> bool:
        """Does this profile have what a child sends checked for personal information?"""
        profile = self.live.policy.rules_for(identity.profile).profile
        return profile.personal_info.action is not Action.ALLOW and not profile.bypass

    # ---- the log ----

    def log(
        self,
        who: Asker,
        verdict: Verdict,
        host: str,
        detail: str,
        started: float,
        method: str,
        url: str,
        status: int,
        size: int,
        terms: str,
    ) -> None:
        """Add one request to the event log (if the worker has one). `detail`: what was decided ("web",
        "report", "connect", "tls", "raw", "websocket"); `started` is monotonic."""
        if self.events is None:
            return
        key = (id(verdict), host, detail)
        known = self._answers.get(key)
        if known is not None and known[0] is verdict:
            what = known[1]
        else:
            channel = _CHANNELS.get(detail, "http")
            what = Answer.of(channel, host, detail, verdict)
            if len(self._answers) >= 50_000:
                self._answers.clear()
            self._answers[key] = (verdict, what)
        if what.kept:
            url = kept_url(url, verdict)
        self.events.add_request(
            time.time(), who, what, time.monotonic() - started, method, url, status, size, terms
        )

    def count(self, identity: Identity | None, standing: Standing, verdict: Verdict) -> None:
        """Count the active minute of a budgeted child's request (appliance/in_force/controls.py)."""
        if standing.left is not None and identity is not None and self.events is not None:
            self.events.activity.update(activity(identity, standing, verdict, time.time()))


def help_reason(verdict: Verdict) -> bool:
    """Was `verdict` reached because the site is a help service (never named in a log)?"""
    return any(r.step is Step.HELP_SERVICE for r in verdict.reasons)
