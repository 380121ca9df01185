"""The whole story, end to end, in real headless Chromium against the real servers: a child signs in on
the portal; the DNS filter, told by the store, answers her device under her profile and logs a blocked
name; a member of staff finds the event in the feed, opens an incident from it and escalates it; the
yearly report counts the incident. A screenshot at every step."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")

import dns.message
import dns.query
import dns.rcode
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from appliance.store import incidents, people
from appliance.store.incidents import Status
from tests.browser.conftest import ADMIN, LOOPBACK, Centre, Dashboard, Process, replaced, wait_until
from tests.browser.test_staff_signin import sign_in
from tests.dashboard.conftest import PASSWORD

Shot = Callable[[WebDriver, str], Path]
CHILD, PROFILE, PIN = "Amira", "10-12", "4826"
BLOCKED = "www.pornhub.com"  # the demo adult list: 10-12 blocks it (severity high), and keeps the event
BINDING_S = 1.0  # a sign-in takes effect in the DNS filter within this long


def wait(driver: WebDriver, seconds: float = 10) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, seconds)


def body_text(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def event_link(driver: WebDriver, host: str, name: str) -> WebElement:
    """The link to the event in the feed's row that names both `host` and the child `name`."""
    for link in driver.find_elements(By.CSS_SELECTOR, "a[href*='/review/event/']"):
        row = link.find_element(By.XPATH, "./ancestor::*[self::tr or self::li or self::article][1]")
        if host in row.text and name in row.text:
            return link
    raise AssertionError(f"no row in the feed names {host} and {name}:\n{body_text(driver)}")


def test_a_flagged_visit_goes_from_the_portal_to_the_yearly_report(
    centre: Centre,
    dashboard: Dashboard,
    dns_filter: Process,
    browser: Callable[[], WebDriver],
    shots: Shot,
):
    db = centre.db()
    try:
        amira = people.add_child(db, CHILD, PROFILE, PIN, time.time())

        # ---- the child, on a centre PC (127.0.0.1 to the appliance) ----
        child = browser()
        child.get(dashboard.url("/portal"))
        wait(child).until(ec.visibility_of_element_located((By.ID, "sign-in")))
        shots(child, "portal-signin")
        child.find_element(By.ID, "name").clear()
        child.find_element(By.ID, "name").send_keys(CHILD)
        child.find_element(By.ID, "pin").send_keys(PIN)
        accept = child.find_element(By.ID, "accept")
        if not accept.is_selected():
            accept.click()
        shots(child, "portal-filled-in")
        child.find_element(By.ID, "sign-in").click()
        wait(child).until(
            ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "You are signed in as"),
            "the portal did not say the child is signed in",
        )
        signed_in_at = time.monotonic()
        text = body_text(child)
        assert f"You are signed in as {CHILD}" in text
        assert "filtered and monitored" in text
        assert child.find_element(By.ID, "sign-out").is_displayed()
        shots(child, "portal-signed-in")

        # ---- the child's device asks for a blocked name, a second after signing in ----
        time.sleep(max(0.0, signed_in_at + BINDING_S - time.monotonic()))
        reply = dns.query.udp(
            dns.message.make_query(BLOCKED, "A"), LOOPBACK, port=centre.dns_port, source=LOOPBACK, timeout=5
        )
        assert reply.rcode() == dns.rcode.NOERROR, reply
        # The writer hands events to the store four times a second.
        event_id, profile, action = wait_until(
            lambda: db.execute(
                "SELECT id, profile, action FROM event_log WHERE subject = ? AND host = ?",
                (f"child:{amira.id}", BLOCKED),
            ).fetchone(),
            lambda: f"the DNS filter to log {BLOCKED} for {CHILD}; its log:\n{dns_filter.output()}",
        )
        assert (profile, action) == (PROFILE, "block")

        # ---- a member of staff finds it ----
        staff_member = browser()
        sign_in(staff_member, dashboard, ADMIN, PASSWORD)
        wait(staff_member).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "header .who")))
        staff_member.get(dashboard.url("/review"))
        shots(staff_member, "review-feed")
        link = event_link(staff_member, BLOCKED, CHILD)
        assert link.get_attribute("href").endswith(f"/review/event/{event_id}")
        link.click()
        title = wait(staff_member).until(ec.visibility_of_element_located((By.ID, "incident-title")))
        assert BLOCKED in body_text(staff_member) and CHILD in body_text(staff_member)
        shots(staff_member, "review-event")

        # ---- opens an incident ----
        title.clear()
        title.send_keys(f"{CHILD} reached an adult site")
        staff_member.find_element(By.ID, "open-incident").click()
        wait(staff_member).until(ec.url_matches(r"/incidents/\d+$"), "no incident page after opening one")
        number = int(staff_member.current_url.rsplit("/", 1)[1])
        assert f"{CHILD} reached an adult site" in body_text(staff_member)
        shots(staff_member, "incident-opened")

        # ---- escalates it ----
        contact = Select(staff_member.find_element(By.ID, "escalate-contact"))
        next(o for o in contact.options if centre.contact in o.text).click()
        staff_member.find_element(By.ID, "escalate-note").send_keys(
            "Phoned the designated officer; they will call back."
        )
        shots(staff_member, "incident-escalating")
        button = staff_member.find_element(By.ID, "escalate")
        button.click()
        wait(staff_member).until(replaced(button))  # the same address, a new page
        wait(staff_member).until(ec.url_matches(rf"/incidents/{number}$"))
        status = staff_member.find_elements(By.ID, "incident-status")
        shown = status[0].text if status else body_text(staff_member)
        assert "escalated" in shown.lower()
        assert centre.contact in body_text(staff_member)
        shots(staff_member, "incident-escalated")
        found = incidents.get(db, number)
        assert found is not None and found.status is Status.ESCALATED
        assert centre.contact in found.escalated_to

        # ---- the yearly report counts it ----
        year = centre.year()
        staff_member.get(dashboard.url(f"/reports?period={year}"))
        total = wait(staff_member).until(
            ec.visibility_of_element_located((By.ID, "incidents-total")),
            "the yearly report shows no element with id incidents-total (the incidents counted)",
        )
        shots(staff_member, "yearly-report")
        assert re.search(r"(?<!\d)1(?!\d)", total.text), total.text
    finally:
        db.close()
