"""`decide`: a request, the policy, who is asking and when, in; a verdict with every reason, out.

The order is design.md's: identity (given), help services and the portal, a pause by staff, staff
bypass, a spent internet budget, schedule, always-blocked, a grant by staff ("allow for a while"), a
spent category budget, safe search (it wins over the allowlist and a grant), the profile's own entries
and allowlist, its blocked categories (allowlist-only mode: everything not allowed), downloads,
flag-only categories, watch lists and personal information, then allow. Pure: no I/O; the clock is the
`now` argument, staff's controls (`profiles.controls.Standing`) the `standing` one.

Where several lists name the host, every one counts for what is blocked; their ranks (`Policy.ranks`)
choose which of them a block is reported under, drop a flag a better list contradicts, and let an
`exceptions` list take a name out of a category (docs/lists.md, "When lists disagree").
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import datetime

from filters.host_table import ALLOW
from filters.index import RawHit
from filters.phrase_index import PhraseHit
from filters.sources import Rank
from filters.urls import PathReadings, path_allowed_by, path_blocked_by, read_path, split_url
from profiles.categories import Category, Kind, Severity
from profiles.controls import INTERNET, NO_STANDING, Grant, Pause, Scope, Standing
from profiles.identity import Identity
from profiles.pii import find_personal_info
from profiles.policy import NO_FACTS, Effect, HostFacts, Override, Policy, ProfileRules, Special
from profiles.request import Request
from profiles.schedule import Outside
from profiles.search_terms import extract_search
from profiles.verdict import Action, LogDetail, Reason, SafeTarget, Step, Verdict
from profiles.watch import watch_hits

_Bucket = list[tuple[RawHit, Category]]
PERSONAL_INFO = "personal-info"  # the category personal-information findings are reported under
# Requests that save a file the child can open are navigations (a download is a navigation whose answer
# is a file); an image or script URL ending in .exe is not. The proxy also judges answers by their
# Content-Disposition and type.
_NAVIGATIONS = frozenset({"document", "subdocument"})


def decide(
    request: Request, policy: Policy, identity: Identity, now: datetime, standing: Standing = NO_STANDING
) -> Verdict:
    """The verdict on `request` from `identity` at `now` (an aware datetime) under `policy`, with staff's
    controls that apply to this client now (`standing`: `Controls.standing`).

    A pause blocks everything but help services and the portal; a centre pause leaves profiles that
    bypass filtering and staff signed in at the portal alone. A grant allows its site or category as
    the profile's own allow entry would, but never over a pause, the schedule, an always-blocked
    category or a spent internet budget. Verdicts are remembered only for clients with no standing.

    Raises UnknownProfile if the identity's profile is not in the policy, ValueError if `now` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("decide needs the time with its time zone (an aware datetime)")
    rules = policy.rules.get(identity.profile) or policy.rules_for(identity.profile)
    host, url, _, source_url, request_type, outbound_text = request
    facts = policy.facts.get(host) or policy.host_facts(host)
    if facts is not NO_FACTS and facts.special:
        return _special(facts, rules)
    if standing is not NO_STANDING:
        return _decide_standing(request, policy, identity, now, standing, rules, facts)
    if rules.bypass is not None:
        return rules.bypass
    if url is not None:
        raw = policy.index.match_url(url, source_url=source_url, request_type=request_type).raw
    else:
        raw = policy.index.match_host(host).raw
    if (
        (not rules.scheduled or (rules.open_from <= now < rules.open_until) or rules.outside(now) is None)
        and outbound_text is None
        and (
            url is None
            or not rules.downloads
            or request_type not in _NAVIGATIONS
            or url_extension(url) not in rules.downloads
        )
    ):
        # Nothing about this time, this text or this file: the verdict follows from the list hits and
        # what the policy says about the host, and the same ones come back request after request.
        key: Hashable
        if facts is NO_FACTS:
            if not raw and not rules.allowlist_only:
                return rules.allow
            # A host-only question in allowlist-only mode also depends on the host's page entries.
            key = (host, raw) if url is None and rules.allowlist_only else raw
        elif rules.name not in facts.overrides and (
            url is None or not facts.search or not rules.watch_lists or extract_search(url) is None
        ):
            key = (host, raw)
        else:
            return _decide(request, policy, rules, facts, raw, None)
        if key is raw:
            # The index hands back the same hits object for the same host and rule: look it up by
            # identity first (no hashing), checking it is that very object.
            known = rules.by_identity.get(id(raw))
            if known is not None and known[0] is raw:
                return known[1]
        verdict = rules.memo.get(key)
        if verdict is None:
            verdict = _decide(request, policy, rules, facts, raw, None)
            rules.remember(key, verdict)
        if key is raw:
            rules.remember_identity(raw, verdict)
        return verdict
    return _decide(request, policy, rules, facts, raw, rules.outside(now) if rules.scheduled else None)


def _decide_standing(
    request: Request,
    policy: Policy,
    identity: Identity,
    now: datetime,
    standing: Standing,
    rules: ProfileRules,
    facts: HostFacts,
) -> Verdict:
    """`decide` for a client staff's controls apply to: never remembered, since they change by the
    minute and by the client."""
    pause = standing.pause
    if pause is not None and pause.active(now) and _pause_covers(pause, rules, identity):
        return _paused(pause, policy, rules)
    if rules.bypass is not None:
        return rules.bypass
    if INTERNET in standing.spent:
        reason = Reason(Step.BUDGET, Action.BLOCK, "today's internet time is used up")
        return Verdict(Action.BLOCK, rules.name, (reason,), log=LogDetail.COUNT)
    if request.url is not None:
        raw = policy.index.match_url(
            request.url, source_url=request.source_url, request_type=request.request_type
        ).raw
    else:
        raw = policy.index.match_host(request.host).raw
    outside = rules.outside(now) if rules.scheduled else None
    return _decide(request, policy, rules, facts, raw, outside, standing=standing, now=now)


def _pause_covers(pause: Pause, rules: ProfileRules, identity: Identity) -> bool:
    """A centre pause is for the children: profiles that bypass filtering (technicians) and staff
    signed in at the portal keep working. A device, child or profile pause covers whoever it names."""
    if pause.scope is not Scope.CENTRE:
        return True
    child = identity.child
    return rules.bypass is None and not (child is not None and child.staff)


def _paused(pause: Pause, policy: Policy, rules: ProfileRules) -> Verdict:
    until = f" until {_clock(pause.until, policy)}" if pause.until is not None else ""
    reason = Reason(Step.PAUSED, Action.BLOCK, f"paused by staff{until}", rule=str(pause.id))
    return Verdict(Action.BLOCK, rules.name, (reason,), log=LogDetail.COUNT)


def _clock(when: datetime, policy: Policy) -> str:
    """`when` as the centre's clock shows it (HH:MM)."""
    return when.astimezone(policy.zone).strftime("%H:%M")


def _granted(grant: Grant, policy: Policy) -> Reason:
    return Reason(
        Step.GRANT, Action.ALLOW, f"allowed by staff until {_clock(grant.until, policy)}", rule=str(grant.id)
    )


def _budget_names(named: list[tuple[RawHit, Effect, Category]]) -> list[Category]:
    """The categories the lists name the host under, whatever this profile does with them (a budget
    of games counts games it merely allows), once each; an adblock exception (`@@`) is not a naming."""
    seen: dict[str, Category] = {}
    for hit, _, category in named:
        if hit[2] & ALLOW and category.kind is Kind.RISK:
            continue
        seen.setdefault(category.name, category)
    return list(seen.values())


def _special(facts: HostFacts, rules: ProfileRules) -> Verdict:
    if facts.special is Special.HELP:
        return rules.help
    if facts.special is Special.PORTAL:
        return rules.portal
    answer = "nxdomain" if facts.special is Special.CANARY_NXDOMAIN else "nodata"
    reason = Reason(
        Step.BYPASS_CANARY, Action.BLOCK, f"a filter-bypass check: answered {answer}", rule=facts.special_rule
    )
    # Kept as an event: a child's device asking is set to get round the filter, a conduct flag
    # (docs/alerts.md); a profile that bypasses filtering (a technician's) gets round nothing.
    log = LogDetail.COUNT if rules.bypass is not None else LogDetail.EVENT
    return Verdict(Action.BLOCK, rules.name, (reason,), log=log)


def _decide(
    request: Request,
    policy: Policy,
    rules: ProfileRules,
    facts: HostFacts,
    raw: tuple[RawHit, ...],
    outside: Outside | None,
    *,
    standing: Standing = NO_STANDING,
    now: datetime | None = None,
) -> Verdict:
    profile = rules.profile
    effects = rules.effects
    ranks = policy.source_ranks
    named: list[tuple[RawHit, Effect, Category]] = []
    exceptions: _Bucket = []
    for hit in raw:
        effect, category = effects[2 * hit[1] + (1 if hit[2] & ALLOW else 0)]
        if category is None:
            continue
        if effect is Effect.EXCEPTION:
            exceptions.append((hit, category))
        else:
            named.append((hit, effect, category))
    if exceptions:
        named = [n for n in named if not _excepted(n[0], n[2], exceptions)]
    # The best rank among the lists that name the host as a risk, whatever this profile does with it:
    # a flag from a lower-ranked list is noise where a better list calls the host something else.
    best = max(
        (ranks[h[1]] for h, _, c in named if not h[2] & ALLOW and c.kind is Kind.RISK), default=Rank.STALE
    )
    always: _Bucket = []
    blocked: _Bucket = []
    flagged: _Bucket = []
    allowlisted: _Bucket = []
    for hit, effect, category in named:
        if effect is Effect.IGNORE:
            continue
        if effect is Effect.BLOCK:
            blocked.append((hit, category))
        elif effect is Effect.ALWAYS_BLOCK:
            always.append((hit, category))
        elif effect is Effect.FLAG:
            if ranks[hit[1]] >= best:
                flagged.append((hit, category))
        else:
            allowlisted.append((hit, category))

    url = request.url
    path = split_url(url)[1] if url is not None and (facts.overrides or profile.blocked_downloads) else ""
    own = _own_entry(facts, rules.name, path)
    reasons: list[Reason] = []
    # What the child searched for or is sending goes with the verdict whatever it is: a self-harm search
    # at closing time is blocked by the schedule, and staff must still hear of it.
    concerns = _concerns(request, policy, rules, facts)

    # Schedule: outside the windows only the allowlist works (or nothing, or all of it flagged).
    if outside is not None:
        closed = Reason(Step.SCHEDULE, Action.BLOCK, "outside this profile's opening hours")
        let_through = (own is not None and own.action is Action.ALLOW) or bool(allowlisted)
        if outside is Outside.BLOCK or (outside is Outside.ALLOWLIST and not let_through):
            # What the profile lets through in opening hours, its block categories do not name for it.
            return _closed(policy, rules, concerns, closed, always, [] if let_through else blocked, flagged)
        if outside is Outside.FLAG:
            reasons.append(
                Reason(
                    Step.SCHEDULE,
                    Action.FLAG,
                    "used outside this profile's opening hours",
                    severity=Severity.LOW,
                )
            )

    if always:
        # What blocks it for everyone is what staff are told, whatever other lists call the host: a
        # malware or phishing entry is never reported (and counted) as an advert. Ranks choose among
        # the always-blocked lists only.
        return _blocked(rules, concerns, _named(policy, [(Step.ALWAYS_BLOCKED, h, c) for h, c in always]))

    # Staff's controls: a grant is the child's own allow entry for a while; a spent category budget
    # blocks what the lists name under that category, whatever else the profile says of it.
    grant: Grant | None = None
    counted: list[Category] = []
    if standing is not NO_STANDING and now is not None:
        names = _budget_names(named)
        grant = next(
            (g for g in standing.grants if g.active(now) and g.covers(request.host, [c.name for c in names])),
            None,
        )
        if grant is None and standing.spent:
            spent = [c for c in names if c.name in standing.spent]
            if spent:
                return _blocked(
                    rules,
                    concerns,
                    [
                        Reason(
                            Step.BUDGET, Action.BLOCK, f"today's time for {c.title} is used up", rule=c.name
                        )
                        for c in spent
                    ],
                )
        counted = [c for c in names if c.name in standing.counted]

    # Safe search before the allowlist: an allowlisted search engine is still made safe.
    target: SafeTarget | None = None
    if profile.safe_search.enabled:
        if facts.safe_engine is not None:
            target = facts.safe_engine.target_for(profile.safe_search)
            if target is not None:
                reasons.append(
                    Reason(Step.SAFE_SEARCH, Action.REWRITE, f"safe search: {target.engine} -> {target.host}")
                )
        elif facts.unsupported is not None:
            return _blocked(
                rules,
                concerns,
                [
                    Reason(
                        Step.SAFE_SEARCH_UNSUPPORTED,
                        Action.BLOCK,
                        "a search engine that cannot be made safe",
                        rule=facts.unsupported,
                    )
                ],
            )

    allowed = False
    if grant is not None:
        # Staff, asked about this child and this site now, speak over the profile's standing entries.
        allowed = True
        reasons.append(_granted(grant, policy))
    elif own is not None:
        if own.action is Action.BLOCK:
            return _blocked(
                rules,
                concerns,
                [
                    Reason(
                        Step.OVERRIDE,
                        Action.BLOCK,
                        "blocked for this profile",
                        severity=Severity.MEDIUM,
                        rule=own.rule,
                    )
                ],
            )
        allowed = True
        reasons.append(Reason(Step.OVERRIDE, Action.ALLOW, "allowed for this profile", rule=own.rule))
    elif allowlisted:
        allowed = True
        reasons += [_hit_reason(policy, Step.ALLOWLIST, Action.ALLOW, h, c) for h, c in allowlisted[:1]]
    if not allowed:
        if blocked:
            return _blocked(rules, concerns, _named(policy, [(Step.CATEGORY, h, c) for h, c in blocked]))
        partly = (
            _partly_allowed(request, policy, rules, facts) if url is None and rules.allowlist_only else None
        )
        if partly is not None:
            reasons.append(partly)  # the name resolves; the proxy judges each page
        elif rules.allowlist_only:
            return _blocked(
                rules,
                concerns,
                [Reason(Step.NOT_ALLOWLISTED, Action.BLOCK, "not on this profile's allowlist")],
            )
    if profile.blocked_downloads and url is not None and request.request_type in _NAVIGATIONS:
        extension = path_extension(path)
        if extension in profile.blocked_downloads:
            return _blocked(
                rules,
                concerns,
                [
                    Reason(
                        Step.DOWNLOAD,
                        Action.BLOCK,
                        f"downloads of .{extension} files are blocked",
                        severity=Severity.MEDIUM,
                        rule=extension,
                    )
                ],
            )

    # Monitoring: allowed, but staff should know.
    reasons += _flags(policy, profile.flagged_categories, flagged)
    reasons += concerns
    if any(r.effect is Action.BLOCK for r in reasons):
        return _blocked(rules, concerns, reasons)
    # Named, so the answering side counts the minute towards the category's budget.
    reasons += [
        Reason(Step.BUDGET, Action.ALLOW, f"counts towards today's time for {c.title}", rule=c.name)
        for c in counted
    ]
    flags = any(r.effect is Action.FLAG for r in reasons)
    action = Action.REWRITE if target is not None else Action.FLAG if flags else Action.ALLOW
    if not reasons:
        return rules.allow
    return Verdict(
        action,
        rules.name,
        tuple(reasons),
        max(r.severity for r in reasons),
        target,
        LogDetail.EVENT if flags else profile.log_allowed,
    )


def _partly_allowed(request: Request, policy: Policy, rules: ProfileRules, facts: HostFacts) -> Reason | None:
    """For a host-only question (DNS, TLS) in allowlist-only mode: a reason to let the name through
    when some pages of the host are on the allowlist (`bbc.co.uk/bitesize`), else None."""
    for entry in facts.overrides.get(rules.name, ()):
        if entry.action is Action.ALLOW and entry.prefix:
            return Reason(Step.OVERRIDE, Action.ALLOW, "some pages of this site are allowed", rule=entry.rule)
    for hit in policy.index.url_rules(request.host).raw:
        effect, category = rules.effects[2 * hit[1] + (1 if hit[2] & ALLOW else 0)]
        if effect is Effect.ALLOWLIST and category is not None:
            return _hit_reason(policy, Step.ALLOWLIST, Action.ALLOW, hit, category)
    return None


def _own_entry(facts: HostFacts, profile: str, path: str) -> Override | None:
    """The profile's most specific own entry that applies to the canonical `path` ("" for a host-only
    question), longest rule first, allow winning a tie. A path entry applies as `filters.urls`
    holds prefixes against paths: a block entry if the path or the server reading of it starts with
    the entry (capitals aside), an allow entry only if both do (capitals kept)."""
    entries = facts.overrides.get(profile)
    if not entries:
        return None
    best: Override | None = None
    read: PathReadings | None = None
    for entry in entries:
        if entry.path is not None:
            if not path:
                continue
            if read is None:
                read = read_path(path)
            if not (
                path_allowed_by(read, entry.path)
                if entry.action is Action.ALLOW
                else path_blocked_by(read, entry.path)
            ):
                continue
        if (
            best is None
            or entry.specificity > best.specificity
            or (entry.specificity == best.specificity and entry.action is Action.ALLOW)
        ):
            best = entry
    return best


def url_extension(url: str) -> str:
    """The file extension of an absolute URL's path, lower case ("" if none)."""
    start = url.find("://")
    slash = url.find("/", start + 3 if start >= 0 else 0)
    return path_extension(url[slash:]) if slash >= 0 else ""


def path_extension(path: str) -> str:
    """The file extension of a URL path, lower case, without query ("" if none)."""
    end = len(path)
    for mark in "?;#":
        cut = path.find(mark)
        if 0 <= cut < end:
            end = cut
    name = path[path.rfind("/", 0, end) + 1 : end]
    dot = name.rfind(".")
    return name[dot + 1 :].lower() if dot > 0 else ""


def _excepted(hit: RawHit, category: Category, exceptions: _Bucket) -> bool:
    """Whether an exception takes this block-list entry out: an exceptions list's entry of the same
    category for the entry's domain, a subdomain of it, or the domain without its `www.` (lists name
    both). A more specific entry (another subdomain the exception does not name, a page, an
    expression, an adblock rule) still stands."""
    if hit[0] != "domain" or hit[2] & ALLOW:
        return False
    domain = hit[4]
    for exception, excepted in exceptions:
        name = exception[4]
        if excepted.name == category.name and (
            name == domain or name.endswith("." + domain) or domain == "www." + name
        ):
            return True
    return False


def _named(policy: Policy, found: list[tuple[Step, RawHit, Category]]) -> list[Reason]:
    """The reasons of a block by lists: the hits of the best-ranked lists among those that block (a
    stale or broad list's word gives way to a specific list's), the most serious category first."""
    ranks = policy.source_ranks
    top = max(ranks[hit[1]] for _, hit, _ in found)
    kept = sorted(
        (entry for entry in found if ranks[entry[1][1]] == top), key=lambda entry: -entry[2].severity
    )
    return [_hit_reason(policy, step, Action.BLOCK, hit, category) for step, hit, category in kept]


_RANK_NOTE = {Rank.STALE: " (by a list no longer kept up to date)", Rank.BROAD: " (by a broad list)"}


def _hit_reason(
    policy: Policy,
    step: Step,
    effect: Action,
    hit: RawHit,
    category: Category,
    severity: Severity | None = None,
) -> Reason:
    kind, sid, _, line, rule = hit
    return Reason(
        step,
        effect,
        f"{kind} listed under {category.title}{_RANK_NOTE.get(policy.source_ranks[sid], '')}",
        category.name,
        category.grid,
        category.severity if severity is None else severity,
        policy.index.sources[sid].name,
        line,
        rule,
    )


def _concerns(request: Request, policy: Policy, rules: ProfileRules, facts: HostFacts) -> list[Reason]:
    """Watch-list words in a search the child typed, and personal information in what they send."""
    found: list[Reason] = []
    url = request.url
    if rules.watch_lists and url is not None and facts.search:
        search = extract_search(url)
        if search is not None:
            for watch, term in watch_hits(search.terms, rules.watch_lists):
                category = policy.categories[watch.category]
                found.append(
                    Reason(
                        Step.WATCH_LIST,
                        watch.action,
                        f"searched on {search.engine} for words on the {watch.name!r} watch list",
                        category.name,
                        category.grid,
                        watch.severity,
                        rule=term,
                    )
                )
    pii = rules.profile.personal_info
    if request.outbound_text and pii.action is not Action.ALLOW:
        where = policy.categories.categories.get(PERSONAL_INFO)
        for finding in find_personal_info(request.outbound_text, pii.kinds):
            found.append(
                Reason(
                    Step.PERSONAL_INFO,
                    pii.action,
                    f"sending personal information ({finding.kind})",
                    where.name if where else "",
                    where.grid if where else "",
                    where.severity if where else Severity.HIGH,
                    rule=finding.masked,
                )
            )
    return found


def _flags(policy: Policy, severities: Mapping[str, Severity], flagged: _Bucket) -> list[Reason]:
    """The flag reasons of the profile's flag categories, each at the profile's severity for it."""
    return [
        _hit_reason(
            policy,
            Step.FLAG_CATEGORY,
            Action.FLAG,
            hit,
            category,
            severities.get(category.name, category.severity),
        )
        for hit, category in flagged
    ]


def _closed(
    policy: Policy,
    rules: ProfileRules,
    concerns: list[Reason],
    closed: Reason,
    always: _Bucket,
    blocked: _Bucket,
    flagged: _Bucket,
) -> Verdict:
    """A block by the schedule. Where a blocked or flagged category names the host, its reasons go with
    the schedule's, with their severity: an attempt at a pornography or dating site out of hours is the
    event it would be in opening hours (an advert is still only counted), not a routine closed-hours
    block. As in opening hours, an always-blocked category speaks over blocked ones, and a block over
    flags."""
    if always:
        named = _named(policy, [(Step.ALWAYS_BLOCKED, h, c) for h, c in always])
    elif blocked:
        named = _named(policy, [(Step.CATEGORY, h, c) for h, c in blocked])
    else:
        return _blocked(rules, _flags(policy, rules.profile.flagged_categories, flagged) + concerns, [closed])
    return _blocked(rules, concerns, [closed, *named])


def _blocked(rules: ProfileRules, concerns: list[Reason], reasons: list[Reason]) -> Verdict:
    """A block, with the reasons that block and any concern staff must hear of."""
    blocking = [r for r in reasons if r.effect is Action.BLOCK] or reasons
    kept = blocking + [c for c in concerns if c not in blocking]
    severity = max(r.severity for r in kept)
    # Adverts, closed hours at a site no category names and "not on the allowlist" would bury what
    # matters: they are counted; anything of medium severity or more, and every concern (a flag
    # category's word on a closed-hours block included), is kept as an event for staff.
    log = LogDetail.EVENT if severity >= Severity.MEDIUM or concerns else LogDetail.COUNT
    return Verdict(Action.BLOCK, rules.name, tuple(kept), severity, log=log)


def judge_text(text: str | bytes, policy: Policy, identity: Identity) -> Verdict:
    """Score a page (or any text) against the profile's phrase limits, per category.

    A category whose weighted score reaches its limit, or a banned phrase of a limited category, gets
    the profile's phrase action (block or flag); every reason names the phrase that weighed most.
    """
    rules = policy.rules_for(identity.profile)
    phrases = rules.profile.phrases
    if not phrases.limits or rules.profile.bypass:
        return rules.allow
    score = policy.index.score_text(text)
    names: dict[str, str | None] = {}  # list label -> our category, looked up once per label

    def name_of(label: str) -> str | None:
        if label not in names:
            found = policy.categories.for_label(label)
            names[label] = found.name if found is not None else None
        return names[label]

    totals: dict[str, int] = {}
    for label, total in score.totals.items():
        if (name := name_of(label)) is not None:
            totals[name] = totals.get(name, 0) + total
    banned: dict[str, PhraseHit] = {}
    heaviest: dict[str, PhraseHit] = {}
    for hit in score.banned:
        if (name := name_of(hit.category)) is not None:
            banned.setdefault(name, hit)
    for hit in score.hits:  # biggest contribution first
        if (name := name_of(hit.category)) is not None:
            heaviest.setdefault(name, hit)
    reasons = []
    for name, limit in phrases.limits.items():
        total = totals.get(name, 0)
        ban = banned.get(name)
        if ban is None and total < limit:
            continue
        category = policy.categories[name]
        top = ban or heaviest.get(name)
        detail = (
            f"a banned phrase of {category.title}"
            if ban is not None
            else f"page scored {total} for {category.title} (limit {limit})"
        )
        reasons.append(
            Reason(
                Step.PHRASES,
                phrases.action,
                detail,
                category.name,
                category.grid,
                category.severity,
                top.origin if top else "",
                top.line if top else 0,
                top.phrase if top else "",
            )
        )
    if not reasons:
        return rules.allow
    severity = max(r.severity for r in reasons)
    return Verdict(phrases.action, rules.name, tuple(reasons), severity, log=LogDetail.EVENT)


def may_intercept(policy: Policy, identity: Identity) -> bool:
    """Whether this device's TLS may be decrypted: a centre-managed device whose profile allows it."""
    return identity.managed and policy.rules_for(identity.profile).profile.intercept_tls


def with_page(verdict: Verdict, page: Verdict) -> Verdict:
    """The request's verdict once its page was scored (`judge_text`): a page block blocks, a page flag
    flags an allowed request; the reasons of both are kept, the severity is the higher."""
    if page.action is Action.ALLOW:
        return verdict
    action = Action.BLOCK if Action.BLOCK in (page.action, verdict.action) else verdict.action
    if action is Action.ALLOW:
        action = Action.FLAG
    reasons = verdict.reasons + tuple(r for r in page.reasons if r not in verdict.reasons)
    return Verdict(
        action,
        verdict.profile,
        reasons,
        max(verdict.severity, page.severity),
        verdict.safe_search,
        LogDetail.EVENT,
    )


REPORT_NOTE_CHARS = 500  # what a child may write with a report, as the block page's field allows


def child_report(profile: str, why: str, note: str) -> Verdict:
    """The flagged event of a child pressing "report a problem" on a block page: `why` names the block
    (its reasons in short), `note` what they wrote (spaces collapsed, cut to REPORT_NOTE_CHARS)."""
    said = " ".join(note.split())[:REPORT_NOTE_CHARS]
    detail = f"a child asked staff to look at a block ({why})"
    if said:
        detail += f"; they wrote: {said}"
    reason = Reason(Step.CHILD_REPORT, Action.FLAG, detail, severity=Severity.LOW)
    return Verdict(Action.FLAG, profile, (reason,), Severity.LOW, log=LogDetail.EVENT)
