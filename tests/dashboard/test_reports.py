"""The reports, as the e-safety lead uses them: the month's and the year's summary (counted past the
events' retention), printable, and CSV."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from appliance.config import Config
from appliance.config.store import StoreSettings
from appliance.store import audit, controls, reports
from appliance.store.reports import Tally
from appliance.store.retention import purge
from appliance.store.staff import Role
from dashboard.charts import bar_chart, column_chart, grid_table
from profiles.categories import Severity
from profiles.controls import Scope
from profiles.verdict import Action
from tests.dashboard.conftest import (
    Browser,
    EventWriter,
    add_child,
    child_who,
    device_who,
    verdict,
)

Browse = Callable[..., Browser]


@pytest.fixture(autouse=True)
def november(app: Flask, config: Config) -> None:
    """The dashboard's clock: 20 November 2026, in the centre's time zone."""
    app.config["NOW"] = at(config, "2026-11-20 15:00")


def at(config: Config, text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(config.policy.timezone)).timestamp()


def page(response: Any) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    text: str = response.get_data(as_text=True)
    return text


def text_of(html: str) -> str:
    """The page's words, without tags (to read sentences split by markup)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def write_november(events: EventWriter, config: Config) -> None:
    amira, bo = child_who("amira1"), child_who("bo2", "127.0.0.32")
    dating = verdict(Action.ALLOW, "dating", Severity.HIGH, flag=True)
    events.dns(at(config, "2026-11-03 16:00"), amira, "date.example", dating)
    events.dns(at(config, "2026-11-03 16:20"), amira, "date.example", dating, qtype="AAAA")  # a second visit
    events.web(at(config, "2026-11-04 17:00"), bo, "http://date.example/profile", dating)
    events.dns(
        at(config, "2026-11-10 10:00"), bo, "porn.example", verdict(Action.BLOCK, "adult", Severity.HIGH)
    )
    events.dns(
        at(config, "2026-11-12 10:00"), device_who("pc-3"), "bet.example", verdict(Action.BLOCK, "gambling")
    )
    # Allowed and unflagged, or outside the month: not in November's counts.
    events.dns(at(config, "2026-11-12 11:00"), amira, "news.example", verdict(Action.ALLOW, "news"))
    events.dns(at(config, "2026-10-31 23:00"), amira, "porn.example", verdict(Action.BLOCK, "adult"))
    events.dns(at(config, "2026-12-01 00:30"), amira, "porn.example", verdict(Action.BLOCK, "adult"))


def test_the_lead_sees_the_months_counts_in_the_language_of_the_guidance(
    browse: Browse, accounts: Any, events: EventWriter, config: Config, db: Any
) -> None:
    write_november(events, config)
    html = page(browse(as_user="lead").get("/reports"))
    words = text_of(html)
    assert "Monthly report: November 2026" in words
    assert "5 notable visits" in words and "3 flagged for staff" in words and "2 blocked" in words
    assert "2 children involved" in words
    assert "contact / sexual: 3 flagged visits to sites listed as Dating" in words
    assert "content / sexual: 1 blocked visit to sites listed as Pornography and sexual content" in words
    assert "conduct / commercial: 1 blocked visit" in words
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart"' in html and 'role="img"' in html
    assert "Print" in words and "/reports/2026-11.csv" in html
    # The same month asked for by name; each view is in the audit log.
    assert "3 flagged for staff" in text_of(page(browse(as_user="lead").get("/reports?period=2026-11")))
    logged = [(e.username, e.action, e.subject) for e in audit.entries(db, subject="report:2026-11")]
    assert logged == [("lead", "view-report", "report:2026-11")] * 2


def test_staff_may_not_see_reports_and_administrators_may(
    browse: Browse, accounts: Any, events: EventWriter, config: Config
) -> None:
    staff = browse(as_user="staff")
    assert staff.get("/reports").status_code == 403
    assert staff.get("/reports/2026-11.csv").status_code == 403
    assert browse(as_user="admin").get("/reports").status_code == 200
    signed_out = browse().get("/reports")
    assert signed_out.status_code == 302 and "/signin" in signed_out.headers["Location"]


def test_a_childs_device_never_reaches_reports(browse: Browse, accounts: Any) -> None:
    assert browse("127.0.0.31").get("/reports").status_code == 403


def test_a_period_that_does_not_exist_is_refused(browse: Browse, accounts: Any) -> None:
    lead = browse(as_user="lead")
    for bad in (
        "/reports?period=2026-13",
        "/reports?period=soon",
        "/reports/26-1.csv",
        "/reports/2026-00.csv",
    ):
        assert lead.get(bad).status_code == 400, bad


def test_the_yearly_view_counts_by_month(
    browse: Browse, accounts: Any, events: EventWriter, config: Config
) -> None:
    write_november(events, config)
    events.dns(
        at(config, "2026-02-14 12:00"), child_who("amira1"), "bet.example", verdict(Action.BLOCK, "gambling")
    )
    html = page(browse(as_user="lead").get("/reports?period=2026"))
    words = text_of(html)
    assert "Yearly report: 2026" in words and "8 notable visits" in words
    rows = dict(re.findall(r"<th scope=\"row\">(\w+ 2026)</th>\s*<td class=\"num\">(\d+)</td>", html))
    assert rows["February 2026"] == "1" and rows["October 2026"] == "1" and rows["November 2026"] == "5"
    assert rows["January 2026"] == "0" and len(rows) == 12

    exported = list(csv.reader(io.StringIO(page(browse(as_user="lead").get("/reports/2026.csv")))))
    months = {r[1]: r[2] for r in exported if r[0] == "month"}
    assert months["2026-11"] == "5" and months["2026-02"] == "1" and len(months) == 12


def test_an_incident_opened_in_the_month_is_counted(
    browse: Browse, accounts: Any, events: EventWriter, config: Config, db: Any
) -> None:
    lead = accounts[Role.LEAD]
    for opened, status, closed in (
        (at(config, "2026-11-05 10:00"), "escalated", None),
        (at(config, "2026-10-05 10:00"), "closed", at(config, "2026-11-06 10:00")),
    ):
        db.execute(
            "INSERT INTO incidents (title, status, severity, area, category, profile, subject, opened,"
            " opened_by, updated, closed) VALUES ('Contact from a stranger', ?, 'critical', 'contact',"
            " 'grooming', '10-12', 'child:amira1', ?, ?, ?, ?)",
            (status, opened, lead.id, opened, closed),
        )
    words = text_of(page(browse(as_user="lead").get("/reports")))
    assert "1 incident opened" in words and "1 incident closed" in words
    assert "contact / sexual: 1 incident opened about Grooming" in words
    assert "escalated 1" in words

    rows = list(csv.reader(io.StringIO(page(browse(as_user="lead").get("/reports/2026-11.csv")))))
    assert ["area", "contact", "0", "0", "0", "1"] in rows
    assert ["category", "grooming", "0", "0", "0", "1"] in rows
    assert ["incident-status", "escalated", "", "", "", "1"] in rows
    assert ["incidents-closed", "closed in the period", "", "", "", "1"] in rows


def test_the_csv_has_the_summary_rows_and_a_safe_name(
    browse: Browse, accounts: Any, events: EventWriter, config: Config, db: Any
) -> None:
    write_november(events, config)
    response = browse(as_user="lead").get("/reports/2026-11.csv")
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="report-2026-11.csv"'
    rows = list(csv.reader(io.StringIO(page(response))))
    assert rows[0] == ["section", "key", "visits", "flagged", "blocked", "incidents"]
    assert ["total", "all", "5", "3", "2", "0"] in rows
    assert ["area", "contact", "3", "3", "0", "0"] in rows
    assert ["category", "dating", "3", "3", "0", "0"] in rows
    assert ["profile", "10-12", "5", "3", "2", "0"] in rows
    assert ["day", "2026-11-03", "2", "2", "0", "0"] in rows
    assert ["children", "involved", "2", "", "", ""] in rows
    assert len([r for r in rows if r[0] == "day"]) == 30
    assert next((e.action, e.subject) for e in audit.entries(db, username="lead")) == (
        "export-report",
        "report:2026-11",
    )


def test_csv_cells_that_look_like_formulas_are_neutralised(
    browse: Browse, accounts: Any, events: EventWriter, config: Config, db: Any
) -> None:
    hostile = ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd"]
    for i, name in enumerate(hostile):
        events.dns(
            at(config, f"2026-11-0{i + 1} 12:00"),
            child_who("amira1"),
            "x.example",
            verdict(Action.BLOCK, name),
        )
    db.execute(
        "INSERT INTO daily_counts (day, channel, profile, action, category, count)"
        " VALUES ('2026-11-02', 'dns', '=cmd|calc', 'allow', '-evil', 3)"
    )
    rows = list(csv.reader(io.StringIO(page(browse(as_user="lead").get("/reports/2026-11.csv")))))
    keys = {r[1] for r in rows if r[0] in ("category", "browsing-category")}
    assert {f"'{name}" for name in hostile} <= keys and "'-evil" in keys
    assert not any(cell[:1] in ("=", "+", "-", "@", "\t") for row in rows for cell in row)

    # On the page, the names are text, never markup.
    events.dns(
        at(config, "2026-11-09 12:00"), child_who("amira1"), "x.example", verdict(Action.BLOCK, "<b>bold</b>")
    )
    html = page(browse(as_user="lead").get("/reports"))
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_charts_are_accessible_svg_with_every_label_escaped() -> None:
    svg = str(bar_chart("By <area>", [("contact & <chat>", 3), ("content", 0)]))
    assert svg.startswith("<svg") and 'role="img"' in svg and "aria-labelledby=" in svg
    assert "<title" in svg and "By &lt;area&gt;</title>" in svg
    assert "contact &amp; &lt;chat&gt;: 3; content: 0." in svg  # the description reads every value
    assert "<chat>" not in svg and ">3</text>" in svg
    empty = str(bar_chart("Nothing", []))
    assert "Nothing in this period." in empty
    columns = str(column_chart("By day", [("1", 2), ("2", 0)], names=["1 November 2026", "2 November 2026"]))
    assert "1 November 2026: 2" in columns and columns.count("<rect") == 2
    grid = str(grid_table("Grid", ["content"], ["sexual", "<x>"], {("content", "sexual"): 4}))
    assert '<td class="num" style=' in grid and "&lt;x&gt;" in grid


def test_a_highlight_tells_flagged_blocked_and_incidents_together() -> None:
    from dashboard.reports import highlight
    from profiles.categories import Area, Category, CategoryMap, Kind, Risk

    chat = Category("chat", "Chat rooms and messaging", Kind.RISK, Area.CONTACT, Risk.SEXUAL, Severity.HIGH)
    categories = CategoryMap({"chat": chat})
    assert highlight(Tally("chat", 5, 3, 3, 2), categories) == (
        "contact / sexual: 5 visits (3 flagged, 3 blocked) to sites listed as Chat rooms and"
        " messaging; 2 incidents opened"
    )
    assert highlight(Tally("", 1, 1, 0), categories) == "unsorted: 1 flagged visit to sites in no category"
    assert highlight(Tally("odd", 0, 0, 0, 1), categories) == "no three-Cs place: 1 incident opened about odd"


def test_the_yearly_report_keeps_counting_events_past_retention(db, events, config):
    zone = ZoneInfo(config.policy.timezone)
    amira = add_child(db)
    old = time.time() - 60 * 86400
    events.dns(old, child_who(amira.id), "www.pornhub.com", verdict(Action.BLOCK, "adult"))
    period = reports.parse_period(str(datetime.fromtimestamp(old, zone).year), zone)
    before = reports.summary(db, period, {})
    assert purge(db, StoreSettings(), time.time(), zone=zone).events == 1
    after = reports.summary(db, period, {})
    assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)
    assert (after.total.events, after.total.blocked, after.children) == (1, 1, 1)
    assert (before.total.events, before.children) == (after.total.events, after.children)


def test_the_report_counts_visits_not_the_browsers_attempts(
    browse: Browse, accounts: Any, events: EventWriter, config: Config
) -> None:
    """Twelve tries at one blocked site in a minute, then one more the next day: two visits."""
    amira = child_who("amira1")
    adult = verdict(Action.BLOCK, "adult", Severity.HIGH)
    start = at(config, "2026-11-03 16:00")
    for i in range(12):
        events.web(start + 5 * i, amira, "https://porn.example/", adult)
    events.dns(at(config, "2026-11-04 09:00"), amira, "porn.example", adult)
    words = text_of(page(browse(as_user="lead").get("/reports?period=2026-11")))
    assert "2 notable visits" in words and "2 blocked" in words
    assert "content / sexual: 2 blocked visits to sites listed as Pornography" in words
    assert "Visits are counted, not the browser's attempts" in words


def test_the_yearly_review_lists_each_grant_with_who_why_and_how_long_never_the_childs_name(
    browse: Browse, accounts: Any, db: Any, config: Config
) -> None:
    amira = add_child(db, "Amira")
    given = at(config, "2026-11-05 15:00")
    controls.grant(
        db,
        child=amira.id,
        device=None,
        label="Amira",
        host="scratch.mit.edu",
        category=None,
        until=given + 30 * 60,
        by="lead",
        reason="coding club",
        now=given,
    )
    ended = controls.grant(
        db,
        child=None,
        device="aa:bb:cc:dd:ee:01",
        label="pc-3",
        host=None,
        category="games",
        until=given + 3600,
        by="staff",
        reason="end-of-term games",
        now=given,
    )
    controls.end_grant(db, ended, by="staff", now=given + 20 * 60)
    controls.pause(
        db, scope=Scope.CENTRE, target="", label="the centre", minutes=15, by="lead", reason="", now=given
    )
    html = page(browse(as_user="lead").get("/reports?period=2026"))
    words = text_of(html)
    assert "scratch.mit.edu a child lead coding club 30" in words
    assert "category games a device staff end-of-term games 20 (ended early)" in words
    assert "Pauses started: 1 of a centre." in words
    assert "Amira" not in words, "the report may leave the centre: no child is named in it"
    exported = list(csv.reader(io.StringIO(page(browse(as_user="lead").get("/reports/2026.csv")))))
    grants = [r[1] for r in exported if r[0] == "grant"]
    assert grants == [
        "scratch.mit.edu for a child, 30 min by lead: coding club",
        "category games for a device, 20 min by staff: end-of-term games",
    ]
    assert ["pauses", "centre", "", "", "", "1"] in exported
    # A grant of another year is not in this one's review.
    assert "Pauses started: none." in text_of(page(browse(as_user="lead").get("/reports?period=2025")))
