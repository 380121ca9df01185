"""Staff sign in and out of the real dashboard in a real browser (headless Chromium)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import ADMIN, Dashboard, replaced
from tests.dashboard.conftest import PASSWORD

Shot = Callable[[WebDriver, str], Path]


def sign_in(driver: WebDriver, dashboard: Dashboard, username: str, password: str) -> None:
    driver.get(dashboard.url("/signin"))
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    submit = driver.find_element(By.CSS_SELECTOR, "form button[type=submit]")
    submit.click()
    # The answer to the form must be in before the caller goes on: a page asked for while the sign-in is
    # still on its way races it, and the browser may land on the page the sign-in redirects to instead.
    WebDriverWait(driver, 10).until(replaced(submit))
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")


def test_staff_sign_in_lands_on_the_dashboard_and_signs_out(
    dashboard: Dashboard, browser: Callable[[], WebDriver], shots: Shot
):
    driver = browser()
    driver.get(dashboard.url("/signin"))
    assert "Staff sign-in" in driver.find_element(By.TAG_NAME, "h1").text
    shots(driver, "signin-page")

    sign_in(driver, dashboard, ADMIN, PASSWORD)
    # The dashboard's front page (the overview): every staff page names who is signed in.
    who = WebDriverWait(driver, 10).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "header .who")))
    assert driver.current_url == dashboard.url("/")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Overview"
    assert "Ada Admin" in who.text and "Administrator" in who.text
    assert driver.find_element(By.CSS_SELECTOR, "header nav").is_displayed()
    shots(driver, "signed-in")

    who.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(driver, 10).until(ec.url_to_be(dashboard.url("/signin")))
    assert driver.find_elements(By.CSS_SELECTOR, "header .who") == []
    shots(driver, "signed-out")

    # Signed out means signed out: a staff page sends the browser back to the sign-in form.
    driver.get(dashboard.url("/account"))
    WebDriverWait(driver, 10).until(ec.url_contains("/signin"))
    assert driver.find_element(By.ID, "username").is_displayed()
    shots(driver, "account-needs-signin")


def test_a_wrong_password_shows_the_error(
    dashboard: Dashboard, browser: Callable[[], WebDriver], shots: Shot
):
    driver = browser()
    sign_in(driver, dashboard, ADMIN, "not the password")
    error = WebDriverWait(driver, 10).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".error")))
    assert error.get_attribute("role") == "alert"
    assert error.text.strip()
    assert driver.current_url.startswith(dashboard.url("/signin"))
    assert driver.find_element(By.ID, "username").get_attribute("value") == ADMIN
    assert driver.find_elements(By.CSS_SELECTOR, "header .who") == []
    shots(driver, "wrong-password")

    # Still signed out: the dashboard asks again.
    driver.get(dashboard.url("/review"))
    WebDriverWait(driver, 10).until(ec.url_contains("/signin"))
    shots(driver, "still-signed-out")
