"""The appliance's own certificate authority: made at the proxy's first start, one per appliance.

mitmproxy reads it from its confdir as `mitmproxy-ca.pem` (key and certificate); the certificate alone
is `mitmproxy-ca-cert.pem` (served to staff with install steps). The key files are written under a
umask of 077 (readable by the proxy's user only); a half-written set (a power cut at first start) is
made again whole. The report-button key signs the block page's "report a problem" tokens.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy.certs import CertStore

from appliance.proxy.errors import ProxyError

BASENAME = "mitmproxy"  # the file names mitmproxy looks for in its confdir
TRUST_BUNDLE = "upstream-trust.pem"  # public authorities + proxy.upstream_trusted_ca, for mitmproxy
KEY_BITS = 2048  # what browsers and mitmproxy expect; 4096 would slow every forged certificate
_FILES = (f"{BASENAME}-ca.pem", f"{BASENAME}-ca-cert.pem", f"{BASENAME}-ca-cert.cer", f"{BASENAME}-ca.p12")


@dataclass(frozen=True)
class Authority:
    """The CA in force: its folder, the certificate (PEM and DER), its SHA-256 fingerprint, and the
    secret that signs report tokens."""

    folder: Path
    cert_pem: bytes
    cert_der: bytes
    fingerprint: str  # AA:BB:... as browsers and `openssl x509 -fingerprint -sha256` show it
    report_key: bytes


def ensure_authority(folder: Path, centre: str = "") -> Authority:
    """The appliance's CA in `folder`, made now if it is missing or incomplete. Raises ProxyError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not all((folder / name).is_file() for name in _FILES):
            # A fresh name per appliance: two centres' certificates are never mistaken for each other.
            tag = secrets.token_hex(4)
            CertStore.create_store(
                folder,
                BASENAME,
                KEY_BITS,
                organization=f"Childsafe appliance {centre}".strip(),
                cn=f"Childsafe appliance CA {tag}",
            )
        (folder / f"{BASENAME}-ca.pem").chmod(0o600)
        (folder / f"{BASENAME}-ca.p12").chmod(0o600)
        report_key = _report_key(folder / "report.key")
        cert = x509.load_pem_x509_certificate((folder / f"{BASENAME}-ca-cert.pem").read_bytes())
    except (OSError, ValueError) as e:
        raise ProxyError(f"{folder}: cannot make or read the appliance's certificate authority: {e}") from e
    der = cert.public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(der).hexdigest().upper()
    return Authority(
        folder,
        cert.public_bytes(serialization.Encoding.PEM),
        der,
        ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        report_key,
    )


def _report_key(path: Path) -> bytes:
    if path.is_file() and path.stat().st_size >= 32:
        return path.read_bytes()
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(32))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(path.with_suffix(".tmp"), path)
    return path.read_bytes()


def write_trust_bundle(extra: Path, folder: Path) -> Path:
    """The usual public authorities (certifi's, as mitmproxy uses) and the centre's extra ones in one
    file, `folder/TRUST_BUNDLE`: mitmproxy takes a single bundle, which would otherwise replace the
    public ones. Written whole or not at all. Raises ProxyError."""
    target = folder / TRUST_BUNDLE
    try:
        bundle = Path(certifi.where()).read_bytes() + b"\n" + extra.read_bytes()
        partial = target.with_suffix(".tmp")
        partial.write_bytes(bundle)
        os.replace(partial, target)
    except OSError as e:
        raise ProxyError(f"proxy.upstream_trusted_ca: cannot read {extra}: {e}") from e
    return target
