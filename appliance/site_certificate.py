"""The certificate of the appliance's own HTTPS pages (the staff pages, the portal's HTTPS port), issued by
the appliance's certificate authority, which the centre's PCs already trust (docs/proxy.md).

The authority is made by the proxy at its first start (appliance/proxy/ca.py) and only read here: one
maker, so two processes starting together never make two. The certificate names the appliance's names and
addresses (`site_names`), lasts VALID_DAYS and is issued anew RENEW_DAYS before it ends, or as soon as the
appliance has a name or address it does not cover. The key never leaves the data folder (0600).

Only `cryptography`: the dashboard that serves these pages does not load mitmproxy.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.config import Config
from appliance.files import fsync_path
from appliance.net import split_host_port
from filters.errors import ApplianceError

CA_FILE = "mitmproxy-ca.pem"  # the authority's key and certificate, as appliance/proxy/ca.py writes them
CA_CERT_FILE = "mitmproxy-ca-cert.pem"
CERT_FILE, KEY_FILE = "site.pem", "site.key"  # under <data_dir>/tls: the certificate chain and its key
VALID_DAYS = 180
RENEW_DAYS = 30


class CertificateError(ApplianceError):
    """The appliance's HTTPS certificate cannot be made (no authority yet, unreadable files)."""


@dataclass(frozen=True)
class SiteCertificate:
    """A certificate in force: its chain (the site's then the authority's) and key files, when it ends and
    the names and addresses it covers."""

    cert_path: Path
    key_path: Path
    not_after: datetime
    names: frozenset[str]

    def due(self, names: Iterable[str], now: datetime) -> bool:
        """Must it be issued anew at `now` for `names` (ending soon, or a name it does not cover)?"""
        return self.not_after - now < timedelta(days=RENEW_DAYS) or not set(names) <= self.names


def site_names(config: Config, addresses: Iterable[str] = ()) -> tuple[str, ...]:
    """What the certificate must name: the portal's host names, `dashboard.tls_names`, the block page's
    addresses, the addresses the pages listen on, and the machine's own `addresses`."""
    d = config.dashboard
    listens = [d.listen, d.staff_listen, d.portal_tls_listen]
    hosts = [split_host_port(x, 443)[0] for x in listens if x]
    out: list[str] = []
    for name in (
        *config.policy.portal_hosts,
        *d.tls_names,
        *config.dns.block.page_v4,
        *config.dns.block.page_v6,
        *hosts,
        *addresses,
    ):
        if name not in out and name not in ("0.0.0.0", "::", ""):
            out.append(name)
    return tuple(out)


def read_certificate(folder: Path) -> SiteCertificate | None:
    """The certificate in `folder`, if there is a whole one."""
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if not key_path.is_file():
            return None
    except (OSError, ValueError):
        return None
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    names = {str(n) for n in sans.get_values_for_type(x509.DNSName)}
    names |= {str(a) for a in sans.get_values_for_type(x509.IPAddress)}
    return SiteCertificate(cert_path, key_path, cert.not_valid_after_utc, frozenset(names))


def ensure_site_certificate(
    ca_dir: Path, folder: Path, names: Iterable[str], now: datetime
) -> SiteCertificate:
    """The certificate in `folder` for `names`, issued now by the authority in `ca_dir` if there is none,
    it ends within RENEW_DAYS, or it does not cover every name. Raises CertificateError."""
    wanted = tuple(names)
    current = read_certificate(folder)
    if current is not None and not current.due(wanted, now):
        return current
    try:
        pem = (ca_dir / CA_FILE).read_bytes()
        ca_key = serialization.load_pem_private_key(pem, password=None)
        ca_cert = x509.load_pem_x509_certificate(pem)
    except FileNotFoundError as e:
        raise CertificateError(
            f"{ca_dir}: no certificate authority yet (the proxy makes it at its first start)"
        ) from e
    except (OSError, ValueError) as e:
        raise CertificateError(f"{ca_dir / CA_FILE}: cannot read the certificate authority: {e}") from e
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertificateError(f"{ca_dir / CA_FILE}: the authority's key is of an unexpected kind")
    # Everything already covered stays covered: a name seen once (an address) is not dropped at renewal.
    every = list(dict.fromkeys([*wanted, *(sorted(current.names) if current else [])]))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in every:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, every[0] if every else "appliance")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))  # a clock a little behind still accepts it
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    try:
        _write(folder / KEY_FILE, key_pem)
        _write(folder / CERT_FILE, chain)
    except OSError as e:
        raise CertificateError(f"{folder}: cannot write the HTTPS certificate: {e}") from e
    return SiteCertificate(folder / CERT_FILE, folder / KEY_FILE, cert.not_valid_after_utc, frozenset(every))


def _write(path: Path, data: bytes) -> None:
    """Write `path` whole (readable by the owner only) or leave the old one."""
    partial = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)
    fsync_path(path.parent)


def site_folder(config: Config) -> Path:
    return config.data_dir / "tls"
