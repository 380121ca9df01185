"""Verdicts on connections rather than on one request: a client that named one site and sent the
request to another, and traffic no list can judge. Pure; the proxy says what it saw.

A browser never names two different sites for one request: the Host header is the URL's host, the TLS
name (SNI) the CONNECT target's. A client that does is trying a way round the filter (domain fronting,
`Host: kiddle.co` sent to a blocked site's address), so the request is judged on the strictest reading
and the attempt is flagged for staff. Traffic that is neither HTTP nor TLS, TLS without a site name and
HTTP without a host cannot be judged at all: children's devices are refused it.
"""

from __future__ import annotations

from profiles.categories import Severity
from profiles.identity import Identity
from profiles.policy import Policy
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict

ATTEMPT_SEVERITY = Severity.MEDIUM  # seen by staff in the feed; alerts may raise it (conduct)


def _bypasses(verdict: Verdict) -> bool:
    return any(r.step is Step.STAFF_BYPASS for r in verdict.reasons)


def _help(verdict: Verdict) -> bool:
    return any(r.step is Step.HELP_SERVICE for r in verdict.reasons)


def named_and_sent(named: Verdict, sent: Verdict, *, named_host: str, sent_host: str) -> Verdict:
    """The strictest reading of a request that named `named_host` (Host header, TLS name) and was sent
    to `sent_host` (the URL's host, the CONNECT target, the TLS name outside): blocked if either verdict
    blocks, and flagged as an attempt to get round the filter, with the reasons of both.

    A profile that bypasses filtering (staff) gets `named` unchanged. A help service is never named in
    the log: where one side is a help service and the other is not blocked, `named` is returned as it
    is (the request goes to the name it named, which the appliance resolves itself); where the other side
    is blocked, the block names only the other side.
    """
    if _bypasses(named) and _bypasses(sent):
        return named
    if _help(named) or _help(sent):
        other = sent if _help(named) else named
        if other.action is not Action.BLOCK:
            return named
        detail = "the request named a help service but was sent to a blocked site"
        return _attempt(other, other.reasons, detail)
    action = Action.BLOCK if Action.BLOCK in (named.action, sent.action) else named.action
    if action is Action.BLOCK:
        first = named if named.action is Action.BLOCK else sent
        reasons = first.reasons + tuple(r for r in (named.reasons + sent.reasons) if r not in first.reasons)
    else:
        reasons = named.reasons + tuple(r for r in sent.reasons if r not in named.reasons)
    detail = f"the request named {named_host} but was sent to {sent_host}"
    base = Verdict(
        action,
        named.profile,
        reasons,
        max(named.severity, sent.severity),
        named.safe_search if action is Action.REWRITE else None,
        LogDetail.EVENT,
    )
    return _attempt(base, base.reasons, detail)


def _attempt(base: Verdict, reasons: tuple[Reason, ...], detail: str) -> Verdict:
    flag = Reason(Step.BYPASS_ATTEMPT, Action.FLAG, detail, severity=ATTEMPT_SEVERITY)
    action = base.action if base.action is not Action.ALLOW else Action.FLAG
    return Verdict(
        action,
        base.profile,
        (*reasons, flag),
        max(base.severity, ATTEMPT_SEVERITY),
        base.safe_search,
        LogDetail.EVENT,
    )


def undecidable(policy: Policy, identity: Identity, what: str) -> Verdict:
    """Traffic no list can judge (`what` says which: "not web traffic (SSH) to host:22", "TLS without a
    site name"): refused for children, flagged as an attempt to get round the filter; a profile that
    bypasses filtering (staff) is let through."""
    rules = policy.rules_for(identity.profile)
    if rules.bypass is not None:
        return rules.bypass
    reason = Reason(Step.BYPASS_ATTEMPT, Action.BLOCK, f"refused: {what}", severity=ATTEMPT_SEVERITY)
    return Verdict(Action.BLOCK, rules.name, (reason,), ATTEMPT_SEVERITY, log=LogDetail.EVENT)


# An address may be named outright by the lists (a list entry for it) or by the profile (its own allow
# entry, an allowlist category): then it is a site like any other.
_ALLOWED_BY_NAME = frozenset(
    {Step.ALLOWLIST, Step.OVERRIDE, Step.STAFF_BYPASS, Step.HELP_SERVICE, Step.PORTAL}
)


def named_by_address(verdict: Verdict, policy: Policy, identity: Identity, address: str) -> Verdict:
    """A site named only by its IP address (a URL, Host header or TLS name that is an address, in any
    spelling): no list can say what is there, so for children it is refused as a way round the filter
    unless a list or the profile allows that address outright. `verdict` is the address's own."""
    if verdict.action is Action.BLOCK:
        return verdict
    if any(r.effect is Action.ALLOW and r.step in _ALLOWED_BY_NAME for r in verdict.reasons):
        return verdict
    return undecidable(policy, identity, f"a site named only by its address ({address})")
