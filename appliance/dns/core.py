"""The DNS filter's answering without I/O, in the manner of dnspython's `_Resolution`: a question's bytes,
the asking device, the policy in force and the time in; a reply's bytes out, or an upstream look-up to do
first and then, given its records or its failure, a reply's bytes. CNAME cloaking is decided here, and an
answer that holds is remembered on the device (`Client.fast`) for the server's fast path.

No sockets, no event loop, no upstream: `DnsServer` (server.py) reads and sends, identifies the device,
spends its rate limit, looks the records up, and logs each reply's `what`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from dnslib import RR

from appliance.dns import answers
from appliance.dns.errors import Malformed
from appliance.dns.wire import (
    TYPE_ANY,
    Question,
    build,
    error_answer,
    qtype_name,
    read_question,
    truncated,
    ttl_offsets,
)
from appliance.events.values import Answer
from appliance.in_force.controls import activity
from appliance.in_force.live import FAST_ENTRIES, NEVER, Cached, Client, Live
from appliance.resolver.cache import Records
from appliance.resolver.protocol import Rcode
from appliance.resolver.resolution import cloaked
from profiles.controls import NO_STANDING
from profiles.decide import decide
from profiles.policy import Special
from profiles.profile import BlockedAnswer
from profiles.request import Request
from profiles.verdict import Action, LogDetail, Step, Verdict

log = logging.getLogger("appliance.dns.server")  # where these messages have always been logged


@dataclass
class Counters:
    """What the server has done since it started (for tests, logs and the dashboard)."""

    queries: int = 0
    fast: int = 0
    malformed: int = 0
    limited: int = 0
    servfail: int = 0
    stale: int = 0
    reloads: int = 0
    reload_errors: list[str] = field(default_factory=list)
    # DNS over TCP: connections refused (the device's slots or all of them taken), connections closed
    # (idle, a question too slow to arrive whole, a frame of an impossible length, too many answers
    # unread), and how often a connection stopped being read (answers unread, or too many questions).
    tcp_refused_device: int = 0
    tcp_refused_full: int = 0
    tcp_closed_idle: int = 0
    tcp_closed_slow: int = 0
    tcp_closed_bad_frame: int = 0
    tcp_closed_unread: int = 0
    tcp_paused: int = 0


class RateLimiter:
    """A token bucket per device (its `tokens` left at `last`, kept on its `Client`): `per_second`
    tokens a second, up to `burst` saved up, one per question. `per_second` 0 is off (`on` is False and
    `spend` always True). The one limit of both the UDP fast path and the slow path (UDP and TCP)."""

    __slots__ = ("burst", "on", "per_second")

    def __init__(self, per_second: float, burst: float) -> None:
        self.per_second, self.burst = per_second, float(burst)
        self.on = bool(per_second)

    def spend(self, client: Client, now: float) -> bool:
        """Take a token from the device's bucket at `now` (monotonic); False when it has none left."""
        if not self.on:
            return True
        tokens = client.tokens + (now - client.last) * self.per_second
        client.last = now
        if tokens < 1.0:
            client.tokens = tokens
            return False
        burst = self.burst
        client.tokens = (burst if tokens > burst else tokens) - 1.0
        return True


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to send, and the event to log for it (None: nothing is logged)."""

    answer: bytes
    what: Answer | None = None


@dataclass(frozen=True)
class _Plan:
    """What the slow path does with a question once decided: an answer now, or a look-up first."""

    verdict: Verdict
    what: Answer | None
    answer: bytes | None = None
    lookup: str | None = None  # the name to ask upstream (the asked name, or the safe-search target)
    until: float = NEVER  # how long the verdict holds (a scheduled profile: to the next minute)


@dataclass(frozen=True, slots=True)
class _Asking:
    """One question on the slow path: what was asked (its bytes and its reading), by whom, under which
    policy, when (monotonic), and whether over UDP (answers cut to the client's size and remembered)."""

    q: Question
    data: bytes
    client: Client
    live: Live
    now: float
    udp: bool

    def fit(self, answer: bytes) -> bytes:
        """Over UDP, an answer bigger than the client takes goes truncated (TC: it asks over TCP)."""
        return truncated(answer) if self.udp and len(answer) > self.q.udp_size else answer

    def finish(self, plan: _Plan, answer: bytes, until: float) -> Reply:
        """The reply as sent, remembered for the fast path while it holds (UDP, plain questions only; never
        for a client under staff's controls: a pause, a grant or a budget may end at any minute)."""
        sent = self.fit(answer)
        if self.udp and self.q.plain and until > self.now and self.client.standing is NO_STANDING:
            fast = self.client.fast
            # One budget for the whole appliance, shared by the profiles.
            cap = FAST_ENTRIES // max(1, len(self.live.policy.profiles))
            if len(fast) >= cap:
                for key in list(fast)[: cap // 10 or 1]:
                    del fast[key]
            offsets = ttl_offsets(sent) if plan.lookup is not None else ()
            fast[self.data[2:]] = Cached(sent, until, plan.what, self.now, offsets)
        return Reply(sent, plan.what)


class Resolution:
    """A question that needs upstream records: look up (`name`, `qtype`), then call `answered` with the
    records or `failed`; each gives the reply."""

    __slots__ = ("_asking", "_plan", "counters", "name", "qtype")

    def __init__(self, asking: _Asking, plan: _Plan, counters: Counters) -> None:
        assert plan.lookup is not None
        self._asking, self._plan, self.counters = asking, plan, counters
        self.name, self.qtype = plan.lookup, asking.q.qtype

    @property
    def asked(self) -> str:
        """The name the device asked (the look-up may be for another: safe search's)."""
        return self._asking.q.host or ""

    @property
    def what(self) -> Answer | None:
        """The event this question logs (before any CNAME cloaking is found)."""
        return self._plan.what

    def answered(self, records: Records, *, now: float, wall: float, stale: bool = False) -> Reply:
        """The reply from the upstream records at `now` (monotonic; `wall`: seconds since the epoch):
        forwarded, rewritten for safe search, or blocked when a CNAME leads to a blocked name. A fresh
        answer is remembered for the fast path while both it and the verdict hold; a stale one is not."""
        asking, plan = self._asking, self._plan
        q, live = asking.q, asking.live
        answer_rrs, authority = records.aged(now, stale=stale)
        safe = plan.verdict.safe_search if plan.verdict.action is Action.REWRITE else None
        if safe is not None:
            answer = answers.rewritten(q, safe.host, records.rcode, answer_rrs, authority)
        else:
            # A help service is never blocked, whatever its answer leads to (nor named in a log).
            help_service = any(r.step is Step.HELP_SERVICE for r in plan.verdict.reasons)
            blocked = None if help_service else self._cloaked(answer_rrs, wall)
            if blocked is not None:
                what = Answer.of("dns", q.host or "", qtype_name(q.qtype), blocked)
                rules = live.policy.rules_for(blocked.profile)
                answer = answers.blocked(q, rules.profile.blocked_answer, live.config.dns.block)
                plan = _Plan(blocked, what, until=plan.until)
            else:
                answer = answers.forwarded(q, records.rcode, answer_rrs, authority)
        if stale:
            self.counters.stale += 1
            return Reply(asking.fit(answer), plan.what)
        return asking.finish(plan, answer, min(plan.until, records.expires))

    def failed(self) -> Reply:
        """The reply when no upstream answered (nor anything stale was kept): SERVFAIL, logged."""
        self.counters.servfail += 1
        return Reply(build(self._asking.q, Rcode.SERVFAIL), self._plan.what)

    def turned_away(self) -> Reply:
        """SERVFAIL without asking upstream (the device has too many look-ups in flight), not logged."""
        self.counters.servfail += 1
        return Reply(build(self._asking.q, Rcode.SERVFAIL))

    def _cloaked(self, answer_rrs: list[RR], wall: float) -> Verdict | None:
        """A CNAME in an allowed name's answer that leads to a blocked name blocks the answer too."""
        live, client = self._asking.live, self._asking.client
        identity, standing = client.identity, client.standing
        when = datetime.fromtimestamp(wall, live.zone)
        return cloaked(answer_rrs, lambda name: decide(Request(name), live.policy, identity, when, standing))


def resolve(
    data: bytes,
    client: Client,
    live: Live,
    *,
    now: float,
    wall: float,
    udp: bool,
    counters: Counters,
    active: set[tuple[str, str, int]] | None = None,
) -> Reply | Resolution | None:
    """Answer a question's bytes from `client` under `live` at `now` (monotonic; `wall`: seconds since
    the epoch): a reply, a `Resolution` when upstream records are needed first, or None (a query not
    answered at all). Over UDP an answer is cut to the client's size and, while it holds, remembered.
    The active minutes a budgeted child's question counts go into `active` (EventLog.activity)."""
    try:
        q = read_question(data)
    except Malformed as e:
        counters.malformed += 1
        if e.rcode is not None:
            answer = error_answer(data, e.rcode, e.question, edns=e.edns)
            if answer is not None:
                return Reply(answer)
        return None
    if q.host is None or q.qtype == TYPE_ANY:
        # A name no list can judge is refused; ANY gets NOTIMP (RFC 8482 allows it).
        return Reply(build(q, Rcode.REFUSED if q.host is None else Rcode.NOTIMP))
    asking = _Asking(q, data, client, live, now, udp)
    try:
        plan = _plan(asking, wall)
        if active is not None and client.standing.left is not None:
            active.update(activity(client.identity, client.standing, plan.verdict, wall))
    except Exception:
        log.exception("deciding %s for %s failed", q.host, client.who.client)
        counters.servfail += 1
        return Reply(build(q, Rcode.SERVFAIL))
    if plan.answer is not None:
        return asking.finish(plan, plan.answer, plan.until)
    return Resolution(asking, plan, counters)


def _plan(asking: _Asking, wall: float) -> _Plan:
    q, client, live, now = asking.q, asking.client, asking.live, asking.now
    policy = live.policy
    host = q.host
    assert host is not None
    when = datetime.fromtimestamp(wall, live.zone)
    verdict = decide(Request(host), policy, client.identity, when, client.standing)
    what = Answer.of("dns", host, qtype_name(q.qtype), verdict) if verdict.log is not LogDetail.NONE else None
    rules = policy.rules_for(verdict.profile)
    until = now + (60.0 - wall % 60.0) if rules.scheduled else NEVER
    if verdict.action is Action.BLOCK:
        special = policy.host_facts(host).special
        if special in (Special.CANARY_NXDOMAIN, Special.CANARY_NODATA):
            answer = answers.canary(q, nxdomain=special is Special.CANARY_NXDOMAIN)
        else:
            answer = answers.blocked(q, rules.profile.blocked_answer, live.config.dns.block)
        return _Plan(verdict, what, answer=answer, until=until)
    if verdict.reasons and verdict.reasons[0].step is Step.PORTAL:
        # The centre's own pages (appliance.lan): the appliance's addresses, as for a block page.
        answer = answers.blocked(q, BlockedAnswer.BLOCK_PAGE, live.config.dns.block)
        return _Plan(verdict, what, answer=answer, until=until)
    if verdict.action is Action.REWRITE and verdict.safe_search is not None:
        return _Plan(verdict, what, lookup=verdict.safe_search.host, until=until)
    return _Plan(verdict, what, lookup=host, until=until)
