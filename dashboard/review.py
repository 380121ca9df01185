"""Flagged access: the feed of flagged and blocked events, newest first, with filters, and one event
explained (why: category, list, rule; the search terms or the kind of personal information).

Every look at children's events is written to the audit log: the feed (with its filter) and each event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, render_template, request

from appliance.store import incidents, people
from appliance.store.feed import SEVERITIES, FeedEvent, FeedFilter, feed, get_events
from appliance.store.staff import Role
from dashboard.database import area_of, config, local_time, policy_files, store
from dashboard.security import log_action, requires

bp = Blueprint("review", __name__)
PAGE = 50
AREAS = ("content", "contact", "conduct")


@dataclass(frozen=True)
class Row:
    """An event as the feed shows it: who in words (a child's display name, never shown as an id)."""

    event: FeedEvent
    who: str
    when: datetime
    area: str
    why: str
    found: str  # search terms or the kind of personal information that triggered it
    last: datetime  # the visit's last attempt (`when` is its first)

    @property
    def attempts(self) -> str:
        """The visit's attempts in words: `1 attempt`, `12 attempts, 14:02–14:06`."""
        n = self.event.attempts
        if n == 1:
            return "1 attempt"
        return f"{n} attempts, {self.when:%H:%M}–{self.last:%H:%M}"


def _day(text: str, zone: ZoneInfo, *, end: bool = False) -> float | None:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    start = datetime.combine(day + timedelta(days=1 if end else 0), time(), zone)
    return start.timestamp()


def who_of(subject: str, names: dict[str, str]) -> str:
    if subject.startswith("child:"):
        return names.get(subject[6:], "a child no longer listed")
    if subject.startswith("device:"):
        return f"device {subject[7:]}"
    return "guest device"


def explain(event: FeedEvent) -> tuple[str, str]:
    """(why, what was found) in a line each."""
    parts, found = [], []
    for r in event.reasons:
        if r.get("step") in ("personal-info", "watch-list", "phrases", "child-report"):
            found.append(str(r.get("detail", "")))
        where = f"{r.get('source')}:{r.get('line')}" if r.get("source") else ""
        rule = f" rule {r.get('rule')}" if r.get("rule") else ""
        label = r.get("category") or r.get("step")
        parts.append(f"{r.get('effect')}: {label}" + (f" ({where}{rule})" if where or rule else ""))
    if event.terms:
        found.insert(0, f"searched for “{event.terms}”")
    return "; ".join(parts), "; ".join(f for f in found if f)


def rows(events: list[FeedEvent]) -> list[Row]:
    names = {c.id: c.display_name for c in people.children(store(), archived=True)}
    areas = area_of()
    out = []
    for e in events:
        why, found = explain(e)
        who, area = who_of(e.subject, names), areas.get(e.category, "")
        out.append(Row(e, who, local_time(e.ts), area, why, found, local_time(e.last)))
    return out


def filter_from_args() -> FeedFilter:
    args = request.args
    zone = ZoneInfo(config().policy.timezone)
    area = args.get("area", "")
    categories: tuple[str, ...] = ()
    if args.get("category"):
        categories = (args["category"],)
    elif area in AREAS:
        categories = tuple(n for n, a in area_of().items() if a == area)
    until = _day(args.get("until", ""), zone, end=True)
    before = args.get("before", "")
    if before:
        try:
            until = min(float(before), until) if until is not None else float(before)
        except ValueError:
            abort(400, "That page link is broken: go back to the first page.")
    return FeedFilter(
        child=args.get("child", ""),
        device=args.get("device", "").strip(),
        categories=categories,
        min_severity=args.get("severity", "") if args.get("severity", "") in SEVERITIES else "",
        since=_day(args.get("since", ""), zone),
        until=until,
        action=args.get("action", "") if args.get("action") in ("block", "flag") else "",
    )


# "/flagged" first: url_for builds it. "/review" stays for links and bookmarks from before the
# overview took "/" (issue 21); the events' own pages are under /review/event/.
@bp.route("/review", endpoint="feed")
@bp.route("/flagged", endpoint="feed")
@requires(Role.STAFF)
def feed_page() -> str:
    f = filter_from_args()
    found = rows(feed(store(), f, PAGE))
    shown = {k: v for k, v in request.args.items() if v and k != "before"}
    subject = f"child:{f.child}" if f.child else (f"device:{f.device}" if f.device else "feed")
    log_action("view-events", subject, " ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "newest")
    older = None
    if len(found) == PAGE:
        # Events of one instant (a DNS batch shares its time) are never split between pages: the last
        # instant moves to the next page, which starts at it (ts <= last).
        last = found[-1].event.ts
        whole = [r for r in found if r.event.ts > last]
        found, older = (whole, math.nextafter(last, math.inf)) if whole else (found, last)
    return render_template(
        "review/feed.html",
        rows=found,
        children=people.children(store()),
        devices=people.devices(store()),
        categories=sorted(policy_files().categories.categories),
        areas=AREAS,
        severities=SEVERITIES[1:],
        args=shown,
        older=older,
    )


@bp.route("/review/event/<event_id>")
@requires(Role.STAFF)
def event(event_id: str) -> str:
    found = get_events(store(), [event_id])
    if not found:
        abort(404, "This event is no longer in the log (events are kept for a limited time).")
    row = rows(found)[0]
    log_action("view-event", row.event.subject, event_id)
    held = incidents.incidents_with(store(), row.event.id, row.event.ts)
    # Open incidents about the same child, to add this event to (an incident is about one child).
    same = [
        i
        for i in incidents.listing(store())
        if i.subject == row.event.subject and i.status != "closed" and i not in held
    ]
    return render_template("review/event.html", row=row, held=held, same=same)
