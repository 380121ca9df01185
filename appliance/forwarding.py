"""Requests the appliance's own proxy forwards to the appliance's own web pages (the portal and the
dashboard): they arrive from the appliance's own address, so the proxy names the device that asked in
CLIENT_HEADER, signed with a secret only the appliance's services read (`<data_dir>/forwarding.key`).

The pages believe the header only from one of the appliance's own addresses and only with a valid,
recent signature: a child's device cannot name itself staff by sending the header, even through the
proxy (which drops any such header a client sends and signs its own), and the signature never leaves the
appliance (the proxy stamps only requests it sends to the appliance itself).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from appliance.net import is_own_address, plain_ip

CLIENT_HEADER = "X-Appliance-Client"
KEY_NAME = "forwarding.key"
STAMP_TTL_S = 120  # a stamp names the device for this long (the proxy stamps each request afresh)


def forwarding_key(data_dir: Path) -> bytes:
    """The appliance's forwarding secret, made at first use (32 random bytes, mode 0600, published
    whole with a hard link so that the proxy and the dashboard starting together agree on one)."""
    path = data_dir / KEY_NAME
    with contextlib.suppress(FileNotFoundError):
        key = path.read_bytes()
        if len(key) == 32:
            return key
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{KEY_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(32))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another service made it first: theirs is the one
    finally:
        tmp.unlink(missing_ok=True)
    key = path.read_bytes()
    if len(key) != 32:
        raise OSError(f"{path}: not a forwarding key (delete it; it is made again)")
    return key


def _mac(key: bytes, client: str, ts: int) -> str:
    return hmac.new(key, f"{client} {ts}".encode(), hashlib.sha256).hexdigest()[:32]


def stamp(key: bytes, client: str, now: float) -> str:
    """CLIENT_HEADER's value naming `client` (an IP address), signed with the forwarding key."""
    ts = int(now)
    return f"{client} {ts} {_mac(key, client, ts)}"


def forwarded_client(remote: str, header: str | None, key: bytes, now: float) -> str:
    """The device behind a request that reached the pages from `remote`: the address a valid stamp in
    the header names when the request came from the appliance itself (its proxy), else `remote`."""
    if not header or not is_own_address(remote):
        return remote
    try:
        client, ts_text, mac = header.strip().split(" ")
        ts = int(ts_text)
    except ValueError:
        return remote
    if plain_ip(client) is None or not -STAMP_TTL_S <= now - ts <= STAMP_TTL_S:
        return remote
    if not hmac.compare_digest(mac.encode("utf-8", "replace"), _mac(key, client, ts).encode()):
        return remote
    return client
