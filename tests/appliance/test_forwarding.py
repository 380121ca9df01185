"""The signed header that names a device to the appliance's own pages when its own proxy connects for it:
believed only when signed with the appliance's key, fresh, and sent from the appliance itself."""

from __future__ import annotations

import time

from appliance.forwarding import forwarded_client, forwarding_key, stamp
from appliance.net import is_own_address


def test_the_client_header_is_believed_only_signed_and_only_from_the_appliance_itself(tmp_path):
    key, other = forwarding_key(tmp_path), forwarding_key(tmp_path / "elsewhere")
    now = time.time()
    signed = stamp(key, "192.168.50.23", now)
    assert forwarded_client("127.0.0.1", signed, key, now) == "192.168.50.23"
    assert forwarded_client("192.0.2.77", signed, key, now) == "192.0.2.77"  # only from the appliance
    assert forwarded_client("127.0.0.1", "192.168.50.23", key, now) == "127.0.0.1"  # unsigned: the remote
    assert forwarded_client("127.0.0.1", stamp(other, "192.168.50.23", now), key, now) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", signed, key, now + 600) == "127.0.0.1"  # too old
    assert forwarded_client("127.0.0.1", signed.replace("23", "24", 1), key, now) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", "x y z\u00e9", key, now) == "127.0.0.1"
    assert is_own_address("127.0.0.1") and not is_own_address("192.0.2.77")
    assert forwarding_key(tmp_path) == key and (tmp_path / "forwarding.key").stat().st_mode & 0o777 == 0o600
