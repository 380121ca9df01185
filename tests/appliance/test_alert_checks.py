"""`appliance check` on alerts.yaml: the shipped file (no contacts) is valid and says alerts reach only the
dashboard's banner; a ladder naming a contact nobody wrote, or a channel Apprise does not know, is a
mistake with its line; a centre with contacts, rota and ladder gets no alert warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import main

CONTACTS = """\
contacts:
  duty: {name: Duty phone, channels: {ntfy: "ntfys://ntfy.example.org/centre-duty"}}
rota:
  - {contact: duty, days: mon-fri, hours: "09:00-18:00"}
out_of_hours: duty
link_base: https://appliance.lan
rules:
  - {name: child-report, severity: critical, when: {child_report: true}}
ladder:
  - {after_minutes: 0, notify: on-duty}
"""


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], alerts: str | None) -> tuple[int, str]:
    (tmp_path / "ours.domains").write_text("our-own-block.example\n")
    policy = ""
    if alerts is not None:
        (tmp_path / "alerts.yaml").write_text(alerts)
        policy = f"policy:\n  alerts: {tmp_path / 'alerts.yaml'}\n"
    config = tmp_path / "appliance.yaml"
    config.write_text(
        "data_dir: state\nlists:\n  sources:\n"
        "    - {name: ours, format: domains, category: gambling, path: ours.domains}\n" + policy
    )
    code = main(["check", "--config", str(config)])
    return code, capsys.readouterr().out


def test_the_shipped_alerts_file_is_valid_and_check_says_no_one_is_told_by_push(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(tmp_path, capsys, None)
    assert code == 0
    assert "names no contacts: alerts show on the staff dashboard's banner only" in out


def test_contacts_a_rota_and_a_ladder_leave_no_alert_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = check(tmp_path, capsys, CONTACTS)
    assert code == 0 and "alerts.yaml" not in out


@pytest.mark.parametrize(
    ("old", "new", "line", "says"),
    [
        (
            "notify: on-duty",
            "notify: lead",
            10,
            "step 1 of the ladder: unknown contact 'lead' (known: duty, on-duty",
        ),
        (
            '"ntfys://ntfy.example.org/centre-duty"',
            '"nosuchservice://ntfy.example.org/centre-duty"',
            2,
            "channel 'ntfy' (nosuchservice://...): Apprise does not know this URL",
        ),
    ],
)
def test_an_unknown_contact_or_channel_is_a_mistake_check_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, line: int, says: str
) -> None:
    code, out = check(tmp_path, capsys, CONTACTS.replace(old, new))
    assert code == 1
    assert f"error: {tmp_path / 'alerts.yaml'}:{line}: " in out and says in out
