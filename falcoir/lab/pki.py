"""The lab's CA, server certificate, bearer tokens and kubeconfig, all in the state dir.

Keys are ECDSA P-256 (fast to make: ``lab up`` on a cold machine stays well under 2 s);
everything is reused on the next start if it is already there, so a kubeconfig handed
out earlier keeps working across restarts of the same lab.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADMIN_USER = "falcoir-lab-admin"
RESTRICTED_USER = "restricted"
CONTEXT = "falcoir-lab"
RESTRICTED_CONTEXT = "falcoir-lab-restricted"
CLUSTER = "falcoir-lab"


@dataclass(frozen=True)
class Tokens:
    admin: str
    restricted: str


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def ensure_tokens(state_dir: Path) -> Tokens:
    path = state_dir / "tokens.json"
    if path.exists():
        doc = json.loads(path.read_text())
        return Tokens(admin=doc["admin"], restricted=doc["restricted"])
    tokens = Tokens(admin=secrets.token_hex(24), restricted=secrets.token_hex(24))
    _write_private(
        path, json.dumps({"admin": tokens.admin, "restricted": tokens.restricted}).encode()
    )
    return tokens


def ensure_certificates(state_dir: Path) -> tuple[Path, Path, Path]:
    """``(ca.crt, server.crt, server.key)`` paths, generated on first use."""
    ca_crt, srv_crt, srv_key = (
        state_dir / "ca.crt",
        state_dir / "server.crt",
        state_dir / "server.key",
    )
    if ca_crt.exists() and srv_crt.exists() and srv_key.exists():
        return ca_crt, srv_crt, srv_key

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=365)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "falcoir-lab-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "falcoir-lab")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_crt.write_bytes(ca.public_bytes(pem))
    srv_crt.write_bytes(cert.public_bytes(pem))
    _write_private(
        srv_key,
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return ca_crt, srv_crt, srv_key


def kubeconfig_doc(server: str, ca_pem: bytes, tokens: Tokens) -> dict[str, Any]:
    ca_b64 = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": CONTEXT,
        "clusters": [
            {
                "name": CLUSTER,
                "cluster": {"server": server, "certificate-authority-data": ca_b64},
            }
        ],
        "users": [
            {"name": ADMIN_USER, "user": {"token": tokens.admin}},
            {"name": RESTRICTED_USER, "user": {"token": tokens.restricted}},
        ],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CLUSTER, "user": ADMIN_USER, "namespace": "default"},
            },
            {
                "name": RESTRICTED_CONTEXT,
                "context": {"cluster": CLUSTER, "user": RESTRICTED_USER, "namespace": "default"},
            },
        ],
    }


def write_kubeconfig(state_dir: Path, server: str, tokens: Tokens) -> Path:
    """Write ``DIR/kubeconfig`` (JSON is valid YAML; mode 0600: it holds tokens)."""
    ca_pem = (state_dir / "ca.crt").read_bytes()
    path = state_dir / "kubeconfig"
    _write_private(path, json.dumps(kubeconfig_doc(server, ca_pem, tokens), indent=2).encode())
    return path
