"""What kopf lacks for its webhook server: a self-signed certificate without extra packages.

kopf's :class:`kopf.WebhookServer` serves HTTPS (the API server calls webhooks only over
TLS) and, given no certificate files, makes a self-signed one in ``build_certificate`` —
with ``certbuilder`` and ``oscrypto``, which kopf lists only as development extras and this
project does not install (kopf then raises ``MissingDependencyError``). ``cryptography`` is
already a dependency (the dbcrypt cipher), so :class:`SelfSignedWebhookServer` overrides
just that one method: a CA made for this process, and a server certificate it signs for
the names the API server calls. kopf does the rest unchanged: it loads the pair into its
SSL context and hands the PEM it got back to the API server as the webhook's ``caBundle``
(here: the server certificate followed by the CA, so the chain verifies either way).

Nothing is written to disk by us (kopf loads the pair through temporary files it deletes)
and the keys live only in this process: a restart makes a new pair, and kopf's managed
webhook configuration is patched with the new ``caBundle`` at start. With several replicas
each makes its own: give them one certificate instead (``AIGW_ADMISSION_CERT_FILE`` /
``_KEY_FILE`` / ``_CA_FILE``, e.g. from cert-manager or the chart's generated Secret).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Collection

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["SelfSignedWebhookServer", "self_signed_pair"]

#: How long the generated certificates are valid (a process lives far shorter).
VALIDITY = datetime.timedelta(days=365)


def _sans(hostnames: Collection[str]) -> tuple[list[x509.GeneralName], str]:
    """Subject alternative names (IPs as IPs, the rest as DNS names) and a common name."""
    names: list[x509.GeneralName] = []
    first_dns = ""
    for host in dict.fromkeys(h for h in hostnames if h):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            names.append(x509.DNSName(host))
            first_dns = first_dns or host
            continue
        if not ip.is_unspecified:
            names.append(x509.IPAddress(ip))
    common = first_dns or next(
        (str(n.value) for n in names if isinstance(n, x509.IPAddress)), "aigateway-operator"
    )
    return names, common


def self_signed_pair(
    hostnames: Collection[str], password: str | None = None
) -> tuple[bytes, bytes]:
    """``(certificate chain PEM, private key PEM)``: a server certificate for ``hostnames``
    followed by the CA that signed it, both made now (EC P-256)."""
    now = datetime.datetime.now(datetime.UTC)
    sans, common = _sans(hostnames)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aigateway-operator webhook CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
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
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM
    )
    return chain, key_pem


class SelfSignedWebhookServer(kopf.WebhookServer):
    """kopf's webhook server, self-signing with ``cryptography`` (see the module docstring)."""

    @staticmethod
    def build_certificate(
        hostnames: Collection[str], password: str | None = None
    ) -> tuple[bytes, bytes]:
        return self_signed_pair(hostnames, password)
