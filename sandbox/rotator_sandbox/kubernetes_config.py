"""Client-side plumbing for the Kubernetes emulator: kubeconfig files and a throw-away TLS CA.

:func:`write_kubeconfig` writes a kubeconfig with one context per emulator, so one file can
point at several simulated clusters (the rotator serves many clusters through contexts).
kubectl (client-go) never sends a bearer token over plain HTTP, so a token is only useful to
kubectl with an HTTPS emulator; the Python client sends it either way.

:func:`generate_tls` makes a CA and a server certificate for ``127.0.0.1``/``localhost`` with
``cryptography`` (a dependency of this distribution), imported inside the function so that an
emulator served over plain HTTP never pays for loading it.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from rotator_sandbox.kubernetes import KubernetesEmulator

#: Validity of generated certificates; long enough for any sandbox session.
CERT_VALIDITY = timedelta(days=7)


def kubeconfig_document(
    contexts: Mapping[str, KubernetesEmulator],
    *,
    current: str | None = None,
    namespace: str = "default",
) -> dict[str, Any]:
    """The kubeconfig as a dict: one cluster, user and context per entry of ``contexts``."""
    if not contexts:
        raise ValueError("at least one context is needed")
    clusters: list[dict[str, Any]] = []
    users: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for name, emulator in contexts.items():
        cluster: dict[str, Any] = {"server": emulator.url}
        ca_pem = emulator.ca_certificate_pem()
        if ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
        user: dict[str, Any] = {}
        if emulator.token is not None:
            user["token"] = emulator.token
        clusters.append({"name": name, "cluster": cluster})
        users.append({"name": name, "user": user})
        entries.append(
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        )
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters,
        "users": users,
        "contexts": entries,
        "current-context": current or next(iter(contexts)),
    }


def write_kubeconfig(
    path: str | os.PathLike[str],
    contexts: Mapping[str, KubernetesEmulator],
    *,
    current: str | None = None,
    namespace: str = "default",
) -> Path:
    """Write a kubeconfig (mode 0600, it may hold a token) for ``contexts``; returns its path."""
    target = Path(path)
    document = kubeconfig_document(contexts, current=current, namespace=namespace)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(document, handle, sort_keys=False)
    tmp.replace(target)
    return target


def generate_tls(directory: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """Create ``ca.crt``, ``server.crt`` and ``server.key`` in ``directory``.

    The server certificate is signed by the CA and valid for ``127.0.0.1``, ``::1`` and
    ``localhost``. Returns ``(ca_cert_path, cert_path, key_path)``.
    """
    import ipaddress  # noqa: PLC0415 - only needed here

    from cryptography import x509  # noqa: PLC0415 - loaded only when TLS is asked for
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC) - timedelta(minutes=5)  # tolerate small clock skew
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rotator-sandbox-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + CERT_VALIDITY)
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = folder / "ca.crt"
    cert_path = folder / "server.crt"
    key_path = folder / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return ca_path, cert_path, key_path
