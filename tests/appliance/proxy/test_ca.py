"""The appliance's CA: made once per appliance, its private key readable by the appliance alone."""

from __future__ import annotations

from pathlib import Path

from appliance.proxy.ca import ensure_authority


def test_the_authority_is_made_once_per_appliance_with_a_private_key(tmp_path: Path) -> None:
    first = ensure_authority(tmp_path / "ca", "Riverside")
    again = ensure_authority(tmp_path / "ca", "Riverside")
    other = ensure_authority(tmp_path / "other", "Riverside")
    assert first.fingerprint == again.fingerprint != other.fingerprint
    assert (tmp_path / "ca" / "mitmproxy-ca.pem").stat().st_mode & 0o077 == 0
    assert b"PRIVATE KEY" not in first.cert_pem
