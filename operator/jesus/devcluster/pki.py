"""Certificates for a local control plane: one CA, the API server's serving cert, client certs.

Client identities follow kubeadm: the controller manager and the scheduler authenticate as the users
the bootstrap RBAC policy already grants (`system:kube-controller-manager`, `system:kube-scheduler`);
the admin is in `system:masters`.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jesus.logic.clock import system_clock

_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate's subject: user name (CN) and groups (O)."""

    file_stem: str
    user: str
    groups: tuple[str, ...] = ()


CLIENTS = (
    ClientIdentity("admin", "jesus-admin", ("system:masters",)),
    ClientIdentity("kube-controller-manager", "system:kube-controller-manager"),
    ClientIdentity("kube-scheduler", "system:kube-scheduler"),
    ClientIdentity("kwok", "system:kwok-controller", ("system:masters",)),
    # Kueue's controller manager (`jesus dev up --kueue`); the dev plane grants it all, as kwok.
    ClientIdentity("kueue", "system:kueue-controller", ("system:masters",)),
)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


# The key usages no certificate of the dev cluster needs; x509.KeyUsage wants each of them said.
_UNUSED_KEY_USAGES = dict.fromkeys(
    ("content_commitment", "data_encipherment", "key_agreement", "encipher_only", "decipher_only"), False
)


def _issue(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    ca_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    *,
    is_ca: bool = False,
    usages: tuple[x509.ObjectIdentifier, ...] = (),
    sans: tuple[x509.GeneralName, ...] = (),
) -> x509.Certificate:
    now = system_clock()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=not is_ca,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                **_UNUSED_KEY_USAGES,
            ),
            critical=True,
        )
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def generate_pki(directory: Path) -> None:
    """Write ca.crt, apiserver.{crt,key}, <client>.{crt,key} and the service-account key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("jesus-dev-ca")
    ca_cert = _issue(ca_name, ca_key.public_key(), ca_key, ca_name, is_ca=True)
    _write_key(directory / "ca.key", ca_key)
    _write_cert(directory / "ca.crt", ca_cert)

    server_key = ec.generate_private_key(ec.SECP256R1())
    sans: tuple[x509.GeneralName, ...] = (
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.DNSName("kubernetes.default.svc.cluster.local"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
    )
    server_cert = _issue(
        _name("kube-apiserver"),
        server_key.public_key(),
        ca_key,
        ca_name,
        usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
        sans=sans,
    )
    _write_key(directory / "apiserver.key", server_key)
    _write_cert(directory / "apiserver.crt", server_cert)

    for client in CLIENTS:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(
            _name(client.user, client.groups),
            key.public_key(),
            ca_key,
            ca_name,
            usages=(ExtendedKeyUsageOID.CLIENT_AUTH,),
        )
        _write_key(directory / f"{client.file_stem}.key", key)
        _write_cert(directory / f"{client.file_stem}.crt", cert)

    # Service-account tokens are signed with RSA, which every consumer of those tokens accepts.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(directory / "sa.key", sa_key)
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def issue_serving_cert(directory: Path, stem: str, common_name: str) -> None:
    """Write `stem`.crt and `stem`.key: a serving certificate for 127.0.0.1 and localhost, signed by the
    CA that `generate_pki` wrote into `directory` (the dev OIDC provider and its login app use these)."""
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / 'ca.key'} is not the EC key generate_pki writes")
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(
        _name(common_name),
        key.public_key(),
        ca_key,
        ca_cert.subject,
        usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
        sans=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
    )
    _write_key(directory / f"{stem}.key", key)
    _write_cert(directory / f"{stem}.crt", cert)
