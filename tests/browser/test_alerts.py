"""The live alert banner in a real browser (headless Chromium) on the real dashboard: an alert written to
the store while a staff page is open appears in the banner without a reload, the alerts page lists it
with its messages, and Acknowledge in the banner makes it go. In the first tests the alert rows stand for
what the alerter (`appliance alerts`) writes; in the last, a child's search through the real proxy is
raised by the real alerter, and acknowledging it in the banner stops the ladder."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from appliance.store import people
from appliance.store.alerts import open_alerts
from tests.appliance.proxy.conftest import fetch, sign_in_taken
from tests.appliance.store.test_alerts import make_link, queue, raise_alert
from tests.browser.conftest import ADMIN, Alerting, Centre, Dashboard, wait_until
from tests.browser.test_staff_signin import sign_in
from tests.dashboard.conftest import PASSWORD, EventWriter
from tests.dashboard.test_alerts import self_harm_search

Shot = Callable[[WebDriver, str], Path]
AMIRA = "Amira"


def _amiras_alert(centre: Centre) -> int:
    """Amira's self-harm search (a real event through the store's writer) and the critical alert the
    alerter raises for it, with its incident-free first message sent to the duty phone."""
    db = centre.db()
    try:
        amira = people.add_child(db, AMIRA, "10-12", "4826", time.time())
        writer = EventWriter(centre.config)
        now = time.time()
        self_harm_search(writer, amira.id, now)
        writer.close()
        (rowid,) = db.execute("SELECT max(rowid) FROM requests").fetchone()
        alert = raise_alert(db, subject=f"child:{amira.id}", ts=now, count=2)
        db.execute("UPDATE alert_events SET event = ? WHERE alert = ?", (f"web:{rowid}", alert))
        queue(db, alert, state="sent", attempts=1, at=now + 1)
        queue(db, alert, kind="escalation", step=1, contact="lead", channel="email", at=now + 600)
        return alert
    finally:
        db.close()


def _earlier_alert(centre: Centre) -> None:
    """An alert from this morning, acknowledged, whose e-mail to the lead keeps failing."""
    db = centre.db()
    try:
        alert = raise_alert(
            db,
            severity="high",
            rule="personal-info",
            kind="personal-info",
            category="",
            subject="device:library-pc",
            ts=time.time() - 3 * 3600,
        )
        queue(
            db,
            alert,
            contact="lead",
            channel="email",
            attempts=4,
            error="SMTP: connection refused",
            at=time.time() + 300,
        )
        db.execute(
            "UPDATE alerts SET acknowledged = ?, ack_via = 'link:duty' WHERE id = ?",
            (time.time() - 3000, alert),
        )
    finally:
        db.close()


def _banner_items(driver: WebDriver) -> list[str]:
    return [
        li.text for li in driver.find_elements(By.CSS_SELECTOR, "#alert-banner:not([hidden]) #alert-list li")
    ]


def test_an_alert_appears_in_the_open_pages_banner_and_acknowledge_makes_it_go(
    centre: Centre, dashboard: Dashboard, browser: Callable[[], WebDriver], shots: Shot
):
    _earlier_alert(centre)
    driver = browser()
    sign_in(driver, dashboard, ADMIN, PASSWORD)
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "header .who"), "the signed-in dashboard")
    assert not driver.find_element(By.ID, "alert-banner").is_displayed()  # nothing open
    driver.find_element(By.TAG_NAME, "h1").click()  # someone uses the page: sound may play from now on
    wait_until(
        lambda: driver.find_element(By.ID, "alert-sound").get_attribute("textContent") == "Sound on",
        "the banner's sound on",
    )
    page = driver.execute_script("return window.performance.timeOrigin")

    alert = _amiras_alert(centre)  # raised while the page is open
    items = wait_until(lambda: _banner_items(driver), "the alert in the banner")
    assert "CRITICAL" in items[0] and "self-harm and suicide" in items[0] and AMIRA in items[0]
    assert "2 events" in items[0]
    assert driver.find_element(By.ID, "alert-banner-title").text == "1 open alert"
    assert driver.execute_script("return window.performance.timeOrigin") == page  # no reload
    beeps = driver.find_element(By.ID, "alert-sound").get_attribute("data-beeps")
    assert beeps == "1"  # the new alert sounded, once
    shots(driver, "alert-banner")

    driver.find_element(By.LINK_TEXT, "All alerts").click()
    wait_until(lambda: "/alerts" in driver.current_url and _banner_items(driver), "the alerts page")
    table = driver.find_element(By.ID, "alerts").text
    assert "self-harm and suicide" in table and AMIRA in table and "duty by ntfy: sent" in table
    assert "lead by email: to be sent" in table and "from the link sent to duty" in table
    failing = driver.find_element(By.CSS_SELECTOR, "p.error").text
    assert "Messages to lead by email are failing: SMTP: connection refused" in failing
    shots(driver, "alerts-page")

    driver.find_element(By.CSS_SELECTOR, f'#alert-list li[data-alert="{alert}"] button').click()
    wait_until(lambda: not driver.find_element(By.ID, "alert-banner").is_displayed(), "the banner to go")
    db = centre.db()
    try:
        assert open_alerts(db) == []
        (by, via, state) = db.execute(
            "SELECT s.username, a.ack_via, d.state FROM alerts a JOIN staff s ON s.id = a.acknowledged_by"
            " JOIN alert_deliveries d ON d.alert = a.id AND d.kind = 'escalation' WHERE a.id = ?",
            (alert,),
        ).fetchone()
    finally:
        db.close()
    assert (by, via, state) == (ADMIN, "dashboard", "cancelled")  # the ladder stopped
    shots(driver, "alert-acknowledged")


def test_axe_finds_no_accessibility_violation_on_the_alert_pages(
    centre: Centre,
    dashboard: Dashboard,
    browser: Callable[[], WebDriver],
    shots: Shot,
    axe: Callable[[WebDriver], list[str]],
):
    _earlier_alert(centre)
    alert = _amiras_alert(centre)
    db = centre.db()
    try:
        token = make_link(db, alert, expires=time.time() + 3600)
    finally:
        db.close()
    found: dict[str, list[str]] = {}
    driver = browser()
    driver.get(dashboard.url(f"/alerts/ack/{token}"))  # the link from a message: no sign-in
    wait_until(lambda: driver.find_elements(By.ID, "acknowledge"), "the acknowledge link's page")
    found["/alerts/ack/<token>"] = axe(driver)
    sign_in(driver, dashboard, ADMIN, PASSWORD)
    for path in ("/review", "/alerts", f"/alerts/{alert}"):
        driver.get(dashboard.url(path))
        wait_until(lambda: _banner_items(driver), f"the banner on {path}")
        found[path] = axe(driver)
        if found[path]:
            shots(driver, f"axe-{path.strip('/').replace('/', '-')}")
    assert {page: v for page, v in found.items() if v} == {}


# ---- "Who is told": the rota, the ladder and the channels as staff see them (the staff guide's picture) ----

ROTA_ALERTS = """\
centre: Riverside Youth Centre
link_base: https://appliance.lan
rules:
  - {name: self-harm, severity: critical, when: {watch_list: [self-harm]}}
contacts:
  duty:
    name: Duty phone
    channels: {phone: "ntfys://ntfy.example.org/riverside-duty-7f3k"}
  lead:
    name: E-safety lead
    channels:
      email: "mailtos://lead:app-password-9q@mail.example.org?to=lead@riverside.example"
      phone: "ntfys://ntfy.example.org/riverside-lead-2m8w"
  out-of-hours:
    name: Area safeguarding line
    channels: {sms: "json://sms-gateway.example.org/send?key=gw-secret-41"}
rota:
  - {contact: duty, days: daily, hours: "08:00-20:00"}
out_of_hours: out-of-hours
ladder:
  - {after_minutes: 0, notify: on-duty}
  - {after_minutes: 10, notify: lead}
  - {after_minutes: 30, notify: out-of-hours, min_severity: critical}
digest: {to: lead, every: week, day: mon, at: "08:00"}
"""


@pytest.fixture
def rota(centre: Centre) -> Centre:
    """The centre with contacts, a rota (08:00-20:00 every day: the browser tests' centre is at midday)
    and a ladder in its alerts.yaml, written before the dashboard starts."""
    import yaml

    alerts = centre.path.parent / "alerts.yaml"
    alerts.write_text(ROTA_ALERTS, encoding="utf-8")
    settings = yaml.safe_load(centre.path.read_text(encoding="utf-8"))
    settings["policy"]["alerts"] = str(alerts)
    centre.path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return centre


def test_the_alerts_page_says_who_is_told_on_a_desk_and_a_phone_and_never_a_channels_address(
    rota: Centre, dashboard: Dashboard, browser: Callable[[], WebDriver], shots: Shot
):
    from tests.browser.test_phones import page_width, phone, small_controls, wider_than

    _earlier_alert(rota)  # the lead's e-mail keeps failing
    driver = browser()
    sign_in(driver, dashboard, ADMIN, PASSWORD)
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "header .who"), "the signed-in dashboard")
    driver.get(dashboard.url("/alerts"))
    panel = wait_until(lambda: driver.find_elements(By.ID, "who-is-told"), "the Who is told panel")[0]
    text = panel.text
    assert "On duty now\nDuty phone, until 20:00 today, then Area safeguarding line" in text
    assert "At once: whoever is on duty (now Duty phone), for high and critical alerts" in text
    assert "After 10 minutes unacknowledged: E-safety lead, for high and critical alerts" in text
    assert "After 30 minutes unacknowledged: Area safeguarding line, for critical alerts only" in text
    assert "A summary every Monday at 08:00 to E-safety lead" in text
    assert "E-safety lead (lead): email (e-mail), phone (ntfy)" in text
    assert driver.find_element(By.ID, "failing-now").text == "E-safety lead by email"
    source = driver.page_source
    for secret in (
        "ntfy.example.org",
        "app-password-9q",
        "gw-secret-41",
        "ntfys://",
        "mailtos://",
        "json://",
    ):
        assert secret not in source
    driver.execute_script("arguments[0].scrollIntoView()", panel)
    shots(driver, "alerts-rota")

    phone(driver)
    driver.get(dashboard.url("/alerts"))
    panel = wait_until(lambda: driver.find_elements(By.ID, "who-is-told"), "the panel on a phone")[0]
    assert page_width(driver) <= 390, wider_than(driver, 390)
    assert small_controls(driver) == []
    driver.execute_script("arguments[0].scrollIntoView()", panel)
    shots(driver, "phone-alerts-rota")


def _deliveries(centre: Centre, alert: int) -> dict[str, tuple[str, int]]:
    """(state, attempts) of each of `alert`'s ladder messages, by contact."""
    db = centre.db()
    try:
        rows = db.execute(
            "SELECT contact, state, attempts FROM alert_deliveries WHERE alert = ? AND kind IN"
            " ('alert', 'escalation')",
            (alert,),
        ).fetchall()
    finally:
        db.close()
    return {contact: (state, attempts) for contact, state, attempts in rows}


def test_a_search_through_the_real_proxy_shows_in_the_open_banner_and_acknowledging_stops_the_ladder(
    centre: Centre, alerting: Alerting, dashboard: Dashboard, browser: Callable[[], WebDriver], shots: Shot
):
    amira_device = "127.0.0.32"  # Amira's own phone, signed in on the portal
    db = centre.db()
    try:
        amira = people.add_child(db, AMIRA, "10-12", "4826", time.time())
        signed_in = time.time()
        people.start_session(db, amira.id, amira_device, amira_device, signed_in, signed_in + 3600, 3600)
    finally:
        db.close()
    page = f"http://localhost:{alerting.origin.http_port}/"
    taken = partial(sign_in_taken, alerting.proxy, amira_device, signed_in, page)
    wait_until(taken, "the proxy to take in Amira's sign-in", 30)

    driver = browser()
    sign_in(driver, dashboard, ADMIN, PASSWORD)
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "header .who"), "the signed-in dashboard")
    assert not driver.find_element(By.ID, "alert-banner").is_displayed()
    opened = driver.execute_script("return window.performance.timeOrigin")

    search = f"http://www.google.com:{alerting.origin.http_port}/search?q=i+want+to+die+tonight"
    status, _, _ = fetch(alerting.proxy, amira_device, search)
    assert status == 200  # flagged, not blocked: the child is not told, staff are
    items = wait_until(lambda: _banner_items(driver), "the alert in the banner", 20)
    assert "CRITICAL" in items[0] and "self-harm and suicide" in items[0] and AMIRA in items[0]
    assert driver.execute_script("return window.performance.timeOrigin") == opened  # no reload
    shots(driver, "alert-from-the-proxy")

    db = centre.db()
    try:
        [alert] = [a.id for a in open_alerts(db)]
    finally:
        db.close()
    # The duty phone has been told; the lead's e-mail server is down, so that message waits to be retried.
    wait_until(
        lambda: _deliveries(centre, alert).get("lead", ("", 0))[1] >= 1, "a try at the lead's e-mail", 20
    )
    assert _deliveries(centre, alert) == {"duty": ("sent", 1), "lead": ("pending", 1)}
    assert len(alerting.duty.at("duty")) == 1

    driver.find_element(By.CSS_SELECTOR, f'#alert-list li[data-alert="{alert}"] button').click()
    wait_until(lambda: not driver.find_element(By.ID, "alert-banner").is_displayed(), "the banner to go")
    db = centre.db()
    try:
        assert open_alerts(db) == []
        by, via = db.execute(
            "SELECT s.username, a.ack_via FROM alerts a LEFT JOIN staff s ON s.id = a.acknowledged_by"
            " WHERE a.id = ?",
            (alert,),
        ).fetchone()
    finally:
        db.close()
    assert (by, via) == (ADMIN, "dashboard")
    assert _deliveries(centre, alert) == {"duty": ("sent", 1), "lead": ("cancelled", 1)}  # the ladder stopped
    assert driver.execute_script("return window.performance.timeOrigin") == opened
    shots(driver, "alert-acknowledged-from-the-banner")
