"""Which devices trust the centre's certificate, learnt from their own TLS handshakes, so that a child's
own phone that installed it (from the portal, for explanations) gets the block page on a blocked HTTPS
site instead of a browser error, and every other device keeps having blocked names cut at the ClientHello.

A device the appliance may not decrypt (not `managed`) that asks for a blocked name is shown our
certificate for that name (`Connections` lets mitmproxy intercept the connection) unless it is known not
to trust it. A handshake that completes means it trusts the certificate: the block page is shown inside,
and nothing is sent to the site. A client that aborts the handshake right after our certificate (an
"unknown CA" alert, or closing the connection) does not: remembered, its blocked names are cut at the
ClientHello again. Known per worker, by the device's address, for `TRUST_TTL`; a device that fetches the
certificate from the portal is asked again on its next blocked site.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mitmproxy import tls

if TYPE_CHECKING:  # shared.py holds a DeviceTrust
    from appliance.proxy.shared import Shared

TRUST_TTL = 3600.0  # seconds a device's answer is remembered (an address may pass to another device)
_PROBES_MAX = 4096  # connections shown our certificate, awaiting their handshake's end
_DEVICES_MAX = 65_536


class DeviceTrust:
    """Per worker: what each device (by address) showed of trusting the centre's certificate, and the
    connections shown it whose handshake has not ended yet. `now` is monotonic."""

    def __init__(self, ttl: float = TRUST_TTL) -> None:
        self.ttl = ttl
        self._devices: dict[str, tuple[float, bool]] = {}  # address -> (until, trusts)
        self._probes: dict[str, str] = {}  # client connection id -> address

    def trusts(self, device: str, now: float) -> bool | None:
        """True or False as the device showed within `ttl`; None if unknown."""
        known = self._devices.get(device)
        if known is None or known[0] <= now:
            return None
        return known[1]

    def may_show_certificate(self, device: str, connection: str, now: float) -> bool:
        """Should `connection` (a blocked name) be shown our certificate and the block page? Yes unless
        the device is known not to trust it; the handshake's end is then learnt (`ended`)."""
        if self.trusts(device, now) is False:
            return False
        if len(self._probes) >= _PROBES_MAX:
            self._probes.clear()  # handshakes that never ended (closed by the deadline): forgotten
        self._probes[connection] = device
        return True

    def ended(self, connection: str, *, trusted: bool, now: float) -> None:
        """The handshake of `connection` completed (`trusted`) or the client aborted it after our
        certificate; remembered for its device if it was shown our certificate by `may_show_certificate`."""
        device = self._probes.pop(connection, None)
        if device is None:
            return
        if len(self._devices) >= _DEVICES_MAX:
            self._devices.clear()
        self._devices[device] = (now + self.ttl, trusted)

    def forget(self, device: str) -> None:
        """Ask `device` again on its next blocked site (it has just fetched the certificate)."""
        self._devices.pop(device, None)


def distrusts(error: str) -> bool:
    """Does a failed client handshake's error (mitmproxy's words) say the client refused our certificate
    or hung up right after it, rather than, say, offering no TLS version we speak?"""
    return "trust the proxy's certificate" in error


class Trust:
    """Learns from the end of each client handshake shown our certificate for a blocked name."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def tls_established_client(self, data: tls.TlsData) -> None:
        self.shared.trust.ended(data.context.client.id, trusted=True, now=time.monotonic())

    def tls_failed_client(self, data: tls.TlsData) -> None:
        if distrusts(data.conn.error or ""):
            self.shared.trust.ended(data.context.client.id, trusted=False, now=time.monotonic())
