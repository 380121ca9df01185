"""The browser tests' bench: the real dashboard (`python -m dashboard`, waitress) and, when a test asks,
the real DNS filter (`appliance dns`), each a subprocess on a free loopback port over one configuration
and one store in tmp_path; Debian's headless Chromium driven through Selenium by Debian's chromedriver;
and screenshots of every step in test-artifacts/screenshots/<test>/ under the repository.

Nothing leaves the machine: the servers listen on 127.0.0.1, the DNS filter's upstream is a closed
loopback port, and Chromium runs without a proxy, background networking or name resolution (every
page the tests open is http://127.0.0.1:PORT/...).

The tests skip, saying why, when chromium, chromedriver or selenium is missing (CI installs them:
deploy/system-packages.sh and the `dev` extra).
"""

from __future__ import annotations

import http.client
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from appliance.config import Config, load_config
from appliance.store import staff
from appliance.store.schema import connect
from appliance.store.staff import Role
from tests.appliance.alerts.receivers import HttpReceiver
from tests.appliance.proxy.conftest import Internet, Origin, Proxy, internet, origin, start_proxy  # noqa: F401  (fixtures)
from tests.dashboard.conftest import PASSWORD, compiled_index, config_text  # noqa: F401  (a fixture)
from tests.ports import free_port
from tests.processes import Process, start, wait_until

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LOOPBACK = "127.0.0.1"
ADMIN = "admin"
ESCALATION_CONTACT = "Designated safeguarding lead"  # ours, if the demo configuration names none
START_TIMEOUT_S = 30.0

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.remote.webdriver import WebDriver
except ImportError:  # pragma: no cover - the dev extra installs it
    webdriver = None  # type: ignore[assignment]


def _missing() -> str:
    if webdriver is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if absent:
        return (
            f"no headless browser: {', '.join(absent)} missing"
            " (sh deploy/system-packages.sh installs Debian's chromium and chromium-driver)"
        )
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing()
    if not reason:
        return
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so the teardown knows whether to photograph a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def failed(request: pytest.FixtureRequest) -> bool:
    """Did the test (its body) fail? For fixtures' teardowns."""
    report = getattr(request.node, "report_call", None)
    return report is not None and report.failed


# ---- processes ----


def replaced(element: Any) -> Callable[[Any], bool]:
    """A wait condition: `element`'s page has been replaced (a form posted, a link followed). Chromedriver
    says so with a stale-element error, or, caught mid-navigation, with an inspector error that the node
    "does not belong to the document": both mean the old page is gone."""
    from selenium.common.exceptions import WebDriverException

    def gone(_: Any) -> bool:
        try:
            element.is_enabled()
        except WebDriverException:  # StaleElementReferenceException is one
            return True
        return False

    return gone


# ---- the configuration and the store ----


def midday_zone(now: datetime | None = None) -> str:
    """A fixed-offset time zone in which it is now about midday. The centre's clock decides whether the
    portal is open (it closes at portal.closing_time) and what the yearly report covers; set to midday,
    a run at any hour of the day signs in and reports alike."""
    hour = (now or datetime.now(UTC)).hour
    offset = 12 - hour  # -11 .. +12: every one exists as Etc/GMT-N (the sign of Etc zones is reversed)
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def _profiles_without_schedules(target: Path) -> Path:
    """The shipped profiles without their opening hours: outside them a profile allows its allowlist
    only and counts the rest rather than keeping events, which would make the tests depend on the
    hour they run at. Everything else (the categories 10-12 blocks and flags) is as shipped."""
    shipped = resources.files("appliance") / "defaults" / "policy" / "profiles.yaml"
    lines = shipped.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.lstrip().startswith("schedule:")]
    assert len(kept) < len(lines), "the shipped profiles have no schedule lines any more: revisit this"
    target.write_text("".join(kept), encoding="utf-8")
    return target


@dataclass
class Centre:
    """The configuration both servers read (one file, as on the appliance) and its store."""

    path: Path
    config: Config
    zone: str
    dns_port: int
    contact: str  # whom incidents are escalated to

    def db(self) -> sqlite3.Connection:
        return connect(self.config.events_path)

    def year(self) -> int:
        return datetime.now(ZoneInfo(self.zone)).year


@pytest.fixture
def centre(tmp_path: Path, compiled_index: Path) -> Centre:  # noqa: F811
    data = tmp_path / "var"
    (data / "index").mkdir(parents=True)
    shutil.copyfile(compiled_index, data / "index" / compiled_index.name)
    zone = midday_zone()
    profiles = _profiles_without_schedules(tmp_path / "profiles.yaml")
    dns_port = free_port()
    closed_port = free_port()  # nothing listens there: no question ever leaves the machine
    # The demo configuration as the dashboard's tests write it, then our changes, key by key (the
    # shipped file is edited now and then: no text surgery that a new section would break).
    settings = yaml.safe_load(config_text(data))
    policy = settings.setdefault("policy", {})
    policy.update(timezone=zone, profiles=str(profiles))
    dashboard = settings.setdefault("dashboard", {})
    dashboard.setdefault("escalation", [{"name": ESCALATION_CONTACT, "phone": "01632 960000"}])
    settings["dns"] = settings.get("dns") or {}
    settings["dns"].update(
        listen=[f"{LOOPBACK}:{dns_port}"],
        upstreams=[f"{LOOPBACK}:{closed_port}"],
        upstream_timeout_s=0.3,
        servfail_after_s=0.6,
    )
    text = yaml.safe_dump(settings, sort_keys=False)
    path = tmp_path / "appliance.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    db = connect(config.events_path)
    try:
        staff.add_user(db, ADMIN, "Ada Admin", Role.ADMIN, PASSWORD, time.time())
    finally:
        db.close()
    return Centre(path, config, zone, dns_port, config.dashboard.escalation[0].name)


# ---- the servers ----


@dataclass
class Dashboard:
    process: Process
    port: int

    def url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=2)  # never through a proxy
    try:
        conn.request("GET", "/signin")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@pytest.fixture
def dashboard(centre: Centre, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Dashboard]:
    """`python -m dashboard CONFIG --listen 127.0.0.1:PORT`, once it answers; stopped after the test."""
    port = free_port()
    argv = [sys.executable, "-m", "dashboard", str(centre.path), "--listen", f"{LOOPBACK}:{port}"]
    process = start("the dashboard", argv, tmp_path / "dashboard.log")
    try:

        def ready() -> bool:
            process.check_alive()
            return _answers(port)

        wait_until(ready, f"the dashboard on port {port}", START_TIMEOUT_S)
        yield Dashboard(process, port)
    finally:
        process.stop()
        if failed(request):
            print(f"---- the dashboard's output ----\n{process.output()}")


@pytest.fixture
def dns_filter(centre: Centre, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Process]:
    """`appliance dns --config CONFIG` on 127.0.0.1:centre.dns_port, once it answers; stopped after."""
    argv = [sys.executable, "-m", "appliance.cli", "dns", "--config", str(centre.path)]
    process = start("the DNS filter", argv, tmp_path / "dns.log")
    try:
        process.wait_saying("DNS filter answering on", START_TIMEOUT_S)
        yield process
    finally:
        process.stop()
        if failed(request):
            print(f"---- the DNS filter's output ----\n{process.output()}")


@dataclass
class Alerting:
    """The proxy and the alerter on the centre's configuration; the duty phone's webhook receiver."""

    proxy: Proxy
    alerter: Process
    duty: HttpReceiver
    origin: Origin


def alerts_yaml(duty: str, lead: str) -> str:
    """The shipped alerts.yaml (its rules) telling the duty phone at once by webhook (`duty`, an Apprise
    URL) and, at once too, the e-safety lead by e-mail (`lead`)."""
    shipped = resources.files("appliance") / "defaults" / "policy" / "alerts.yaml"
    settings = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    settings.update(
        centre="Riverside Youth Centre",
        contacts={"duty": {"channels": {"webhook": duty}}, "lead": {"channels": {"email": lead}}},
        ladder=[{"after_minutes": 0, "notify": "duty"}, {"after_minutes": 0, "notify": "lead"}],
    )
    return yaml.safe_dump(settings, sort_keys=False)


@pytest.fixture
def alerting(
    centre: Centre,
    origin: Origin,  # noqa: F811
    internet: Internet,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Alerting]:
    """`appliance proxy` and `appliance alerts` on the centre's configuration, once both run. The proxy
    resolves names with the proxy tests' fake internet (every site is their web origin on loopback);
    alerts.yaml tells the duty phone by webhook (a receiver here) and the lead by e-mail through a
    server that is down, so that message waits, pending, to be tried again. Ask for it before
    `dashboard`: it adds the proxy and alerts.yaml to the configuration."""
    proxy_port, mail_down = free_port(), free_port()
    with HttpReceiver() as duty:
        lead = f"mailto://{LOOPBACK}:{mail_down}?from=appliance@centre.example&to=lead@centre.example"
        (tmp_path / "alerts.yaml").write_text(alerts_yaml(duty.url("duty"), lead), encoding="utf-8")
        settings = yaml.safe_load(centre.path.read_text(encoding="utf-8"))
        settings["policy"]["alerts"] = str(tmp_path / "alerts.yaml")
        settings["dns"]["upstreams"] = [internet.address]  # the proxy's resolver
        settings["proxy"].update(
            listen=f"{LOOPBACK}:{proxy_port}",
            workers=1,
            upstream_trusted_ca=str(origin.ca_pem),
            reachable_local_ports=[origin.http_port, origin.https_port],
        )
        centre.path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
        centre.config = load_config(centre.path)
        argv = [sys.executable, "-m", "appliance.cli", "alerts", "--config", str(centre.path)]
        alerter = start("the alerter", argv, tmp_path / "alerts.log")
        proxy = None
        try:
            proxy = start_proxy(centre.path, proxy_port, origin, tmp_path / "proxy.log")
            alerter.wait_saying("alerter running on", START_TIMEOUT_S)
            yield Alerting(proxy, alerter, duty, origin)
        finally:
            alerter.stop()
            if proxy is not None:
                Process("the proxy", proxy.process, tmp_path / "proxy.log").stop()
            if failed(request):
                print(f"---- the alerter's output ----\n{alerter.output()}")


# ---- the browser ----


def chromium_options(resolve: tuple[str, ...] = ()) -> Any:
    """Chromium's flags: headless, no network of its own; `resolve` names sites it finds at 127.0.0.1
    (as the DNS filter's `block-page` answer sends a blocked name to the appliance), every other name
    is not found."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in CI: Chromium's sandbox refuses to run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--metrics-recording-only",
        "--host-resolver-rules="
        + "".join(f"MAP {name} {LOOPBACK}, " for name in resolve)
        + f"MAP * ~NOTFOUND, EXCLUDE {LOOPBACK}",
    ):
        options.add_argument(flag)
    return options


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Callable[[WebDriver, str], Path]:
    """shot(driver, step): the page as the browser shows it now, saved as
    test-artifacts/screenshots/<test>/<NN>-<step>.png (the test's earlier screenshots are removed)."""
    folder = SCREENSHOTS / request.node.name.replace("/", "_")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    count = 0

    def shot(driver: WebDriver, step: str) -> Path:
        nonlocal count
        count += 1
        path = folder / f"{count:02d}-{step}.png"
        assert driver.save_screenshot(str(path)), f"no screenshot at step {step}"
        return path

    return shot


@pytest.fixture
def browser(
    request: pytest.FixtureRequest, shots: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., WebDriver]]:
    """browser(resolve=()): a new headless Chromium (a fresh profile: its own cookies; `resolve` as
    chromium_options'). Every one is closed after the test; if the test failed, each first shows what
    it had on screen (NN-failed-<n>.png)."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)  # Selenium talks to chromedriver on loopback directly
    drivers: list[WebDriver] = []

    def make(resolve: tuple[str, ...] = ()) -> WebDriver:
        service = Service(executable_path=str(CHROMEDRIVER), log_output=subprocess.DEVNULL)
        driver = webdriver.Chrome(service=service, options=chromium_options(resolve))
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    try:
        yield make
    finally:
        for n, driver in enumerate(drivers, 1):
            if failed(request):
                try:
                    shots(driver, f"failed-{n}")
                except Exception as e:  # a crashed browser: still close the others
                    print(f"no screenshot of browser {n} after the failure: {e!r}")
            try:
                driver.quit()  # stops chromedriver, and with it the browser, whatever happens
            except Exception as e:
                print(f"browser {n} did not quit cleanly: {e!r}")


# ---- accessibility ----

AXE_FOLDER = "share/axe-core"  # under the venv: the Makefile's `axe` target unpacks npm's axe-core there
AXE_TIMEOUT_S = 60  # one page's checks: a second or two, more on a busy machine


def axe_script() -> Path | None:
    """axe.min.js of the newest axe-core the Makefile unpacked into the venv (this repository's .venv,
    else the running Python's), None if there is none."""
    found: list[tuple[tuple[int, ...], Path]] = []
    for venv in (REPO / ".venv", Path(sys.prefix)):
        for script in (venv / AXE_FOLDER).glob("*/axe.min.js"):
            version = tuple(int(p) for p in script.parent.name.split(".") if p.isdigit())
            found.append((version, script))
    return max(found)[1] if found else None


@pytest.fixture
def axe() -> Callable[[WebDriver], list[str]]:
    """axe(driver): the accessibility violations axe-core finds on the page the browser shows now, each
    as `rule (impact): what, at which elements`; [] for none. WCAG 2.0, 2.1 and 2.2 A and AA and axe's
    best practices. Skips, saying how to get it, without axe-core (make axe)."""
    script = axe_script()
    if script is None:
        pytest.skip("axe-core is not unpacked: run `make axe` (make test does)")
    source = script.read_text(encoding="utf-8")

    def check(driver: WebDriver) -> list[str]:
        driver.set_script_timeout(AXE_TIMEOUT_S)
        if not driver.execute_script("return !!window.axe"):
            driver.execute_script(source)
        version = str(driver.execute_script("return axe.version"))
        assert version.startswith("4."), f"axe-core {version}: the tests are written for 4.x"
        result = driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            axe.run(document, {runOnly: {type: 'tag', values:
                ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})
              .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ', at '
                + v.nodes.slice(0, 4).map(n => n.target.join(' ')).join('; '))))
              .catch(e => done(['axe failed: ' + e]));
            """
        )
        return list(result)

    return check
