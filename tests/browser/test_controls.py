"""Staff in control, walked in real headless Chromium against the real dashboard and the real proxy: staff
pause a child from the child's page, the child's browser (sent through the proxy) gets the paused page,
staff resume and the page comes back; a child asks to use a blocked site from its block page, the ask
appears in the staff banner, staff grant it for 15 minutes, the child reaches the site, staff end the
grant and the site is blocked again. Screenshots at each step (docs/staff-guide.md shows them)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")

import yaml
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from appliance.config import load_config
from appliance.store import controls, people
from profiles.controls import Scope
from tests.appliance.proxy.conftest import Internet, Origin, Proxy, sign_in_taken, start_proxy
from tests.browser.conftest import (
    ADMIN,
    CHROMEDRIVER,
    LOOPBACK,
    Centre,
    Dashboard,
    chromium_options,
    failed,
    replaced,
    wait_until,
)
from tests.browser.test_staff_signin import sign_in
from tests.ports import free_port
from tests.processes import Process

Shot = Callable[[WebDriver, str], Path]
AMIRA = "Amira"
CHILD_DEVICE = LOOPBACK  # the child's browser reaches the proxy from loopback: that is her device
FOLLOW_S = 10.0  # the proxy follows a control within a second; room for a busy machine


@pytest.fixture
def proxied(
    centre: Centre,
    origin: Origin,
    internet: Internet,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Proxy]:
    """`appliance proxy` on the centre's configuration (its names resolved by the proxy tests' fake
    internet: every site is their web origin on loopback). Ask for it before `dashboard`."""
    port = free_port()
    settings = yaml.safe_load(centre.path.read_text(encoding="utf-8"))
    settings["dns"]["upstreams"] = [internet.address]
    settings["proxy"].update(
        listen=f"{LOOPBACK}:{port}",
        workers=1,
        upstream_trusted_ca=str(origin.ca_pem),
        reachable_local_ports=[origin.http_port, origin.https_port],
    )
    centre.path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    centre.config = load_config(centre.path)
    proxy = start_proxy(centre.path, port, origin, tmp_path / "proxy.log")
    try:
        yield proxy
    finally:
        process = Process("the proxy", proxy.process, tmp_path / "proxy.log")
        process.stop()
        if failed(request):
            print(f"---- the proxy's output ----\n{process.output()}")


@pytest.fixture
def child_browser(proxied: Proxy, shots: Shot, request: pytest.FixtureRequest) -> Iterator[WebDriver]:
    """A headless Chromium whose web traffic goes through the proxy (as a centre PC's does), loopback
    (the portal) directly."""
    options = chromium_options()
    options.arguments.remove("--no-proxy-server")
    options.add_argument(f"--proxy-server=http://{LOOPBACK}:{proxied.port}")
    # Plain HTTP as asked (the test's sites answer on plain-HTTP ports): no upgrade to HTTPS.
    options.add_argument("--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable")
    service = Service(executable_path=str(CHROMEDRIVER), log_output=subprocess.DEVNULL)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        if failed(request):
            try:
                shots(driver, "failed-child")
            except Exception as e:
                print(f"no screenshot of the child's browser: {e!r}", file=sys.stderr)
        driver.quit()


def signed_in_child(centre: Centre, proxy: Proxy, origin: Origin) -> people.ChildRecord:
    """Amira (10-12), signed in on the portal on the child's browser's device, once the proxy knows."""
    db = centre.db()
    try:
        amira = people.add_child(db, AMIRA, "10-12", "4826", time.time())
        since = time.time()
        people.start_session(db, amira.id, CHILD_DEVICE, CHILD_DEVICE, since, since + 3600, 3600)
    finally:
        db.close()
    page = f"http://localhost:{origin.http_port}/"
    wait_until(partial(sign_in_taken, proxy, CHILD_DEVICE, since, page), "the proxy to take in Amira", 30)
    return amira


def heading(driver: WebDriver) -> str:
    """The page's heading now ("" while a form's answer is replacing the page: waits ask again)."""
    try:
        return str(driver.find_element(By.TAG_NAME, "h1").text)
    except (StaleElementReferenceException, NoSuchElementException):
        return ""


def shows(driver: WebDriver, url: str, words: str) -> bool:
    """Open `url` afresh; does its heading say `words`?"""
    driver.get(url)
    return words in heading(driver)


def test_staff_pause_a_child_and_her_browser_gets_the_paused_page_until_they_resume(
    centre: Centre,
    proxied: Proxy,
    origin: Origin,
    dashboard: Dashboard,
    browser: Callable[[], WebDriver],
    child_browser: WebDriver,
    shots: Shot,
):
    amira = signed_in_child(centre, proxied, origin)
    homework = f"http://kiddle.co:{origin.http_port}/"
    child_browser.get(homework)
    assert heading(child_browser) == "Homework help"

    staff = browser()
    sign_in(staff, dashboard, ADMIN, "correct horse battery")
    staff.get(dashboard.url("/people"))
    line = staff.find_element(By.ID, f"internet-{amira.id}")
    Select(line.find_element(By.TAG_NAME, "select")).select_by_visible_text("15 minutes")
    shots(staff, "pause-a-child")
    button = line.find_element(By.TAG_NAME, "button")
    assert button.get_attribute("aria-label") == f"pause the internet for {AMIRA}"
    button.click()
    WebDriverWait(staff, 10).until(replaced(button), "the children's page after pausing")
    assert "The internet is paused for Amira until" in staff.find_element(By.TAG_NAME, "body").text
    assert "Internet paused until" in staff.find_element(By.ID, f"internet-{amira.id}").text
    shots(staff, "child-paused")

    wait_until(lambda: shows(child_browser, homework, "paused"), "the paused page", FOLLOW_S)
    assert "Staff have paused the internet" in child_browser.find_element(By.TAG_NAME, "body").text
    shots(child_browser, "the-childs-paused-page")

    staff.find_element(By.ID, f"internet-{amira.id}").find_element(By.TAG_NAME, "button").click()
    wait_until(lambda: "The internet is back on for Amira." in staff.page_source, "resumed")
    shots(staff, "child-resumed")
    wait_until(lambda: shows(child_browser, homework, "Homework help"), "the page back", FOLLOW_S)
    db = centre.db()
    try:
        assert controls.active_pauses(db, time.time()) == []
    finally:
        db.close()


def test_a_child_asks_to_use_a_blocked_site_staff_grant_it_from_the_banner_and_end_it(
    centre: Centre,
    proxied: Proxy,
    origin: Origin,
    dashboard: Dashboard,
    browser: Callable[[], WebDriver],
    child_browser: WebDriver,
    shots: Shot,
):
    amira = signed_in_child(centre, proxied, origin)
    site = f"http://www.chatroulette.com:{origin.http_port}/"  # 10-12 blocks chat
    staff = browser()
    sign_in(staff, dashboard, ADMIN, "correct horse battery")
    staff.get(dashboard.url("/controls"))
    assert not staff.find_element(By.ID, "alert-banner").is_displayed()

    child_browser.get(site)
    assert heading(child_browser) == "This page is blocked"
    child_browser.find_element(By.ID, "ask-note").send_keys("our science club's group")
    shots(child_browser, "ask-to-use-this-site")
    child_browser.find_element(By.CSS_SELECTOR, "#ask button").click()
    wait_until(lambda: heading(child_browser) == "Staff have been asked", "the thanks page")
    shots(child_browser, "asked")

    asks = wait_until(
        lambda: staff.find_elements(By.CSS_SELECTOR, "#alert-banner:not([hidden]) #ask-list li"),
        "the ask in the staff banner",
    )
    assert "Amira" in asks[0].text and "www.chatroulette.com" in asks[0].text
    assert "our science club's group" in asks[0].text
    banner = staff.find_element(By.ID, "alert-banner").text
    assert "No open alerts" not in banner, "a banner open for an ask alone says nothing of alerts"
    shots(staff, "ask-in-the-banner")
    asks[0].find_element(By.XPATH, ".//button[text()='Grant 15 minutes']").click()
    wait_until(lambda: not staff.find_element(By.ID, "alert-banner").is_displayed(), "the banner to go")

    db = centre.db()
    try:
        [granted] = controls.active_grants(db, time.time())
    finally:
        db.close()
    assert (granted.child, granted.host, granted.by) == (amira.id, "www.chatroulette.com", ADMIN)
    assert 14 * 60 < granted.until - granted.since <= 15 * 60
    wait_until(lambda: shows(child_browser, site, "Homework help"), "the granted site", FOLLOW_S)
    shots(child_browser, "the-granted-site")

    staff.get(dashboard.url("/controls"))
    shots(staff, "grant-running")
    end = staff.find_element(By.CSS_SELECTOR, f'tr[data-grant="{granted.id}"] button')
    end.click()
    WebDriverWait(staff, 10).until(replaced(end), "the controls page after ending the grant")
    assert "Amira may no longer use www.chatroulette.com." in staff.find_element(By.TAG_NAME, "body").text
    wait_until(lambda: shows(child_browser, site, "This page is blocked"), "blocked again", FOLLOW_S)
    shots(child_browser, "blocked-again")


def test_the_controls_page_and_the_banners_ask_fit_a_phone_and_pass_axe(
    centre: Centre,
    dashboard: Dashboard,
    browser: Callable[[], WebDriver],
    shots: Shot,
    axe: Callable[[WebDriver], list[str]],
):
    from tests.browser.test_phones import page_width, phone, small_controls, wider_than

    db = centre.db()
    try:
        amira = people.add_child(db, AMIRA, "10-12", "4826", time.time())
        now = time.time()
        controls.ask(
            db,
            subject=f"child:{amira.id}",
            child=amira.id,
            device="aa:bb:cc:dd:ee:01",
            client="192.168.50.23",
            label=AMIRA,
            host="www.chatroulette.com",
            category="chat",
            profile="10-12",
            note="our science club's group",
            now=now,
        )
        controls.pause(
            db,
            scope=Scope.CENTRE,
            target="",
            label="the whole centre",
            minutes=15,
            by=ADMIN,
            reason="drill",
            now=now,
        )
        controls.grant(
            db,
            child=amira.id,
            device=None,
            label=AMIRA,
            host="kiddle.co",
            category=None,
            until=now + 900,
            by=ADMIN,
            reason="homework",
            now=now,
        )
    finally:
        db.close()
    driver = browser()
    sign_in(driver, dashboard, ADMIN, "correct horse battery")
    driver.get(dashboard.url("/controls"))
    wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#alert-banner:not([hidden]) #ask-list li"), "the ask"
    )
    assert axe(driver) == []
    phone(driver)
    driver.get(dashboard.url("/controls"))
    wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#alert-banner:not([hidden]) #ask-list li"), "the ask"
    )
    shots(driver, "phone-controls")
    assert page_width(driver) <= 390, wider_than(driver, 390)
    assert small_controls(driver) == []
