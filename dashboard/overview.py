"""The overview: staff's home page (`/`). Who is signed in where, today's notable events by severity,
pending "ask to use" requests, what staff paused and until when, budgets nearly spent or spent, and the
machine's health in plain words; at the top "All is well" or "N things need you now".

The page is whole without JavaScript; static/overview.js asks `/overview/live` every few seconds and puts
the new sections in place (no reload). The live JSON carries the figures and each section as HTML the
same templates render (autoescaped), so the page and its updates never differ. Looking at the overview
is in the audit log once per page; its polls are not (nor do they count as using the dashboard).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from flask import Blueprint, Response, jsonify, render_template

from appliance.store import alerts, people
from appliance.store import controls as store_controls
from appliance.store.controls import AskRecord, PauseRecord
from appliance.store.feed import SEVERITIES, FeedFilter, feed
from appliance.store.people import SessionRecord
from appliance.store.staff import Role
from dashboard import budgets
from dashboard.database import now, store
from dashboard.health import HealthLine, health_lines
from dashboard.people import device_names
from dashboard.review import Row, rows
from dashboard.security import log_action, requires

bp = Blueprint("overview", __name__)

COUNTED = 500  # today's notable events read to count them by severity (more: "500 or more")
LATEST = 5  # the last few shown
POLL_SECONDS = 5  # how often the page asks for news
SECTIONS = ("signed-in", "events", "asks", "pauses", "budgets", "health")
SHOWN_SEVERITIES = tuple(reversed(SEVERITIES[1:]))  # critical first; "none" is never notable alone


@dataclass(frozen=True)
class SignedIn:
    """Someone signed in at the portal now: a child (or staff), on which device, since and until."""

    session: SessionRecord
    device: str  # the device's name where staff named it (or appliance.yaml does), else its key
    since: str
    until: str
    paused: str  # "paused until 15:30" where a pause covers them or their device, else ""


@dataclass(frozen=True)
class PauseLine:
    pause: PauseRecord
    what: str  # "the whole centre", "Amira", "device room1-pc1", "profile 10-12"
    until: str  # "until 15:30", "until resumed"


@dataclass(frozen=True)
class AskLine:
    ask: AskRecord
    when: str


@dataclass(frozen=True)
class BudgetLine:
    """A signed-in child whose budget is nearly spent (warned) or spent, with each such thing."""

    child: str  # the id
    name: str
    lines: tuple[budgets.LeftLine, ...]


@dataclass(frozen=True)
class Overview:
    signed_in: list[SignedIn]
    counts: dict[str, int]
    more: bool  # COUNTED or more notable events today: the counts are a floor
    latest: list[Row]
    asks: list[AskLine]
    pauses: list[PauseLine]
    budgets: list[BudgetLine]
    health: list[HealthLine]
    open_alerts: int

    @property
    def needs(self) -> list[str]:
        """What needs a member of staff now, one phrase each: the open alerts, the pending asks, what is
        wrong with the machine."""
        out = []
        if self.open_alerts:
            out.append(_count(self.open_alerts, "open alert"))
        if self.asks:
            out.append(_count(len(self.asks), "ask", "to use a site"))
        out += [f"{h.what.lower()}: {h.words}" for h in self.health if not h.ok]
        return out

    @property
    def summary(self) -> str:
        n = len(self.needs)
        if not n:
            return "All is well"
        return f"{n} thing{'s' if n != 1 else ''} need{'' if n != 1 else 's'} you now"


def _count(n: int, what: str, after: str = "") -> str:
    return f"{n} {what}{'s' if n != 1 else ''}{' ' + after if after else ''}"


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, budgets.zone()).strftime("%H:%M")


def _until(until: float | None, t: float) -> str:
    if until is None:
        return "until resumed"
    day = datetime.fromtimestamp(until, budgets.zone()).date()
    if day != datetime.fromtimestamp(t, budgets.zone()).date():
        return f"until {datetime.fromtimestamp(until, budgets.zone()):%a %H:%M}"
    return f"until {_clock(until)}"


def _pause_what(p: PauseRecord) -> str:
    if p.scope == "centre":
        return "the whole centre"
    if p.scope == "device":
        return f"device {p.label}"
    if p.scope == "profile":
        return f"everyone with profile {p.label}"
    return p.label


def _covering(pauses: list[PauseRecord], s: SessionRecord) -> PauseRecord | None:
    """The pause over a signed-in child (their own, their device's, their profile's, the centre's:
    staff are never covered by the centre's), ending last."""
    found = [
        p
        for p in pauses
        if (p.scope == "child" and p.target == s.child)
        or (p.scope == "device" and p.target in (s.device, s.client))
        or (p.scope == "profile" and p.target == s.profile)
        or (p.scope == "centre" and s.staff is None)
    ]
    found.sort(key=lambda p: float("inf") if p.until is None else p.until)
    return found[-1] if found else None


def _midnight(t: float) -> float:
    zone = budgets.zone()
    return datetime.combine(datetime.fromtimestamp(t, zone).date(), time(), zone).timestamp()


def overview(db: sqlite3.Connection, t: float) -> Overview:
    """Everything the overview shows at `t`."""
    pauses = store_controls.active_pauses(db, t)
    sessions = people.open_sessions(db, t)
    names = device_names(db)
    signed = []
    for s in sessions:
        over = _covering(pauses, s)
        paused = f"paused {_until(over.until, t)}" if over else ""
        device = names.get(s.device) or names.get(s.client) or s.device
        signed.append(SignedIn(s, device, _clock(s.started), _clock(s.expires), paused))
    today = feed(db, FeedFilter(since=_midnight(t)), COUNTED)
    counts = Counter(e.severity for e in today)
    ordered = sorted(pauses, key=lambda p: (p.scope != "centre", p.since))
    spent = budgets.today(db, t)
    children = {c.id: c for c in people.children(db)}
    nearly: list[BudgetLine] = []
    for s in sessions:
        child = children.get(s.child)
        found = spent.of(child) if child is not None and s.staff is None else None
        if found is None or child is None:
            continue
        lines = tuple(line for line in budgets.left_lines(found.left) if line.state != "ok")
        if lines and child.id not in {b.child for b in nearly}:
            nearly.append(BudgetLine(child.id, child.display_name, lines))
    return Overview(
        signed_in=signed,
        counts={s: counts.get(s, 0) for s in SHOWN_SEVERITIES},
        more=len(today) >= COUNTED,
        latest=rows(today[:LATEST]),
        asks=[AskLine(a, _clock(a.ts)) for a in store_controls.pending_asks(db, t)],
        pauses=[PauseLine(p, _pause_what(p), _until(p.until, t)) for p in ordered],
        budgets=nearly,
        health=health_lines(db, t),
        open_alerts=alerts.count_open(db),
    )


def _context(found: Overview) -> dict[str, Any]:
    return {"o": found, "poll_seconds": POLL_SECONDS, "pause_minutes": (15, 30, 60)}


@bp.route("/")
@requires(Role.STAFF)
def index() -> str:
    found = overview(store(), now())
    log_action("view-overview", "overview", f"{found.summary}; {len(found.signed_in)} signed in")
    return render_template("overview/index.html", **_context(found))


@bp.route("/overview/live")
@requires(Role.STAFF)
def live() -> Response:
    """The overview now, as JSON: the figures, and each section as the page renders it (`html`). Not in
    the audit log (the page asks every few seconds; opening it is logged)."""
    found = overview(store(), now())
    context = _context(found)
    return jsonify(
        summary=found.summary,
        needs=found.needs,
        counts=found.counts,
        more=found.more,
        signed_in=[
            {"name": s.session.display_name, "device": s.device, "staff": s.session.staff is not None}
            for s in found.signed_in
        ],
        asks=[{"id": a.ask.id, "who": a.ask.label, "host": a.ask.host} for a in found.asks],
        pauses=[{"id": p.pause.id, "what": p.what, "until": p.until} for p in found.pauses],
        budgets=[{"name": b.name, "left": [line.words for line in b.lines]} for b in found.budgets],
        health=[{"what": h.what, "ok": h.ok, "words": h.words} for h in found.health],
        html={name: render_template(f"overview/{name}.html", **context) for name in ("summary", *SECTIONS)},
    )
