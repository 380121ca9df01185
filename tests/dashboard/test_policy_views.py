"""Profiles and lists, as conversations with the dashboard: the profiles in plain words, "why is this
blocked?", the list sources as compiled, and the e-safety lead's profile editor."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from appliance.config import Config, load_config
from appliance.lists import compile_lists, read_compile_report
from appliance.store import audit, staff
from appliance.store.schema import connect
from appliance.store.staff import Role, StaffUser
from dashboard import create_app
from tests.dashboard.conftest import Browser, add_child, config_text

SHIPPED = Path(str(resources.files("appliance") / "defaults" / "policy" / "profiles.yaml"))
OPEN = "2026-11-24T16:30"  # a Tuesday, in opening hours


@pytest.fixture
def config(
    make_config: Callable[..., Config], tmp_path: Path, profiles_file: Path, compiled_index: Path
) -> Config:
    """The demo configuration, but with its profiles in a file the dashboard may edit."""
    base = make_config()
    shutil.copyfile(compiled_index.parent / "report.json", base.index_path.parent / "report.json")
    text = config_text(base.data_dir).replace(
        "policy:\n  timezone: Europe/London",
        f"policy:\n  timezone: Europe/London\n  profiles: {profiles_file}",
    )
    path = tmp_path / "appliance.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config.policy.profiles == profiles_file
    return config


def actions(db: Any) -> list[tuple[str, str, str]]:
    return [(e.action, e.subject, e.detail) for e in audit.entries(db)]


def test_the_profiles_in_force_in_plain_words(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser]
) -> None:
    page = browse(as_user="staff").get("/policy").get_data(as_text=True)
    ten = page.split("<h3>10-12</h3>")[1].split("</div>")[0]
    assert "Children aged 10 to 12. The open web, with social networks blocked." in ten
    assert "Social networks" in ten and "Online games (low)" in ten
    assert "Mon–Fri 15:00–19:30; Sat 10:00–17:00" in ten and "only the help services and the profile" in ten
    assert "YouTube strict" in ten
    under = page.split("<h3>under-10</h3>")[1].split("</div>")[0]
    assert "Only sites on its allowlist open" in under
    assert "Safe search</th><td>Off." in page.split("<h3>staff</h3>")[1]
    assert "Change the profiles" not in page  # the lead's


def test_why_is_this_blocked_names_the_category_list_and_line(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser]
) -> None:
    response = browse(as_user="staff").get(
        "/policy/explain", query_string={"subject": "www.pornhub.com", "profile": "10-12", "at": OPEN}
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    answer = page.split("Why is this blocked?")[1]
    assert "for profile <strong>10-12</strong> on Tuesday 24 November 2026, 16:30" in answer
    assert ">BLOCK<" in answer
    assert re.search(r"demo-adult, line \d+: <code>www\.pornhub\.com</code>", answer)
    assert "content / sexual" in answer and "sev-high" in answer


def test_why_explains_a_url_and_the_time_rules(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser]
) -> None:
    b = browse(as_user="staff")
    night = b.get(
        "/policy/explain",
        query_string={"subject": "news.example.org", "profile": "10-12", "at": "2026-11-24T23:00"},
    ).get_data(as_text=True)
    assert ">BLOCK<" in night and "schedule" in night
    fine = b.get(
        "/policy/explain",
        query_string={"subject": "https://news.example.org/today", "profile": "13-17", "at": OPEN},
    ).get_data(as_text=True)
    assert ">ALLOW<" in fine and "No list and no rule of this profile mentions it" in fine


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"subject": "example.org", "profile": "teens"}, "no profile &#39;teens&#39;"),
        ({"subject": "example.org", "profile": "10-12", "at": "teatime"}, "give an ISO time"),
        ({"subject": "exa mple.org", "profile": "10-12"}, "is not a host name or URL"),
        ({"subject": "", "profile": "10-12"}, "Type a web address"),
    ],
)
def test_why_with_a_mistake_says_what_to_change(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], query: dict[str, str], words: str
) -> None:
    response = browse(as_user="staff").get("/policy/explain", query_string=query)
    assert response.status_code == 400 and words in response.get_data(as_text=True)


def test_the_list_sources_with_entries_skipped_lines_and_last_update(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], config: Config
) -> None:
    page = browse(as_user="staff").get("/policy/lists").get_data(as_text=True)
    assert "The lists in force were compiled on" in page
    row = page.split("<td>demo-adult<br>")[1].split("</tr>")[0]
    entries = re.findall(r'<td class="num">([\d,]+)</td>', row)
    assert int(entries[0].replace(",", "")) > 0 and len(entries) == 2
    assert ">ok<" in row and "adult" in row and "hosts" in row
    # Without a report (lists never compiled), the page says so.
    (config.index_path.parent / "report.json").unlink()
    config.index_path.unlink()
    page = browse(as_user="staff").get("/policy/lists").get_data(as_text=True)
    assert "Not compiled yet" in page


def test_staff_cannot_edit_profiles(browse: Callable[..., Any], accounts: dict[Role, StaffUser]) -> None:
    b = browse(as_user="staff")
    assert b.get("/policy/profiles").status_code == 403
    b.get("/policy")
    assert b.post("/policy/profiles", {"text": "profiles: {}\n"}).status_code == 403


def _edit(b: Any, text: str) -> Any:
    page = b.get("/policy/profiles").get_data(as_text=True)
    base = re.search(r'name="base" value="([0-9a-f]+)"', page)
    assert base, page
    return b.post("/policy/profiles", {"text": text, "base": base.group(1)})


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("mode: allowlist-only", "mode: whitelist"), ":{line}: profile 'under-10': 'mode' is 'whitelist'"),
        (
            ("blocked_categories: [adult, violence-hate,", "blocked_categories: [adlut, violence-hate,"),
            ":{line}: profile '13-17': unknown category 'adlut'",
        ),
        (("schedules:\n", "schedules:\n  broken: [\n"), "not valid YAML"),
    ],
)
def test_a_profile_edit_with_a_mistake_is_refused_with_file_and_line_and_the_file_kept(
    browse: Callable[..., Any],
    accounts: dict[Role, StaffUser],
    db: Any,
    profiles_file: Path,
    change: tuple[str, str],
    words: str,
) -> None:
    before = profiles_file.read_bytes()
    text = before.decode().replace(*change, 1)
    assert text != before.decode()
    line = text[: text.index(change[1])].count("\n") + 1
    response = _edit(browse(as_user="lead"), text)
    assert response.status_code == 400
    page = response.get_data(as_text=True).replace("&#39;", "'")
    assert "Not saved: the profiles in force are unchanged" in page
    assert re.search(rf"{re.escape(str(profiles_file))}:\d+", page), "every mistake names the file and line"
    assert words.format(line=line) in page
    assert ".check-" not in page  # the trial file's name never shows
    assert profiles_file.read_bytes() == before
    assert sorted(p.name for p in profiles_file.parent.iterdir()) == ["profiles.yaml"]
    assert not [a for a in actions(db) if a[0] == "change-profile"]


def test_a_profile_still_used_by_a_child_cannot_be_removed(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any, profiles_file: Path
) -> None:
    add_child(db, "Amira", profile="13-17")
    before = profiles_file.read_text()
    start, end = before.index("  13-17:\n"), before.index("  staff:\n")
    response = _edit(browse(as_user="lead"), before[:start] + before[end:])
    assert response.status_code == 400
    assert "profile &#39;13-17&#39; is used by Amira" in response.get_data(as_text=True)
    assert profiles_file.read_text() == before


def test_a_valid_profile_edit_is_saved_and_logged(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], db: Any, profiles_file: Path
) -> None:
    before = profiles_file.read_text()
    text = before.replace("flagged_categories: {games: low,", "flagged_categories: {games: medium,", 1)
    b = browse(as_user="lead")
    response = _edit(b, text.replace("\n", "\r\n"))  # as a browser sends a textarea
    assert response.status_code == 302
    assert profiles_file.read_text() == text
    assert ("change-profile", f"file:{profiles_file}", "changed 10-12; +1/-1 lines") in actions(db)
    page = b.get("/policy").get_data(as_text=True)
    assert "Saved (changed 10-12; +1/-1 lines)" in page and "Online games (medium)" in page
    # The explain box uses the new file at once.
    assert sorted(p.name for p in profiles_file.parent.iterdir()) == ["profiles.yaml"]


def test_an_edit_made_on_an_old_copy_is_refused(
    browse: Callable[..., Any], accounts: dict[Role, StaffUser], profiles_file: Path
) -> None:
    b = browse(as_user="lead")
    page = b.get("/policy/profiles").get_data(as_text=True)
    base = re.search(r'name="base" value="([0-9a-f]+)"', page)
    assert base
    profiles_file.write_text(profiles_file.read_text() + "\n# someone else\n")
    changed = profiles_file.read_text()
    response = b.post("/policy/profiles", {"text": "profiles: {}\n", "base": base.group(1)})
    assert response.status_code == 409 and "Someone changed the profiles file" in response.get_data(
        as_text=True
    )
    assert profiles_file.read_text() == changed


def test_the_shipped_profiles_are_not_edited_here(
    make_config: Callable[..., Config], accounts: dict[Role, StaffUser], tmp_path: Path
) -> None:
    shipped_config = make_config()
    assert shipped_config.policy.profiles == SHIPPED
    app: Flask = create_app(shipped_config, {"TESTING": True})
    b = Browser(app.test_client(), "127.0.0.1")
    assert b.sign_in("lead").status_code == 302
    page = b.get("/policy/profiles").get_data(as_text=True).replace("&#39;", "'")
    assert "set policy.profiles to that path in appliance.yaml" in page and "Check and save" not in page
    b.get("/policy")
    before = SHIPPED.read_bytes()
    response = b.post("/policy/profiles", {"text": "profiles: {}\n", "base": "x"})
    assert response.status_code == 400 and SHIPPED.read_bytes() == before


def test_the_lists_page_shows_skipped_lines_and_rejected_sources(
    tmp_path: Path, accounts: dict[Role, StaffUser]
) -> None:
    hosts = tmp_path / "mine.hosts"
    hosts.write_text("0.0.0.0 bad.example\n0.0.0.0 a..b\n0.0.0.0 worse.example\n")
    data = tmp_path / "other"
    path = tmp_path / "small.yaml"
    path.write_text(
        f"data_dir: {data}\nlists:\n  sources:\n"
        f"    - {{name: mine, format: hosts, category: adult, path: {hosts}}}\n"
        f"    - {{name: gone, format: domains, category: gambling, path: {tmp_path / 'missing.domains'}}}\n"
    )
    small = load_config(path)
    compile_lists(small, now=datetime(2026, 11, 24, 9, 30, tzinfo=UTC))
    report = read_compile_report(small)
    assert report is not None and report.compiled == "2026-11-24T09:30:00+00:00"
    assert [(s.report.source, s.report.entries, s.updated) for s in report.sources] == [
        ("mine", 2, "2026-11-24T09:30:00+00:00"),
        ("gone", 0, None),
    ]
    app = create_app(small, {"TESTING": True})
    b = Browser(app.test_client(), "127.0.0.1")
    db = connect(small.events_path)
    staff.add_user(db, "viewer", "Viewer", Role.STAFF, "correct horse battery", 0.0)
    db.close()
    assert b.sign_in("viewer").status_code == 302
    page = b.get("/policy/lists").get_data(as_text=True)
    assert "compiled on 2026-11-24 at 09:30:00+00:00" in page
    mine = page.split("<td>mine<br>")[1].split("<td>gone<br>")[0]
    assert "mine.hosts:2:" in mine and ">ok<" in mine
    gone = page.split("<td>gone<br>")[1].split("</table>")[0]
    assert "rejected" in gone and "missing.domains" in gone and "never" in gone


def test_why_without_a_time_means_now(
    app: Flask, browse: Callable[..., Any], accounts: dict[Role, StaffUser]
) -> None:
    app.config["NOW"] = datetime(2026, 11, 24, 23, 0, tzinfo=UTC).timestamp()  # 23:00 in London: closed
    b = browse(as_user="staff")
    page = b.get(
        "/policy/explain", query_string={"subject": "news.example.org", "profile": "10-12"}
    ).get_data(as_text=True)
    assert "Tuesday 24 November 2026, 23:00" in page and ">BLOCK<" in page
