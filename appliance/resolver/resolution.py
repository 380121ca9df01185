"""The filtered resolution of a name for one device: the addresses the DNS filter would give that device.

The proxy connects upstream only to these (appliance/proxy/route.py `server_connect`): never to an address
the client chose, so a request that names an allowed site cannot be sent to a blocked site's address. The
answer follows the DNS filter's own rules: a blocked name has no addresses, safe search resolves the
engine's safe name, an allowed name whose CNAME chain leads to a blocked name is blocked (cloaking), and
the centre's portal names are the appliance's own addresses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from dnslib import RR

from appliance.in_force.live import Live
from appliance.resolver.errors import UpstreamFailed
from appliance.resolver.protocol import TYPE_A, TYPE_AAAA, TYPE_CNAME
from appliance.resolver.upstream import Upstreams
from profiles.controls import NO_STANDING, Standing
from profiles.decide import decide
from profiles.identity import Identity
from profiles.request import Request
from profiles.verdict import Action, Reason, Step, Verdict


def cname_targets(answer: Sequence[RR]) -> list[str]:
    """The names an answer's CNAME chain leads to (lower case, no trailing dot)."""
    return [str(rr.rdata.label).rstrip(".").lower() for rr in answer if rr.rtype == TYPE_CNAME]


def cloaked(answer: Sequence[RR], judge: Callable[[str], Verdict]) -> Verdict | None:
    """A CNAME in an allowed name's answer that leads to a blocked name blocks the answer too (trackers
    and adult sites hide behind innocent names that way): that block, naming the CNAME target, or None.
    `judge` decides one name for the asking device."""
    for name in cname_targets(answer):
        verdict = judge(name)
        if verdict.action is not Action.BLOCK:
            continue
        first = verdict.reasons[0] if verdict.reasons else None
        reason = Reason(
            Step.CATEGORY if first is None else first.step,
            Action.BLOCK,
            f"the answer leads to {name}, which is blocked",
            first.category if first else "",
            first.grid if first else "",
            verdict.severity,
            first.source if first else "",
            first.line if first else 0,
            first.rule if first else name,
        )
        return Verdict(
            Action.BLOCK, verdict.profile, (reason, *verdict.reasons[1:]), verdict.severity, log=verdict.log
        )
    return None


def addresses_of(answer: Sequence[RR], qtype: int) -> tuple[str, ...]:
    """The addresses of type `qtype` (A or AAAA) in an answer."""
    return tuple(str(rr.rdata) for rr in answer if rr.rtype == qtype)


@dataclass(frozen=True)
class Resolved:
    """A name resolved for one device: its addresses, or why there are none (`blocked`, the verdict that
    blocks it; `error`, the upstreams failed). `verdict` is the name's own verdict for the device."""

    verdict: Verdict
    addresses: tuple[str, ...] = ()
    blocked: Verdict | None = None
    error: str = ""


class Resolver:
    """Filtered resolution over the DNS filter's upstream code (its cache, failover and deadlines).
    One per event loop."""

    def __init__(self, upstreams: Upstreams) -> None:
        self.upstreams = upstreams

    async def resolve(
        self, host: str, identity: Identity, live: Live, standing: Standing = NO_STANDING
    ) -> Resolved:
        """`host` (canonical, not an IP literal) as the DNS filter would answer `identity` under staff's
        controls `standing`: A records, else AAAA."""
        zone = live.zone

        def judge(name: str) -> Verdict:
            return decide(Request(name), live.policy, identity, datetime.now(zone), standing)

        verdict = judge(host)
        if verdict.action is Action.BLOCK:
            return Resolved(verdict, blocked=verdict)
        if verdict.reasons and verdict.reasons[0].step is Step.PORTAL:
            block = live.config.dns.block
            return Resolved(verdict, addresses=block.page_v4 + block.page_v6)
        lookup = host
        if verdict.action is Action.REWRITE and verdict.safe_search is not None:
            lookup = verdict.safe_search.host
        try:
            for qtype in (TYPE_A, TYPE_AAAA):
                records, _stale = await self.upstreams.resolve(lookup, qtype)
                answer, _ = records.aged(time.monotonic())
                help_service = any(r.step is Step.HELP_SERVICE for r in verdict.reasons)
                if lookup == host and not help_service:
                    # Safe search's own CNAME is ours; the engine's chain beyond it is the engine's. A
                    # help service is never blocked, whatever its answer leads to.
                    hidden = cloaked(answer, judge)
                    if hidden is not None:
                        return Resolved(verdict, blocked=hidden)
                found = addresses_of(answer, qtype)
                if found:
                    return Resolved(verdict, addresses=found)
        except UpstreamFailed as e:
            return Resolved(verdict, error=str(e))
        return Resolved(verdict, error=f"{host} has no address")
