"""The dashboard's test bench: the app over a fresh store and the demo configuration (lists compiled
once per session), a Flask test client per role, and helpers to put events in the store the way the
DNS filter and the proxy do (through the real StoreWriter)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.config import Config, load_config
from appliance.events.values import Answer, Asker
from appliance.events.writer import StoreWriter
from appliance.lists import compile_lists
from appliance.store import people, staff
from appliance.store.schema import connect
from appliance.store.staff import Role
from dashboard import create_app
from profiles.categories import Severity
from profiles.identity import Child, Identity, Via
from profiles.verdict import Action, LogDetail, Reason, Step, Verdict

STAFF_IP = "127.0.0.1"
CHILD_IP = "127.0.0.31"  # a device on the children's network: never reaches staff pages
PASSWORD = "correct horse battery"


def config_text(data_dir: Path, extra: str = "") -> str:
    """The demo configuration with absolute list paths and data under `data_dir`."""
    shipped = resources.files("appliance") / "defaults"
    text = (shipped / "appliance.yaml").read_text(encoding="utf-8")
    text = text.replace("path: lists/", f"path: {shipped / 'lists'}/")
    head, marker, tail = text.partition("\ndashboard:")
    dashboard, _, portal = (marker + tail).partition("\nportal:")
    # The shipped dashboard and portal sections stay unless the test gives its own.
    text = (
        head
        + ("" if "dashboard:" in extra else dashboard)
        + ("" if "portal:" in extra else "\nportal:" + portal)
    )
    return f"{text}\ndata_dir: {data_dir}\nproxy:\n  centre: Riverside Youth Centre\n{extra}"


@pytest.fixture(scope="session")
def compiled_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo lists compiled once; each test's data directory links to the result."""
    data = tmp_path_factory.mktemp("compiled")
    (data / "appliance.yaml").write_text(config_text(data), encoding="utf-8")
    config = load_config(data / "appliance.yaml")
    compile_lists(config, now=datetime.now(UTC))
    return config.index_path


@pytest.fixture
def make_config(tmp_path: Path, compiled_index: Path) -> Callable[..., Config]:
    def make(extra: str = "") -> Config:
        data = tmp_path / "var"
        (data / "index").mkdir(parents=True, exist_ok=True)
        target = data / "index" / compiled_index.name
        if not target.exists():
            target.write_bytes(compiled_index.read_bytes())
        path = tmp_path / "appliance.yaml"
        path.write_text(config_text(data, extra), encoding="utf-8")
        return load_config(path)

    return make


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config()


@pytest.fixture
def app(config: Config) -> Flask:
    return create_app(config, {"TESTING": True})


@pytest.fixture
def db(app: Flask) -> Iterator[Any]:
    connection = connect(app.config["STORE_PATH"])
    yield connection
    connection.close()


@pytest.fixture
def accounts(db: Any) -> dict[Role, staff.StaffUser]:
    """One member of staff per role (user names: staff, lead, admin)."""
    return {
        role: staff.add_user(db, role.value, f"{role.label} Person", role, PASSWORD, time.time())
        for role in Role
    }


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


class Browser:
    """A Flask test client from one address, that reads CSRF tokens from the pages it gets."""

    def __init__(self, client: FlaskClient, address: str) -> None:
        self.client, self.address = client, address
        self.token = ""

    def get(self, url: str, **kw: Any) -> Any:
        response = self.client.get(url, environ_base={"REMOTE_ADDR": self.address}, **kw)
        text = response.get_data(as_text=True)
        if 'name="csrf_token"' in text:
            self.token = csrf_of(text)
        return response

    def post(self, url: str, data: dict[str, Any] | None = None, *, token: bool = True, **kw: Any) -> Any:
        form = dict(data or {})
        if token:
            if not self.token:
                self.get(url)
            form.setdefault("csrf_token", self.token)
        response = self.client.post(url, data=form, environ_base={"REMOTE_ADDR": self.address}, **kw)
        text = response.get_data(as_text=True)
        if 'name="csrf_token"' in text:
            self.token = csrf_of(text)
        return response

    def sign_in(self, username: str, password: str = PASSWORD) -> Any:
        self.get("/signin")
        return self.post("/signin", {"username": username, "password": password})


@pytest.fixture
def browse(app: Flask) -> Callable[..., Browser]:
    """browse(address=STAFF_IP, as_user=None): a fresh client, signed in as `as_user` if given."""

    def make(address: str = STAFF_IP, as_user: str | None = None) -> Browser:
        b = Browser(app.test_client(), address)
        if as_user is not None:
            response = b.sign_in(as_user)
            assert response.status_code == 302, response.get_data(as_text=True)
        return b

    return make


def verdict(
    action: Action,
    category: str,
    severity: Severity = Severity.MEDIUM,
    *,
    flag: bool = False,
    profile: str = "10-12",
    step: Step = Step.CATEGORY,
    source: str = "demo-list",
    line: int = 7,
    rule: str = "",
    detail: str = "",
) -> Verdict:
    effect = Action.FLAG if flag else action
    reason = Reason(
        step, effect, detail or f"category {category}", category, "", severity, source, line, rule
    )
    return Verdict(action, profile, (reason,), severity, log=LogDetail.EVENT)


class EventWriter:
    """Writes events into the store through the real StoreWriter, as the DNS filter and proxy do."""

    def __init__(self, config: Config) -> None:
        self.writer = StoreWriter(config.events_path, ZoneInfo(config.policy.timezone))
        self.defined: set[int] = set()

    def _defs(self, *things: Asker | Answer) -> list[tuple[int, Asker | Answer]]:
        out = [(t.key, t) for t in things if t.key not in self.defined]
        self.defined.update(t.key for t in things)
        return out

    def dns(self, ts: float, who: Asker, host: str, v: Verdict, qtype: str = "A") -> None:
        what = Answer.of("dns", host, qtype, v)
        self.writer.write(self._defs(who, what), ([ts], [who.key], [what.key], [0.001]), [], ts)

    def web(self, ts: float, who: Asker, url: str, v: Verdict, *, terms: str = "", status: int = 403) -> None:
        host = url.split("/")[2]
        what = Answer.of("http", host, "GET", v)
        row = (ts, who.key, what.key, 0.01, "GET", url, status, 1200, terms)
        self.writer.write(self._defs(who, what), ([], [], [], []), [], ts, [row])

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
def events(config: Config, app: Flask) -> Iterator[EventWriter]:
    writer = EventWriter(config)
    yield writer
    writer.close()


def child_who(child_id: str, address: str = CHILD_IP, profile: str = "10-12") -> Asker:
    return Asker.of(address, Identity(profile, Via.SESSION, child=Child(child_id, "x", profile)))


def device_who(name: str, address: str = CHILD_IP, profile: str = "10-12") -> Asker:
    from profiles.identity import Device

    return Asker.of(address, Identity(profile, Via.IP, Device(name, profile, network=address)))


def add_child(db: Any, name: str = "Amira", profile: str = "10-12", pin: str = "4826") -> people.ChildRecord:
    return people.add_child(db, name, profile, pin, time.time())


@pytest.fixture
def profiles_file(tmp_path: Path) -> Path:
    """A copy of the shipped profiles in the data folder, where the dashboard may edit them."""
    path = tmp_path / "policy" / "profiles.yaml"
    path.parent.mkdir()
    shutil.copyfile(Path(str(resources.files("appliance") / "defaults" / "policy" / "profiles.yaml")), path)
    return path
