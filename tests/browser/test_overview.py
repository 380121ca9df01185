"""The overview in real headless Chromium: a signed-in child, a pause, a pending ask and a budget nearly
spent (made through appliance.store.controls, as the other parts of the dashboard and the services make
them) shown at a desk and on a phone, without overflowing or small controls, passing axe; a new ask
appears on the open page without a reload (static/overview.js); and the child's page with the time
left and the add-time form. Screenshots for the staff guide."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from appliance.lists import report_path
from appliance.store import controls as store_controls
from appliance.store import people
from appliance.store.people import DeviceRecord
from profiles.categories import Severity
from profiles.controls import Budget, Scope
from profiles.verdict import Action
from tests.browser.conftest import ADMIN, Centre, Dashboard
from tests.browser.test_phones import PHONE, desk, page_width, phone, small_controls, wider_than
from tests.browser.test_staff_signin import sign_in
from tests.dashboard.conftest import PASSWORD, EventWriter, child_who, verdict

Shot = Callable[[WebDriver, str], Path]
CHILD_IP = "127.0.0.31"
PC_MAC = "3c:22:fb:12:34:56"  # a shared PC staff named
POLL_WAIT_S = 15  # the page asks every 5 seconds: three turns


def _busy_afternoon(centre: Centre, compiled_index: Path) -> dict[str, str]:
    """Amira signed in on a shared PC with 3 minutes of internet left and asking to use a game site;
    Sam paused for half an hour; a blocked adult site this morning. Returns the children's ids."""
    # The compile's report beside the index, as `appliance lists compile` leaves it: the lists' age.
    shutil.copyfile(compiled_index.parent / report_path(centre.config).name, report_path(centre.config))
    db = centre.db()
    writer = EventWriter(centre.config)
    try:
        now = time.time()
        amira = people.add_child(db, "Amira", "10-12", "4826", now)
        sam = people.add_child(db, "Sam", "13-17", "5937", now)
        people.save_device(db, DeviceRecord("Room 1 PC 1", PC_MAC, None, "10-12", True), now)
        people.start_session(db, amira.id, PC_MAC, CHILD_IP, now - 300, now + 7200, 1200)
        people.start_session(db, sam.id, "127.0.0.32", "127.0.0.32", now - 120, now + 7200, 1200)
        store_controls.pause(
            db,
            scope=Scope.CHILD,
            target=sam.id,
            label="Sam",
            minutes=30,
            by=ADMIN,
            reason="a word first",
            now=now,
        )
        store_controls.ask(
            db,
            subject=f"child:{amira.id}",
            child=amira.id,
            device=PC_MAC,
            client=CHILD_IP,
            label="Amira",
            host="www.coolmathgames.com",
            category="games",
            profile="10-12",
            note="maths club",
            now=now,
        )
        store_controls.set_child_budget(db, amira.id, Budget(minutes=60), by=ADMIN, now=now)
        day = time.strftime("%Y-%m-%d", time.gmtime(now + _offset(centre)))
        minute = int(now // 60)
        store_controls.record_activity(db, [(day, amira.id, "", minute - k) for k in range(57)])
        # A quarter of an hour ago, but today whatever the hour the suite runs at.
        earlier = now - min(900.0, max((now + _offset(centre)) % 86400 - 1, 0.0))
        writer.dns(
            earlier, child_who(amira.id), "www.pornhub.com", verdict(Action.BLOCK, "adult", Severity.HIGH)
        )
        return {"amira": amira.id, "sam": sam.id}
    finally:
        writer.close()
        db.close()


def _offset(centre: Centre) -> float:
    """The centre's zone's offset from UTC now, in seconds (its zones are fixed Etc/GMT±N)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    offset = datetime.now(ZoneInfo(centre.zone)).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def _overview(driver: WebDriver, dashboard: Dashboard) -> None:
    driver.get(dashboard.url("/"))
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "overview")))


def test_the_overview_at_a_desk_and_on_a_phone_follows_the_centre_live(
    centre: Centre,
    compiled_index: Path,
    dashboard: Dashboard,
    browser: Callable[[], WebDriver],
    shots: Shot,
    axe: Callable[[WebDriver], list[str]],
):
    ids = _busy_afternoon(centre, compiled_index)
    driver = browser()
    sign_in(driver, dashboard, ADMIN, PASSWORD)
    assert driver.current_url == dashboard.url("/"), "staff land on the overview"

    desk(driver)
    _overview(driver, dashboard)
    summary = driver.find_element(By.ID, "ov-summary").text
    assert "1 thing needs you now" in summary and "1 ask to use a site" in summary
    assert "Amira asks to use www.coolmathgames.com" in driver.find_element(By.ID, "ov-asks").text
    signed = driver.find_element(By.ID, "ov-signed-in").text
    assert "Amira on Room 1 PC 1" in signed and "Sam on 127.0.0.32" in signed and "paused until" in signed
    assert "Sam: paused until" in driver.find_element(By.ID, "ov-pauses").text
    assert "The internet: 3 minutes left" in driver.find_element(By.ID, "ov-budgets").text
    assert "1 high" in driver.find_element(By.ID, "ov-events").text
    health = driver.find_element(By.ID, "ov-health").text
    assert "Disk:" in health and "Lists: Updated" in health
    assert page_width(driver) <= driver.execute_script("return document.documentElement.clientWidth")
    assert axe(driver) == []
    shots(driver, "desk-overview")

    # Live: a second ask reaches the open page without a reload (the page's own marker survives).
    driver.execute_script("document.body.setAttribute('data-not-reloaded', 'yes')")
    db = centre.db()
    try:
        store_controls.ask(
            db,
            subject=f"child:{ids['sam']}",
            child=ids["sam"],
            device="127.0.0.32",
            client="127.0.0.32",
            label="Sam",
            host="www.bbc.co.uk",
            category="news",
            profile="13-17",
            note="",
            now=time.time(),
        )
    finally:
        db.close()
    WebDriverWait(driver, POLL_WAIT_S).until(
        lambda d: "2 asks to use a site" in d.find_element(By.ID, "ov-summary").text,
        "the overview did not show the new ask by itself",
    )
    assert "Sam asks to use www.bbc.co.uk" in driver.find_element(By.ID, "ov-asks").text
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-not-reloaded") == "yes"

    phone(driver)
    _overview(driver, dashboard)
    assert page_width(driver) <= PHONE[0], wider_than(driver, PHONE[0])
    assert small_controls(driver) == []
    assert axe(driver) == []
    shots(driver, "phone-overview")
    driver.execute_script("document.getElementById('ov-budgets').scrollIntoView()")
    shots(driver, "phone-overview-budgets")

    # The child's page: what is left, the add-time form, the lead's budget form.
    desk(driver)
    driver.get(dashboard.url(f"/people/children/{ids['amira']}"))
    block = WebDriverWait(driver, 10).until(ec.visibility_of_element_located((By.ID, "time-budget")))
    assert "The internet: 3 minutes left" in block.text
    assert "on Room 1 PC 1" in driver.find_element(By.CSS_SELECTOR, "dl.facts").text
    driver.find_element(By.ID, "extra-minutes").clear()
    driver.find_element(By.ID, "extra-minutes").send_keys("20")
    driver.find_element(By.ID, "extra-reason").send_keys("Maths homework")
    driver.find_element(By.CSS_SELECTOR, "form.add-time button[type=submit]").click()
    # The form's answer replaces the page: an element found on the old one may go stale before it is read.
    WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: "The internet: 23 minutes left" in d.find_element(By.ID, "time-left").text
    )
    assert axe(driver) == []
    shots(driver, "desk-child-time")
    phone(driver)
    driver.refresh()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "time-budget")))
    assert page_width(driver) <= PHONE[0], wider_than(driver, PHONE[0])
    assert small_controls(driver) == []


def test_the_portal_tells_a_signed_in_child_what_is_left_and_warns_at_five_minutes(
    centre: Centre,
    dashboard: Dashboard,
    browser: Callable[[], WebDriver],
    shots: Shot,
    axe: Callable[[WebDriver], list[str]],
):
    db = centre.db()
    try:
        now = time.time()
        amira = people.add_child(db, "Amira", "10-12", "4826", now)
        # The browser asks from 127.0.0.1: Amira is signed in on that device.
        people.start_session(db, amira.id, "127.0.0.1", "127.0.0.1", now - 60, now + 7200, 1200)
        store_controls.set_child_budget(
            db, amira.id, Budget(minutes=90, categories={"games": 30}), by=ADMIN, now=now
        )
        day = time.strftime("%Y-%m-%d", time.gmtime(now + _offset(centre)))
        minute = int(now // 60)
        store_controls.record_activity(db, [(day, amira.id, "", minute - k) for k in range(40)])
        store_controls.record_activity(db, [(day, amira.id, "games", minute - k) for k in range(26)])
    finally:
        db.close()
    driver = browser()
    phone(driver)
    driver.get(dashboard.url("/portal"))
    notice = WebDriverWait(driver, 10).until(ec.visibility_of_element_located((By.ID, "time-nearly-up")))
    assert "4 minutes of online games left today" in notice.text
    left = driver.find_element(By.ID, "time-left").text
    assert "The internet: 50 minutes left" in left and "Online games: 4 minutes left" in left
    assert page_width(driver) <= PHONE[0], wider_than(driver, PHONE[0])
    assert axe(driver) == []
    shots(driver, "portal-time-left")
