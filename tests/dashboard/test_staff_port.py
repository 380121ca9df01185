"""Router mode's split: with `dashboard.staff_listen`, the children's port answers the portal and block
pages only, and the staff pages answer on their own port (which the firewall opens to the staff networks
only: tests/deploy). Even a staff computer is sent to the staff port."""

from __future__ import annotations

from pathlib import Path

from appliance.config import load_config
from dashboard import create_app
from tests.dashboard.conftest import config_text


def _client(tmp_path: Path, staff_listen: str | None):  # type: ignore[no-untyped-def]
    extra = f"  staff_listen: {staff_listen}\n" if staff_listen else ""
    text = config_text(tmp_path).replace("dashboard:\n", f"dashboard:\n{extra}", 1)
    path = tmp_path / "appliance.yaml"
    path.write_text(text, encoding="utf-8")
    return create_app(load_config(path), {"TESTING": True}).test_client()


def get(client, url: str, port: int, address: str = "127.0.0.1"):  # type: ignore[no-untyped-def]
    return client.get(url, base_url=f"http://appliance.lan:{port}", environ_base={"REMOTE_ADDR": address})


def test_staff_pages_answer_only_on_their_own_port(tmp_path: Path) -> None:
    client = _client(tmp_path, "127.0.0.1:8081")
    refused = get(client, "/signin", 8000)
    assert refused.status_code == 403 and "port 8081" in refused.get_data(as_text=True)
    assert get(client, "/signin", 8081).status_code == 200
    assert get(client, "/portal", 8000).status_code == 200  # the children's port: the portal
    assert get(client, "/portal", 8081).status_code == 200


def test_without_a_staff_port_everything_shares_one(tmp_path: Path) -> None:
    client = _client(tmp_path, None)
    assert get(client, "/signin", 8000).status_code == 200 and get(client, "/portal", 8000).status_code == 200
