"""Alerts on the dashboard, as HTTP conversations: the banner's feed on every staff page, the alerts page
and one alert, acknowledging (every role; CSRF; the ladder stops), and the single-use acknowledge link
from a message (no sign-in, never from a child's device, spent only by its button). The alert rows stand
for what the alerter writes (schema version 8)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.config import Config, load_config
from appliance.store import audit
from profiles.categories import Severity
from profiles.verdict import Action, Step
from tests.appliance.store.test_alerts import incident, make_link, queue, raise_alert, states
from tests.dashboard.conftest import CHILD_IP, EventWriter, add_child, child_who, config_text, verdict

JSON = {"Accept": "application/json"}


def self_harm_search(events: EventWriter, child: str, now: float) -> None:
    """A child's search with a self-harm term, flagged critical, as the proxy's writer stores it."""
    events.web(
        now,
        child_who(child),
        "https://www.google.com/search?q=x",
        verdict(Action.FLAG, "self-harm", Severity.CRITICAL, flag=True, step=Step.WATCH_LIST),
        terms="how to hurt myself",
        status=200,
    )


def amiras_self_harm_alert(db, events, *, count: int = 3, with_incident: bool = True) -> tuple[int, str]:
    """Amira's self-harm search through the proxy (a real event row) and the alert raised for it;
    (alert id, the event's feed id)."""
    amira = add_child(db, "Amira")
    now = time.time()
    self_harm_search(events, amira.id, now)
    (rowid,) = db.execute("SELECT max(rowid) FROM requests").fetchone()
    number = incident(db) if with_incident else None
    alert = raise_alert(db, subject=f"child:{amira.id}", ts=now, count=count, incident=number)
    db.execute("UPDATE alert_events SET event = ? WHERE alert = ?", (f"web:{rowid}", alert))
    return alert, f"web:{rowid}"


def test_the_banners_feed_says_each_open_alert_in_plain_words_with_the_childs_name(
    browse, accounts, db, events
):
    alert, _ = amiras_self_harm_alert(db, events)
    other = raise_alert(
        db, severity="high", rule="strangers", kind="category", category="dating", subject="device:hall-pc"
    )
    done = raise_alert(db, rule="child-report", kind="child-report", category="")
    db.execute("UPDATE alerts SET acknowledged = ? WHERE id = ?", (time.time(), done))
    response = browse(as_user="staff").get("/alerts/live")
    assert response.status_code == 200 and response.is_json
    found = response.get_json()["alerts"]
    assert [a["id"] for a in found] == [other, alert]  # newest first; the acknowledged one gone
    high, critical = found
    assert (critical["severity"], critical["what"], critical["whose"], critical["count"]) == (
        "critical",
        "self-harm and suicide",
        "Amira",
        3,
    )
    assert critical["url"] == f"/alerts/{alert}" and critical["incident_url"].startswith("/incidents/")
    assert critical["acknowledge_url"] == f"/alerts/{alert}/acknowledge"
    assert (high["what"], high["whose"], high["incident_url"]) == ("dating", "device hall-pc", None)


def test_every_staff_page_carries_the_banner_and_its_script_the_sign_in_page_does_not(browse, accounts):
    b = browse()
    assert 'id="alert-banner"' not in b.get("/signin").get_data(as_text=True)
    b.sign_in("staff")
    for page in ("/review", "/incidents", "/people", "/alerts", "/account"):
        html = b.get(page).get_data(as_text=True)
        assert 'id="alert-banner"' in html and "/static/alerts.js" in html, page
        assert 'data-live="/alerts/live"' in html and f'data-csrf="{b.token}"' in html, page
        assert "<script>" not in html, page  # the pages' policy (default-src 'self') forbids inline scripts
    assert b.get("/static/alerts.js").status_code == 200


def test_the_banners_polls_do_not_keep_a_sign_in_alive(app, browse, accounts):
    b = browse(as_user="staff")
    start = time.time()
    app.config["NOW"] = start + 20 * 60
    assert b.get("/alerts/live").status_code == 200  # an open page polling, nobody using it
    app.config["NOW"] = start + 31 * 60
    response = b.get("/review")
    assert response.status_code == 302 and "/signin" in response.location


def test_every_role_acknowledges_from_the_banner_and_the_ladder_stops(browse, accounts, db, events):
    alert, _ = amiras_self_harm_alert(db, events)
    queue(db, alert, state="sent", attempts=1)
    queue(db, alert, kind="escalation", step=1, contact="lead", channel="email")
    for role in ("staff", "lead", "admin"):
        b = browse(as_user=role)
        b.get("/review")
        refused = b.client.post(
            f"/alerts/{alert}/acknowledge", headers=JSON, environ_base={"REMOTE_ADDR": b.address}
        )
        assert refused.status_code == 400  # no CSRF token
        answer = b.client.post(
            f"/alerts/{alert}/acknowledge",
            headers={**JSON, "X-CSRF-Token": b.token},
            environ_base={"REMOTE_ADDR": b.address},
        )
        assert answer.status_code == 200
        assert answer.get_json() == {"acknowledged": role == "staff", "id": alert}  # the first one counts
        assert b.get("/alerts/live").get_json()["alerts"] == []
    assert states(db, alert) == {"alert:0:duty": "sent", "escalation:1:lead": "cancelled"}
    entries = [e for e in audit.entries(db) if e.action == "acknowledge-alert"]
    assert [e.username for e in entries] == ["staff"]
    page = browse(as_user="lead").get(f"/alerts/{alert}").get_data(as_text=True)
    assert "Acknowledged by Staff Person on the dashboard" in page and 'id="acknowledge"' not in page


def test_the_alerts_page_lists_open_and_recent_alerts_with_their_messages_and_failing_channels(
    browse, accounts, db, events
):
    alert, _ = amiras_self_harm_alert(db, events)
    queue(db, alert, state="sent", attempts=1)
    queue(
        db,
        alert,
        kind="escalation",
        step=1,
        contact="lead",
        channel="email",
        attempts=3,
        error="SMTP: connection refused",
    )
    old = raise_alert(
        db, severity="high", rule="personal-info", kind="personal-info", category="", subject="device:hall-pc"
    )
    b = browse(as_user="staff")
    b.get(f"/alerts/{old}")
    b.post(f"/alerts/{old}/acknowledge", {"back": "/alerts"})
    page = b.get("/alerts").get_data(as_text=True)
    assert "1 open alert</strong>" in page
    assert "self-harm and suicide" in page and "Amira" in page and ">3</td>" in page
    assert "duty by ntfy: sent" in page
    assert "lead by email: failed (SMTP: connection refused); trying again" in page
    assert (
        "Messages to lead by email are failing</strong>: SMTP: connection refused"
        " (3 tries; the appliance keeps trying)" in page
    )
    assert "personal information sent" in page and "device hall-pc" in page
    assert "Acknowledged by Staff Person on the dashboard" in page
    table = page[page.index('<table id="alerts"') :]
    assert table.index("self-harm and suicide") < table.index("personal information sent")  # open first
    assert audit.entries(db, limit=1)[0].action == "view-alerts"


def test_an_alerts_page_links_its_events_in_the_feed_and_its_incident(browse, accounts, db, events):
    alert, event_id = amiras_self_harm_alert(db, events)
    b = browse(as_user="staff")
    page = b.get(f"/alerts/{alert}").get_data(as_text=True)
    assert "critical</span>, self-harm and suicide" in page and "Amira" in page
    assert f'href="/review/event/{event_id}"' in page and 'href="/incidents/1"' in page
    assert "open: not acknowledged yet" in page and "No messages" in page
    assert "www.google.com" in b.get(f"/review/event/{event_id}").get_data(as_text=True)
    entry = audit.entries(db, limit=2)[-1]
    assert (entry.action, entry.detail) == ("view-alert", f"alert:{alert}")
    response = b.post(f"/alerts/{alert}/acknowledge", {"back": f"/alerts/{alert}"})
    assert response.status_code == 302 and response.location == f"/alerts/{alert}"
    page = b.get(f"/alerts/{alert}").get_data(as_text=True)
    assert "is acknowledged: nobody else will be told" in page and "Acknowledged by Staff Person" in page
    # The back field names only the alert's pages: never somewhere else.
    assert (
        b.post(f"/alerts/{alert}/acknowledge", {"back": "https://evil.example/"}).location
        == f"/alerts/{alert}"
    )
    assert b.get("/alerts/999").status_code == 404


def test_an_acknowledge_link_needs_no_sign_in_shows_no_name_and_works_once(browse, db, events):
    alert, _ = amiras_self_harm_alert(db, events)
    token = make_link(db, alert, expires=time.time() + 3600, contact="duty")
    b = browse()  # not signed in: the link is the credential
    page = b.get(f"/alerts/ack/{token}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert (
        "CRITICAL</strong>: self-harm and suicide" in html
        and "Raised " in html
        and 'id="acknowledge"' in html
    )
    assert "Amira" not in html and "hurt" not in html  # whoever holds the link sees no child's name
    b.get(f"/alerts/ack/{token}")  # opened twice (a mail scanner, a preview): nothing acknowledged
    assert db.execute("SELECT acknowledged FROM alerts WHERE id = ?", (alert,)).fetchone() == (None,)
    assert b.post(f"/alerts/ack/{token}", token=False).status_code == 400  # the form's CSRF token too
    done = b.post(f"/alerts/ack/{token}").get_data(as_text=True)
    assert "the alert is acknowledged, and nobody else will be told" in done
    assert db.execute("SELECT ack_via, acknowledged_by FROM alerts WHERE id = ?", (alert,)).fetchone() == (
        "link:duty",
        None,
    )
    again = b.get(f"/alerts/ack/{token}")
    assert again.status_code == 410 and "has been used already" in again.get_data(as_text=True)
    assert b.post(f"/alerts/ack/{token}").status_code == 410
    entry = next(e for e in audit.entries(db) if e.action == "acknowledge-alert")
    assert entry.username == "link:duty"


def test_an_expired_or_unknown_link_says_so_and_acknowledges_nothing(browse, db, events):
    alert, _ = amiras_self_harm_alert(db, events)
    token = make_link(db, alert, expires=time.time() - 1)
    b = browse()
    expired = b.get(f"/alerts/ack/{token}")
    assert expired.status_code == 410 and "has expired" in expired.get_data(as_text=True)
    unknown = b.get("/alerts/ack/not-a-real-token")
    assert unknown.status_code == 404 and "not one this appliance made" in unknown.get_data(as_text=True)
    b.post(f"/alerts/ack/{token}")
    assert db.execute("SELECT acknowledged FROM alerts WHERE id = ?", (alert,)).fetchone() == (None,)


def test_a_link_to_an_alert_already_acknowledged_says_who_did(browse, accounts, db, events):
    alert, _ = amiras_self_harm_alert(db, events)
    token = make_link(db, alert, expires=time.time() + 3600)
    s = browse(as_user="staff")
    s.get(f"/alerts/{alert}")
    s.post(f"/alerts/{alert}/acknowledge")
    html = browse().get(f"/alerts/ack/{token}").get_data(as_text=True)
    assert "already acknowledged: Acknowledged by Staff Person on the dashboard" in html
    assert 'id="acknowledge"' not in html


def test_a_childs_device_never_reaches_alerts_nor_an_acknowledge_link(browse, accounts, db, events):
    alert, _ = amiras_self_harm_alert(db, events)
    token = make_link(db, alert, expires=time.time() + 3600)
    child = browse(CHILD_IP)
    for url in ("/alerts", "/alerts/live", f"/alerts/{alert}", f"/alerts/ack/{token}"):
        response = child.get(url)
        assert response.status_code == 403 and "staff only" in response.get_data(as_text=True), url
    assert child.post(f"/alerts/ack/{token}", token=False).status_code == 403
    assert db.execute("SELECT used FROM alert_links").fetchone() == (None,)


def test_the_incident_a_critical_alert_opened_shows_who_acknowledged_it(browse, accounts, db, events):
    alert, _ = amiras_self_harm_alert(db, events)  # its incident opened by the appliance (opened_by NULL)
    token = make_link(db, alert, expires=time.time() + 3600, contact="duty")
    browse().post(f"/alerts/ack/{token}")  # (the browser gets its form's token first)
    b = browse(as_user="staff")
    incident_url = (
        f"/incidents/{db.execute('SELECT incident FROM alerts WHERE id = ?', (alert,)).fetchone()[0]}"
    )
    assert f'href="{incident_url}"' in b.get(f"/alerts/{alert}").get_data(as_text=True)
    page = b.get(incident_url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Self-harm search" in html and "the appliance" in html
    assert f"alert {alert} (critical, self-harm) acknowledged by the link sent to duty (link:duty)" in html


# ---- "Who is told": alerts.yaml's rota, ladder, digest and channels as staff see them ----

# Channel URLs with secrets in them: none of it may ever be on a page.
SECRETS = ("lead:s3cret-app-pass", "s3cret", "mail.example.org", "centre-duty-9f2c", "sms-gw.example.org")
CENTRE_ALERTS = """\
centre: Riverside Youth Centre
link_base: https://appliance.lan
rules:
  - {name: self-harm, severity: critical, when: {watch_list: [self-harm]}}
contacts:
  duty:
    name: Duty phone
    channels: {phone: "ntfys://ntfy.example.org/centre-duty-9f2c"}
  lead:
    name: Sam Okafor (e-safety lead)
    channels:
      email: "mailtos://lead:s3cret-app-pass@mail.example.org?to=sam@example.org"
      phone: "ntfys://ntfy.example.org/centre-duty-9f2c"
  out-of-hours:
    name: Area safeguarding line
    channels: {sms: "json://sms-gw.example.org/send?key=s3cret"}
rota:
  - {contact: duty, days: [mon, tue, wed, thu, fri], hours: "09:00-18:00"}
out_of_hours: out-of-hours
ladder:
  - {after_minutes: 0, notify: on-duty}
  - {after_minutes: 10, notify: lead}
  - {after_minutes: 30, notify: out-of-hours, min_severity: critical}
digest: {to: lead, every: week, day: mon, at: "08:00"}
"""
LONDON = ZoneInfo("Europe/London")


def with_alerts(app, tmp_path: Path, text: str) -> Config:
    """The dashboard's configuration with alerts.yaml written as `text` (the same store and lists)."""
    path = tmp_path / "alerts.yaml"
    path.write_text(text, encoding="utf-8")
    base: Config = app.config["APPLIANCE"]
    config_file = tmp_path / "with-alerts.yaml"
    config_file.write_text(
        config_text(base.data_dir).replace(
            "policy:\n  timezone: Europe/London", f"policy:\n  timezone: Europe/London\n  alerts: {path}"
        ),
        encoding="utf-8",
    )
    config = load_config(config_file)
    assert config.policy.alerts == path
    app.config["APPLIANCE"] = config
    return config


def at(app, *when: int) -> None:
    """The dashboard's clock at a wall-clock time in the centre (Europe/London)."""
    app.config["NOW"] = datetime(*when, tzinfo=LONDON).timestamp()


def told(b) -> str:
    page = b.get("/alerts").get_data(as_text=True)
    return page[page.index('id="who-is-told"') :]


@pytest.mark.parametrize(
    ("when", "on_duty", "first_step"),
    [
        # Monday 7 December 2026 (London is on UTC in winter)
        (
            (2026, 12, 7, 10, 0),
            "<strong>Duty phone</strong>, until 18:00 today, then Area safeguarding line",
            "At once: whoever is on duty (now Duty phone), for high and critical alerts",
        ),
        ((2026, 12, 7, 17, 59), "<strong>Duty phone</strong>, until 18:00 today", "(now Duty phone)"),
        (
            (2026, 12, 7, 18, 0),
            "<strong>Area safeguarding line</strong>, until 09:00 tomorrow, then Duty phone",
            "At once: whoever is on duty (now Area safeguarding line)",
        ),
        (
            (2026, 12, 8, 3, 0),
            "<strong>Area safeguarding line</strong>, until 09:00 today, then Duty phone",
            "(now Area safeguarding line)",
        ),
        (
            (2026, 12, 11, 19, 0),
            "<strong>Area safeguarding line</strong>, until Monday 09:00, then Duty phone",
            "(now Area safeguarding line)",
        ),
        (
            (2026, 12, 12, 12, 0),
            "<strong>Area safeguarding line</strong>, until Monday 09:00",
            "(now Area safeguarding line)",
        ),
    ],
)
def test_who_is_on_duty_now_and_until_when_follows_the_rota_in_the_centres_time(
    app, browse, accounts, tmp_path, when, on_duty, first_step
):
    with_alerts(app, tmp_path, CENTRE_ALERTS)
    at(app, *when)
    panel = told(browse(as_user="staff"))
    duty = panel[panel.index('id="on-duty"') :]
    assert duty.startswith(f'id="on-duty">{on_duty}'), duty[:200]
    assert first_step in panel


def test_the_panel_says_the_ladder_the_digest_and_each_contacts_channels_by_name_never_the_url(
    app, browse, accounts, db, tmp_path
):
    with_alerts(app, tmp_path, CENTRE_ALERTS)
    at(app, 2026, 12, 7, 10, 0)
    b = browse(as_user="staff")
    panel = told(b)
    assert "<li>At once: whoever is on duty (now Duty phone), for high and critical alerts</li>" in panel
    assert (
        "<li>After 10 minutes unacknowledged: Sam Okafor (e-safety lead), for high and critical alerts</li>"
        in panel
    )
    assert (
        "<li>After 30 minutes unacknowledged: Area safeguarding line, for critical alerts only</li>" in panel
    )
    assert "A summary every Monday at 08:00 to Sam Okafor (e-safety lead)" in panel
    assert '<strong>Duty phone</strong> <span class="note">(duty)</span>: phone (ntfy)</li>' in panel
    assert (
        '<strong>Sam Okafor (e-safety lead)</strong> <span class="note">(lead)</span>:'
        " email (e-mail), phone (ntfy)" in panel
    )
    assert (
        '<strong>Area safeguarding line</strong> <span class="note">(out-of-hours)</span>: sms (webhook)'
        in panel
    )
    assert 'id="failing-now">none' in panel and 'id="no-one-told"' not in panel
    # No URL, nor any part of one, on any alerts page or the banner's feed.
    alert = raise_alert(db, ts=app.config["NOW"])
    queue(db, alert, contact="lead", channel="email", attempts=3, error="SMTP: connection refused")
    pages = [b.get(url).get_data(as_text=True) for url in ("/alerts", f"/alerts/{alert}", "/alerts/live")]
    for page in pages:
        for secret in (*SECRETS, "ntfys://", "mailtos://", "json://"):
            assert secret not in page


def test_failing_channels_and_messages_name_contacts_by_their_display_names(
    app, browse, accounts, db, tmp_path
):
    with_alerts(app, tmp_path, CENTRE_ALERTS)
    at(app, 2026, 12, 7, 10, 0)
    now = app.config["NOW"]
    alert = raise_alert(db, ts=now)
    queue(db, alert, state="sent", attempts=1, at=now)
    queue(
        db,
        alert,
        kind="escalation",
        step=1,
        contact="lead",
        channel="email",
        attempts=3,
        error="SMTP: connection refused",
        at=now,
    )
    b = browse(as_user="staff")
    page = b.get("/alerts").get_data(as_text=True)
    assert "Messages to Sam Okafor (e-safety lead) by email are failing</strong>" in page
    assert 'id="failing-now">Sam Okafor (e-safety lead) by email</dd>' in page
    assert "Duty phone by ntfy: sent" in page
    one = b.get(f"/alerts/{alert}").get_data(as_text=True)
    assert "<td>Duty phone by ntfy</td>" in one and "<td>Sam Okafor (e-safety lead) by email</td>" in one
    token = make_link(db, alert, expires=now + 3600, contact="lead")
    browse().post(f"/alerts/ack/{token}")
    assert "Acknowledged from the link sent to Sam Okafor (e-safety lead)" in b.get(
        f"/alerts/{alert}"
    ).get_data(as_text=True)


def test_with_no_contacts_the_panel_warns_that_only_the_banner_tells_anyone(app, browse, accounts):
    panel = told(browse(as_user="staff"))  # the shipped alerts.yaml: rules, no contacts
    assert 'id="no-one-told"' in panel
    assert "No contact is written in alerts.yaml: only the banner on the staff pages tells anyone" in panel
    assert 'id="on-duty">nobody' in panel and "nobody is sent a message: only the banner tells" in panel


@pytest.mark.parametrize(
    ("yaml_tail", "warning"),
    [
        ("ladder: []\n", "has contacts but no ladder: nobody is sent a message"),
        (
            "ladder:\n  - {after_minutes: 0, notify: on-duty}\n",
            "Nobody is on duty now and there is no out-of-hours contact",
        ),
    ],
)
def test_a_ladder_that_tells_nobody_now_is_warned_of(app, browse, accounts, tmp_path, yaml_tail, warning):
    head = CENTRE_ALERTS[: CENTRE_ALERTS.index("out_of_hours:")]
    with_alerts(app, tmp_path, head + yaml_tail)
    at(app, 2026, 12, 7, 20, 0)  # Monday evening: the rota's shift is over
    panel = told(browse(as_user="staff"))
    assert warning in panel
    assert 'id="on-duty">nobody, until 09:00 tomorrow, when Duty phone comes on duty' in panel


def test_a_changed_alerts_yaml_shows_at_once_and_a_broken_one_says_so(app, browse, accounts, tmp_path):
    config = with_alerts(app, tmp_path, CENTRE_ALERTS)
    at(app, 2026, 12, 7, 10, 0)
    b = browse(as_user="staff")
    assert "Duty phone" in told(b)
    path = config.policy.alerts
    path.write_text(CENTRE_ALERTS.replace("Duty phone", "Front desk phone"), encoding="utf-8")
    assert "<strong>Front desk phone</strong>, until 18:00 today" in told(b)
    path.write_text(CENTRE_ALERTS + "ladder: nonsense\n", encoding="utf-8")
    panel = told(b)
    assert "cannot say who is told" in panel and "s3cret" not in panel


def test_the_dashboard_never_loads_apprise():
    """Apprise (and the alerter that uses it) stay out of the dashboard's process: it shows channels by
    name from alerts.yaml and failing ones from the store."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, dashboard, dashboard.serve, dashboard.alerts;"
            " print(sorted(m for m in sys.modules if m.startswith(('apprise', 'appliance.alerts'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert loaded == "[]"
