"""The Lists page as conversations: what leaves protection short, said plainly (as `appliance check` says
it); each source with where it comes from, its entries, age and last fetch; and the e-safety lead
switching catalogue entries on and off (checked, written atomically to the switches file, audited)."""

from __future__ import annotations

import html
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from appliance.cli import main
from appliance.config import Config, load_config
from appliance.lists import read_compile_report
from appliance.store import audit, staff
from appliance.store.schema import connect
from appliance.store.staff import Role, StaffUser
from dashboard import create_app
from tests.dashboard.conftest import PASSWORD, Browser, config_text


def text_of(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def lead_and_staff(config: Config) -> tuple[Browser, Browser]:
    app: Flask = create_app(config, {"TESTING": True})
    db = connect(config.events_path)
    staff.add_user(db, "lead", "Lead Person", Role.LEAD, PASSWORD, 0.0)
    staff.add_user(db, "staff", "Staff Person", Role.STAFF, PASSWORD, 0.0)
    db.close()
    browsers = Browser(app.test_client(), "127.0.0.1"), Browser(app.test_client(), "127.0.0.1")
    for b, user in zip(browsers, ("lead", "staff"), strict=True):
        assert b.sign_in(user).status_code == 302
    return browsers


@pytest.fixture
def switchable(make_config: Callable[..., Config], tmp_path: Path) -> Config:
    """The demo configuration with its catalogue switches in a file of their own (as on the Pi)."""
    base = make_config()
    text = config_text(base.data_dir).replace(
        "  preset: demo\n", f"  preset: demo\n  catalogue: {tmp_path / 'switches' / 'catalogue.yaml'}\n"
    )
    (tmp_path / "switches").mkdir()
    path = tmp_path / "centre.yaml"  # not make_config's file, which other fixtures rewrite
    path.write_text(text, encoding="utf-8")
    main(["lists", "compile", "--config", str(path)])
    return load_config(path)


@pytest.fixture
def reported(config: Config, compiled_index: Path) -> Config:
    """The demo configuration with the report of its compile beside the index."""
    shutil.copyfile(compiled_index.parent / "report.json", config.index_path.parent / "report.json")
    return config


def switch(b: Browser, entry: str, state: str, base: str | None = None) -> Any:
    page = b.get("/policy/lists").get_data(as_text=True)
    found = re.search(r'name="base" value="([0-9a-f]*)"', page)
    assert found, "the lead's page has switch buttons"
    return b.post("/policy/lists/catalogue", {"entry": entry, "state": state, "base": base or found.group(1)})


def test_on_the_demo_lists_the_page_says_protection_is_minimal_and_names_every_gap(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], reported: Config
) -> None:
    page = text_of(browse(as_user="staff").get("/policy/lists"))
    box = page.split('id="minimal"')[1].split("</div>")[0]
    assert "Protection is minimal: only the bundled demo lists" in box
    gaps = page.split('id="gaps"')[1].split("</div>")[0]
    assert (
        "no list feeds category 'phishing' (Phishing), which every profile blocks: it blocks nothing" in gaps
    )
    assert "category 'weapons'" in gaps and "category 'adult'" not in gaps
    # Every source with where it comes from; the catalogue with what is on here and why.
    row = page.split("<td>demo-adult<br>")[1].split("</tr>")[0]
    assert "<td>preset demo</td>" in row and ">ok<" in row
    entry = page.split('id="entry-ut1-adult"')[1].split("</tr>")[0]
    assert (
        "≈4,600,000" in entry and "recommended" in entry and "off" in entry and "not in the preset" in entry
    )
    assert "Switch on" not in page  # staff see, the lead switches


def test_until_the_lists_come_in_the_page_says_lists_not_downloaded_yet(
    tmp_path: Path, make_config: Callable[..., Config]
) -> None:
    # Installed with no connection: the centre's lists cannot be fetched (nothing listens there).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "offline"
    path = tmp_path / "offline.yaml"
    path.write_text(
        f"data_dir: {data}\nlists:\n  sources:\n"
        f"    - {{name: phish, format: domains, category: phishing, url: http://127.0.0.1:{port}/phish.txt}}\n"
    )
    assert main(["lists", "compile", "--config", str(path)]) == 1
    lead, _ = lead_and_staff(load_config(path))
    page = text_of(lead.get("/policy/lists"))
    box = page.split('id="minimal"')[1].split("</div>")[0]
    assert "Protection is minimal: lists not downloaded yet." in box
    assert "The bundled demo lists are in force" in box
    phish = page.split("<td>phish</td>")[1].split("</tr>")[0]
    assert "not downloaded yet: the bundled lists stand in" in phish and "the centre's own" in phish
    demo = page.split("<td>demo-adult<br>")[1].split("</tr>")[0]
    assert "bundled, until the lists are downloaded" in demo


def test_the_lead_switches_a_catalogue_entry_off_and_back(switchable: Config) -> None:
    lead, _ = lead_and_staff(switchable)
    switches = switchable.catalogue.switches_file
    assert switches is not None and not switches.exists()
    response = switch(lead, "demo-dating", "off")
    assert response.status_code == 302 and response.location.endswith("/policy/lists#catalogue")
    assert switches.read_text().splitlines()[-1] == "demo-dating: off"
    entries = [(e.action, e.subject, e.detail) for e in audit.entries(connect(switchable.events_path))]
    assert ("switch-list", "catalogue:demo-dating", "off (was on; preset demo)") in entries
    page = text_of(lead.get("/policy/lists"))
    flash = page.split('class="flash"')[1].split("</p>")[0]
    assert "demo-dating switched off. It takes effect at the next list update" in flash
    assert "Warning: no list feeds category 'dating' (Dating)" in flash
    entry = page.split('id="entry-demo-dating"')[1].split("</tr>")[0]
    assert "switched off" in entry and "Switch on" in entry
    # Still compiled until the next update, and the page says so.
    row = page.split("<td>demo-dating<br>")[1].split("</tr>")[0]
    assert "switched off: in force until the next list update" in row
    # Switched back on: the file holds no switch for it (the preset decides again).
    assert switch(lead, "demo-dating", "on").status_code == 302
    assert "demo-dating" not in switches.read_text()
    # An entry the preset lacks, switched on: shown as added, waiting for the next update.
    assert switch(lead, "blp-vaping", "on").status_code == 302
    assert "blp-vaping: on" in switches.read_text()
    page = text_of(lead.get("/policy/lists"))
    vaping = page.split('id="sources"')[1].split("<td>blp-vaping</td>")[1].split("</tr>")[0]
    assert (
        "not downloaded yet: the bundled lists stand in" in vaping
    )  # the demo preset downloads nothing else
    assert load_config(Path(switchable.origin)).catalogue.switches == {"blp-vaping": True}


def test_switching_is_the_leads_with_a_fresh_page_and_a_csrf_token(switchable: Config) -> None:
    lead, viewer = lead_and_staff(switchable)
    switches = switchable.catalogue.switches_file
    assert switches is not None
    viewer.get("/policy/lists")
    assert viewer.post("/policy/lists/catalogue", {"entry": "demo-adult", "state": "off"}).status_code == 403
    lead.get("/policy/lists")
    no_token = lead.post("/policy/lists/catalogue", {"entry": "demo-adult", "state": "off"}, token=False)
    assert no_token.status_code == 400
    # Someone switched something since the page was opened: refused, nothing written.
    page = lead.get("/policy/lists").get_data(as_text=True)
    base = re.search(r'name="base" value="([0-9a-f]*)"', page)
    assert base
    switches.write_text("demo-chat: off\n")
    stale = lead.post(
        "/policy/lists/catalogue", {"entry": "demo-adult", "state": "off", "base": base.group(1)}
    )
    assert stale.status_code == 409 and "Someone changed the catalogue switches" in text_of(stale)
    assert switches.read_text() == "demo-chat: off\n"
    assert switch(lead, "no-such-list", "off").status_code == 400
    assert switch(lead, "demo-adult", "maybe").status_code == 400
    assert not [e for e in audit.entries(connect(switchable.events_path)) if e.action == "switch-list"]


def test_a_switch_the_configuration_would_refuse_is_not_written(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """The centre has a list of its own named like a catalogue entry: switching that entry on would make
    two sources of one name, which `appliance check` refuses; so does the page."""
    base = make_config()
    (tmp_path / "ours.hosts").write_text("0.0.0.0 ours.example\n")
    text = (
        config_text(base.data_dir)
        .replace(
            "  preset: demo\n",
            f"  preset: demo\n  catalogue: {tmp_path / 'catalogue.yaml'}\n  sources:\n"
            f"    - {{name: blp-vaping, format: hosts, category: drugs, path: {tmp_path / 'ours.hosts'}}}\n",
        )
        .replace("  sources:\n    # a centre's", "  # a centre's")
    )
    path = tmp_path / "appliance.yaml"
    path.write_text(text)
    lead, _ = lead_and_staff(load_config(path))
    response = switch(lead, "blp-vaping", "on")
    assert response.status_code == 400
    assert "a list of the centre's own is already named 'blp-vaping'" in text_of(response)
    assert not (tmp_path / "catalogue.yaml").exists()


def test_switches_written_in_the_configuration_itself_are_changed_there(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    base = make_config()
    text = config_text(base.data_dir).replace(
        "  preset: demo\n", "  preset: demo\n  catalogue: {demo-chat: off}\n"
    )
    path = tmp_path / "appliance.yaml"
    path.write_text(text)
    lead, _ = lead_and_staff(load_config(path))
    page = text_of(lead.get("/policy/lists"))
    assert "which the dashboard does not edit" in page and "Switch on" not in page
    entry = page.split('id="entry-demo-chat"')[1].split("</tr>")[0]
    assert "switched off" in entry
    lead.get("/policy")  # a page with a CSRF token
    refused = lead.post("/policy/lists/catalogue", {"entry": "demo-chat", "state": "on", "base": ""})
    assert refused.status_code == 400 and path.read_text() == text


class Fetched:
    """A source's download as the compile reports it (`SourceReport.fetch`: outcome, bytes, text)."""

    outcome = "updated"
    bytes_fetched = 2_400_000

    def __str__(self) -> str:
        return "updated from the mirror, 2.4 MB fetched in 1 request"


def test_a_sources_last_fetch_is_shown_when_the_compile_reports_it(
    browse: Callable[..., Any],
    accounts: dict[Role, StaffUser],
    reported: Config,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compile's per-source fetch summary (unchanged / updated / failed, bytes) has a column."""
    report = read_compile_report(reported)
    assert report is not None
    fetched = [
        SimpleNamespace(**{**vars(s), "report": SimpleNamespace(**{**vars(s.report), "fetch": Fetched()})})
        if s.report.source == "demo-adult"
        else s
        for s in report.sources
    ]
    monkeypatch.setattr(
        "dashboard.policy_views.read_compile_report",
        lambda _: SimpleNamespace(**{**vars(report), "sources": fetched}),
    )
    page = text_of(browse(as_user="staff").get("/policy/lists"))
    row = page.split("<td>demo-adult<br>")[1].split("</tr>")[0]
    assert "updated from the mirror, 2.4 MB fetched in 1 request" in row
    assert "—" in page.split("<td>demo-gambling<br>")[1].split("</tr>")[0]


@pytest.mark.parametrize("weapons_list", [True, False], ids=["weapons-fed", "no-weapons-list"])
def test_the_page_warns_of_a_category_a_profile_blocks_that_no_list_feeds(
    tmp_path: Path, weapons_list: bool
) -> None:
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(
        "profiles:\n  kids:\n    description: Children.\n    blocked_categories: [adult, weapons]\n"
    )
    fed = ["adult", "phishing", "malware", "filter-bypass"] + (["weapons"] if weapons_list else [])
    sources = ""
    for category in fed:
        (tmp_path / f"{category}.domains").write_text(f"{category}.probe.example\n")
        sources += f"    - {{name: {category}-list, format: domains, category: {category}, "
        sources += f"path: {tmp_path / category}.domains}}\n"
    path = tmp_path / "appliance.yaml"
    path.write_text(
        f"data_dir: {tmp_path / 'state'}\npolicy:\n  profiles: {profiles}\n  guest_profile: kids\n"
        f"lists:\n  sources:\n{sources}"
    )
    assert main(["lists", "compile", "--config", str(path)]) == 0
    _, staff_browser = lead_and_staff(load_config(path))
    page = text_of(staff_browser.get("/policy/lists"))
    if weapons_list:
        assert 'id="gaps"' not in page and 'id="minimal"' not in page
        return
    gaps = page.split('id="gaps"')[1].split("</div>")[0]
    assert "Protection has gaps." in gaps
    assert (
        "<li>no list feeds category 'weapons' (Weapons and dangerous material), which every profile blocks: "
        "it blocks nothing</li>" in gaps
    )
    assert "category 'adult'" not in gaps
