"""Certificates and keys for a secure local API server (the same pieces kubeadm would make).

- a CA that signs both the serving certificate and client certificates (``--client-ca-file``);
- a serving certificate for 127.0.0.1 / localhost / kubernetes.default.svc;
- an admin client certificate in ``system:masters`` (the admin kubeconfig);
- a client certificate for kube-controller-manager (``system:kube-controller-manager``);
- for a node: kube-scheduler's (``system:kube-scheduler``), the kubelet's (``system:node:<name>``
  in ``system:nodes``, which the Node authorizer and NodeRestriction know), and the API
  server's client certificate towards kubelets (logs, exec);
- the service-account signing key pair, so TokenRequest issues real bound tokens.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class Pki:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def serving_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.dir / "admin.key"

    @property
    def kcm_cert(self) -> Path:
        return self.dir / "controller-manager.crt"

    @property
    def kcm_key(self) -> Path:
        return self.dir / "controller-manager.key"

    @property
    def scheduler_cert(self) -> Path:
        return self.dir / "scheduler.crt"

    @property
    def scheduler_key(self) -> Path:
        return self.dir / "scheduler.key"

    @property
    def node_cert(self) -> Path:
        return self.dir / "node.crt"

    @property
    def node_key(self) -> Path:
        return self.dir / "node.key"

    @property
    def kubelet_client_cert(self) -> Path:
        return self.dir / "apiserver-kubelet-client.crt"

    @property
    def kubelet_client_key(self) -> Path:
        return self.dir / "apiserver-kubelet-client.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    path.chmod(0o600 if private else 0o644)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


#: The kubelet's node name (its certificate says ``system:node:<NODE_NAME>``).
NODE_NAME = "aigw-node"


def generate(directory: Path, extra_ips: tuple[str, ...] = ()) -> Pki:
    """Write a fresh PKI into ``directory`` (mode 0700) and return its paths.

    ``extra_ips`` are further addresses the API server serves on (the node network's).
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    pki = Pki(directory)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("aigateway-operator-dev-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(pki.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))

    def leaf(cn: str, org: str | None, server: bool, cert: Path, key: Path) -> None:
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org))
            .issuer_name(ca_name)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes"),
                        x509.DNSName("kubernetes.default"),
                        x509.DNSName("kubernetes.default.svc"),
                        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                        x509.IPAddress(ipaddress.IPv4Address("10.0.0.1")),
                        *(x509.IPAddress(ipaddress.IPv4Address(ip)) for ip in extra_ips),
                    ]
                ),
                critical=False,
            )
        signed = builder.sign(ca_key, hashes.SHA256())
        _write(cert, signed.public_bytes(serialization.Encoding.PEM))
        _write(key, _key_pem(leaf_key), private=True)

    leaf("kube-apiserver", None, True, pki.serving_cert, pki.serving_key)
    leaf("aigw-dev-admin", "system:masters", False, pki.admin_cert, pki.admin_key)
    leaf("system:kube-controller-manager", None, False, pki.kcm_cert, pki.kcm_key)
    leaf("system:kube-scheduler", None, False, pki.scheduler_cert, pki.scheduler_key)
    leaf(f"system:node:{NODE_NAME}", "system:nodes", False, pki.node_cert, pki.node_key)
    leaf(
        "kube-apiserver-kubelet-client",
        "system:masters",
        False,
        pki.kubelet_client_cert,
        pki.kubelet_client_key,
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(pki.sa_key, _key_pem(sa_key), private=True)
    _write(
        pki.sa_pub,
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return pki
