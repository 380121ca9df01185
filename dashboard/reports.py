"""The monthly and yearly reports for the e-safety lead's audit: the page (printable), and its CSV.

`/reports?period=2026-11` (a month, the default being the current one) or `?period=2026` (a year);
`/reports/2026-11.csv` gives the same rows for a spreadsheet. Every view and export is in the audit log.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, Response, abort, render_template, request
from markupsafe import Markup

from appliance.policy_files import PolicyFileErrors, read_policy_files
from appliance.store import reports
from appliance.store.reports import AREAS, MONTH_NAMES, MONTHS, Period, Summary, Tally
from appliance.store.staff import Role
from dashboard import charts
from dashboard.database import config, now, store
from dashboard.security import current_user, log_action, requires
from profiles.categories import Category, CategoryMap, Risk

bp = Blueprint("reports", __name__)

HIGHLIGHTS = 5  # the busiest categories told as sentences at the top
CHART_CATEGORIES = 12
_UNSAFE_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet would read as a formula


@dataclass(frozen=True)
class Row:
    """A report table's row: its label for people, the category's grid place when it has one."""

    label: str
    tally: Tally
    grid: str = ""


def _zone() -> ZoneInfo:
    try:
        return ZoneInfo(config().policy.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")  # `appliance check` reports the mistake; the report still opens


def _categories() -> CategoryMap:
    """The policy's categories (those of a policy with mistakes elsewhere too; none if unreadable)."""
    try:
        return read_policy_files(config().policy).categories
    except PolicyFileErrors as e:
        return e.categories if e.categories is not None else CategoryMap({})


def _period(text: str, zone: ZoneInfo) -> Period:
    if not text.strip():
        return reports.period_at(now(), zone)
    try:
        return reports.parse_period(text, zone)
    except ValueError as e:
        abort(400, f"No such report: {e}.")


def _category_label(name: str, categories: CategoryMap) -> str:
    if not name:
        return "No category"
    found = categories.categories.get(name)
    return found.title if found is not None else name


def _grid(name: str, categories: CategoryMap) -> str:
    found: Category | None = categories.categories.get(name)
    if found is None:
        return "no three-Cs place" if name else "unsorted"
    return found.grid


def _visits(t: Tally) -> str:
    plural = "" if t.events == 1 else "s"
    if t.flagged == t.events and not t.blocked:
        return f"{t.events} flagged visit{plural}"
    if t.blocked == t.events and not t.flagged:
        return f"{t.events} blocked visit{plural}"
    return f"{t.events} visit{plural} ({t.flagged} flagged, {t.blocked} blocked)"


def highlight(t: Tally, categories: CategoryMap) -> str:
    """`contact / sexual: 3 flagged visits to sites listed as Dating; 1 incident opened` (visits, not the
    browser's attempts: docs/store.md#visits)."""
    title = _category_label(t.key, categories)
    where = "sites in no category" if not t.key else f"sites listed as {title}"
    incidents = f"{t.incidents} incident{'' if t.incidents == 1 else 's'} opened"
    if not t.events:
        told = f"{incidents} about {title if t.key else 'no category'}"
    else:
        told = f"{_visits(t)} to {where}" + (f"; {incidents}" if t.incidents else "")
    return f"{_grid(t.key, categories)}: {told}"


def _time_labels(period: Period) -> tuple[list[str], list[str]]:
    """Short axis labels (`3`, `Nov`) and long names (`3 November 2026`, `November 2026`)."""
    short, names = [], []
    for b in period.buckets:
        if period.yearly:
            month = int(b.key[5:7])
            short.append(MONTHS[month - 1])
            names.append(f"{MONTH_NAMES[month - 1]} {b.key[:4]}")
        else:
            day = date.fromisoformat(b.key)
            short.append(str(day.day))
            names.append(f"{day.day} {MONTH_NAMES[day.month - 1]} {day.year}")
    return short, names


def _three_cs(report: Summary, categories: CategoryMap) -> Markup:
    cells: dict[tuple[str, str], int] = {}
    for t in report.by_category:
        found = categories.categories.get(t.key)
        if found is not None and found.area is not None and found.risk is not None:
            key = (str(found.area), str(found.risk))
            cells[key] = cells.get(key, 0) + t.events
    return charts.grid_table(
        "Notable visits in the three-Cs grid (areas down, risks across)",
        AREAS,
        [str(r) for r in Risk],
        cells,
    )


def _area_label(key: str) -> str:
    return key.capitalize() if key else "No three-Cs place"


@bp.route("/reports")
@requires(Role.LEAD)
def index() -> str:
    zone = _zone()
    period = _period(request.args.get("period", ""), zone)
    categories = _categories()
    report = reports.summary(store(), period, categories.areas())
    log_action("view-report", f"report:{period.key}", "yearly" if period.yearly else "monthly")

    short, names = _time_labels(period)
    busiest = [t for t in report.by_category if t.events or t.incidents]
    by_category = [Row(_category_label(t.key, categories), t, _grid(t.key, categories)) for t in busiest]
    unit = "month" if period.yearly else "day"
    chart = {
        "area": charts.bar_chart(
            "Notable visits by three-Cs area",
            [(_area_label(t.key), t.events) for t in report.by_area],
        ),
        "time": charts.column_chart(
            f"Notable visits by {unit}, {period.title}",
            [(s, t.events) for s, t in zip(short, report.by_time, strict=True)],
            names=names,
        ),
        "category": charts.bar_chart(
            "Notable visits by category (the busiest)",
            [(r.label, r.tally.events) for r in by_category[:CHART_CATEGORIES]],
            label_width=240,
        ),
        "profile": charts.bar_chart(
            "Notable visits by profile", [(t.key or "(none)", t.events) for t in report.by_profile]
        ),
        "incidents": charts.bar_chart(
            "Incidents opened, by their status now",
            [(c.key, c.count) for c in report.incident_status],
            colour="#a15c00",
        ),
    }
    local_now = datetime.fromtimestamp(now(), zone)
    return render_template(
        "reports/report.html",
        period=period,
        report=report,
        highlights=[highlight(t, categories) for t in busiest[:HIGHLIGHTS]],
        by_area=[Row(_area_label(t.key), t) for t in report.by_area],
        by_category=by_category,
        by_time=[
            Row(n, t)
            for n, t in zip(names, report.by_time, strict=True)
            if period.yearly or t.events or t.incidents
        ],
        browsing_categories=[
            (_category_label(c.key, categories), c.count) for c in report.browsing_by_category
        ],
        chart=chart,
        grid=_three_cs(report, categories),
        unit=unit,
        this_month=reports.period_at(now(), zone).key,
        generated=f"{local_now.day} {MONTH_NAMES[local_now.month - 1]} {local_now.year}, {local_now:%H:%M}",
        author=current_user(),
        grants=[(datetime.fromtimestamp(g.since, zone).strftime("%d %b %H:%M"), g) for g in report.grants],
    )


def _cell(value: str | int) -> str | int:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_UNSAFE_START):
        return "'" + value
    return value


def csv_rows(report: Summary) -> list[tuple[str | int, ...]]:
    """The report's rows: section, key, visits, flagged, blocked, incidents ('' where it does not apply)."""

    def tallies(section: str, rows: tuple[Tally, ...]) -> list[tuple[str | int, ...]]:
        return [(section, t.key or "(none)", t.events, t.flagged, t.blocked, t.incidents) for t in rows]

    unit = "month" if report.period.yearly else "day"
    rows: list[tuple[str | int, ...]] = [("section", "key", "visits", "flagged", "blocked", "incidents")]
    rows += tallies("total", (replace(report.total, key="all"),))
    rows += tallies("area", report.by_area)
    rows += tallies("category", report.by_category)
    rows += tallies("profile", report.by_profile)
    rows += tallies("severity", report.by_severity)
    rows += tallies(unit, report.by_time)
    rows += [("incident-status", c.key, "", "", "", c.count) for c in report.incident_status]
    rows.append(("incidents-closed", "closed in the period", "", "", "", report.incidents_closed))
    rows += [("browsing-action", c.key or "(none)", c.count, "", "", "") for c in report.browsing_by_action]
    rows += [
        ("browsing-category", c.key or "(none)", c.count, "", "", "") for c in report.browsing_by_category
    ]
    rows.append(("children", "involved", report.children, "", "", ""))
    rows += [("pauses", c.key, "", "", "", c.count) for c in report.pauses]
    rows += [
        ("grant", f"{g.what} for {g.whom}, {g.minutes} min by {g.by}: {g.reason}", "", "", "", "")
        for g in report.grants
    ]
    return [tuple(_cell(v) for v in row) for row in rows]


@bp.route("/reports/<period>.csv")
@requires(Role.LEAD)
def export(period: str) -> Response:
    try:
        found = reports.parse_period(period, _zone())
    except ValueError as e:
        abort(400, f"No such report: {e}.")
    report = reports.summary(store(), found, _categories().areas())
    log_action("export-report", f"report:{found.key}", "csv")
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(csv_rows(report))
    # The key is digits and a hyphen (parse_period checked it): safe in the header as it is.
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="report-{found.key}.csv"'},
    )
