"""Every staff page on a phone, in real headless Chromium: at 390 x 844 (a phone, touch, its viewport
as a phone's) no page is wider than the screen, the tables are cards and the controls are big enough
to touch; at 1280 the same pages still render. A screenshot of every page at both sizes."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from appliance.store import people, staff
from appliance.store.staff import Role
from profiles.categories import Severity
from profiles.verdict import Action, Step
from tests.browser.conftest import ADMIN, Centre, Dashboard
from tests.browser.test_staff_signin import sign_in
from tests.dashboard.conftest import PASSWORD, EventWriter, child_who, verdict

Shot = Callable[[WebDriver, str], Path]
PHONE = (390, 844)
DESK = (1280, 900)
TOUCH_PX = 44  # the smallest control a finger hits reliably (WCAG 2.5.5, Apple's guidelines)
LEAD = "lead"
# A name longer than any phone is wide, as real tracking hosts are: it must wrap, not widen the page.
LONG_HOST = "a-very-long-subdomain-for-advert-tracking-and-measurement.cdn.example-adverts.com"

# The lead's pages; {incident} and {event} are filled in once they exist.
LEAD_PAGES = (
    "/review",
    "/review/event/{event}",
    "/incidents",
    "/incidents/{incident}",
    "/incidents/{incident}/print",
    "/people",
    "/people/devices",
    "/policy",
    "/policy/explain?subject=www.pornhub.com&profile=10-12",
    "/policy/lists",
    "/policy/profiles",
    "/reports",
    "/audit",
    "/account",
)
ADMIN_PAGES = ("/staff",)


def phone(driver: WebDriver) -> None:
    """The browser as a phone: a 390 x 844 viewport at 3 device pixels to one, a mobile one (the page's
    viewport meta tag applies, as on a real phone), touch."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 3, "mobile": True},
    )
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})


def desk(driver: WebDriver) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": DESK[0], "height": DESK[1], "deviceScaleFactor": 1, "mobile": False},
    )
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})


def page_width(driver: WebDriver) -> int:
    return int(driver.execute_script("return document.scrollingElement.scrollWidth"))


def viewport_width(driver: WebDriver) -> int:
    return int(driver.execute_script("return document.documentElement.clientWidth"))


def wider_than(driver: WebDriver, width: int) -> list[str]:
    """The elements whose right edge passes `width`: what to fix when a page overflows."""
    found: list[str] = driver.execute_script(
        """
        const out = [];
        for (const e of document.body.querySelectorAll('*')) {
          const r = e.getBoundingClientRect();
          if (r.width && r.right > arguments[0] + 1) out.push(e.tagName + (e.id ? '#' + e.id : '')
            + (e.className ? '.' + e.className : '') + ' ' + Math.round(r.right) + 'px');
        }
        return out.slice(0, 12);
        """,
        width,
    )
    return found


def small_controls(driver: WebDriver) -> list[str]:
    """The visible buttons, links of the menu, fields and lists shorter than a finger."""
    found: list[str] = driver.execute_script(
        """
        const out = [];
        const controls = document.querySelectorAll('main button, header button, nav a, select,'
          + ' input:not([type=hidden]):not([type=checkbox]):not([type=radio])');
        for (const e of controls) {
          const r = e.getBoundingClientRect();
          if (r.width && r.height && r.height < arguments[0] - 0.5)
            out.push((e.id || e.name || e.textContent.trim() || e.tagName)
              + ' ' + Math.round(r.height) + 'px');
        }
        return out;
        """,
        TOUCH_PX,
    )
    return found


def _name(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.split("?")[0].lower()).strip("-") or "home"


def _shown(driver: WebDriver, dashboard: Dashboard, path: str) -> None:
    driver.get(dashboard.url(path))
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
    assert "/signin" not in driver.current_url, f"{path}: not signed in any more"
    assert "Forbidden" not in driver.title and "Not Found" not in driver.title, f"{path}: {driver.title}"


def _centre_with_events(centre: Centre) -> None:
    """A lead, two children and what a feed holds: a blocked adult site, a flagged search, a long name."""
    db = centre.db()
    writer = EventWriter(centre.config)
    try:
        staff.add_user(db, LEAD, "Lena Lead", Role.LEAD, PASSWORD, time.time())
        amira = people.add_child(db, "Amira", "10-12", "4826", time.time())
        ben = people.add_child(db, "Benedict-Alexander", "13-17", "5937", time.time())
        now = time.time()
        writer.dns(
            now - 300,
            child_who(amira.id),
            "www.pornhub.com",
            verdict(Action.BLOCK, "adult", Severity.HIGH, source="demo-adult", line=5),
        )
        writer.dns(
            now - 200,
            child_who(ben.id),
            LONG_HOST,
            verdict(Action.BLOCK, "ads", Severity.LOW, source="easylist", line=41_327),
        )
        writer.web(
            now - 100,
            child_who(amira.id),
            "https://www.google.com/search?q=how+to+run+away+from+home+without+anyone+knowing+about+it",
            verdict(
                Action.ALLOW,
                "self-harm",
                Severity.HIGH,
                flag=True,
                step=Step.WATCH_LIST,
                detail="running away",
            ),
            terms="how to run away from home without anyone knowing about it",
            status=200,
        )
    finally:
        writer.close()
        db.close()


def _open_incident(driver: WebDriver, dashboard: Dashboard) -> tuple[str, str]:
    """(event id, incident number): the first event of the feed, and an incident opened from it."""
    driver.get(dashboard.url("/review"))
    link = driver.find_element(By.CSS_SELECTOR, "a[href*='/review/event/']")
    event = link.get_attribute("href").rsplit("/review/event/", 1)[1]
    driver.get(dashboard.url(f"/review/event/{event}"))
    driver.find_element(By.ID, "open-incident").click()
    WebDriverWait(driver, 10).until(ec.url_matches(r"/incidents/\d+$"), "no incident page after opening one")
    return event, driver.current_url.rsplit("/", 1)[1]


def test_every_staff_page_fits_a_phone_and_still_renders_at_a_desk(
    centre: Centre, dashboard: Dashboard, browser: Callable[[], WebDriver], shots: Shot
):
    _centre_with_events(centre)
    driver = browser()
    sign_in(driver, dashboard, LEAD, PASSWORD)
    WebDriverWait(driver, 10).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "header .who")))
    event, incident = _open_incident(driver, dashboard)
    pages = [p.format(event=event, incident=incident) for p in LEAD_PAGES]

    phone(driver)
    overflowing, small = {}, {}
    for path in pages:
        _shown(driver, dashboard, path)
        assert viewport_width(driver) == PHONE[0], "the phone's viewport is not 390 px wide"
        shots(driver, f"phone-{_name(path)}")
        if page_width(driver) > PHONE[0]:
            overflowing[path] = (page_width(driver), wider_than(driver, PHONE[0]))
        if "/print" not in path and small_controls(driver):
            small[path] = small_controls(driver)
    assert overflowing == {}, "pages wider than a phone (page width, what sticks out)"
    assert small == {}, "controls smaller than a finger"

    # The feed is a pile of cards, each cell saying its column's name.
    _shown(driver, dashboard, "/review")
    cell = driver.find_element(By.CSS_SELECTOR, "#feed td[data-label='Why']")
    assert "Blocked" in cell.text or "Flagged" in cell.text
    row = cell.find_element(By.XPATH, "./ancestor::tr[1]")
    assert row.value_of_css_property("display") == "block"
    driver.execute_script("arguments[0].scrollIntoView()", row)
    shots(driver, "phone-feed-cards")

    desk(driver)
    for path in pages:
        _shown(driver, dashboard, path)
        assert driver.execute_script("return window.innerWidth") == DESK[0]
        inside = viewport_width(driver)  # less a scroll bar, if the page is long
        assert page_width(driver) <= inside, (path, wider_than(driver, inside))
        shots(driver, f"desk-{_name(path)}")
    _shown(driver, dashboard, "/review")
    assert driver.find_element(By.CSS_SELECTOR, "#feed tr").value_of_css_property("display") == "table-row"

    admin = browser()
    sign_in(admin, dashboard, ADMIN, PASSWORD)
    WebDriverWait(admin, 10).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "header .who")))
    phone(admin)
    for path in ADMIN_PAGES:
        _shown(admin, dashboard, path)
        shots(admin, f"phone-admin-{_name(path)}")
        assert page_width(admin) <= PHONE[0], (path, wider_than(admin, PHONE[0]))
        assert small_controls(admin) == [], path
