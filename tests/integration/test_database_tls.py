"""Database TLS as the chart configures it: a local Postgres 15 serving TLS with a certificate
from a CA made in the test, and psycopg (the operator's driver, through libpq) verifying it
with ``sslmode=verify-full``: with the CA it connects over TLS; without it, with another CA,
or for another host name it refuses. The chart mounts the CA and sets PGSSLROOTCERT
(tests/integration/test_chart.py::test_database_ca_is_mounted_where_the_dsn_points).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.wait import wait_for
from tools.devenv.postgres import PostgresServer

pytestmark = pytest.mark.integration


@dataclass
class Ca:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return Ca(cert, key)


def server_cert(ca: Ca) -> tuple[bytes, bytes]:
    """A serving certificate for localhost / 127.0.0.1 signed by ``ca``: (cert, key) PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def enable_tls(server: PostgresServer, cert: bytes, key: bytes) -> None:
    """Give the running server a certificate and turn ssl on (a reload, no restart)."""
    owner = server.data_dir.stat()
    for name, data, mode in (("server.crt", cert, 0o644), ("server.key", key, 0o600)):
        path = server.data_dir / name
        path.write_bytes(data)
        os.chown(path, owner.st_uid, owner.st_gid)
        path.chmod(mode)
    with psycopg.connect(server.superuser_dsn, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET ssl_cert_file = 'server.crt'")
        conn.execute("ALTER SYSTEM SET ssl_key_file = 'server.key'")
        conn.execute("ALTER SYSTEM SET ssl = on")
        conn.execute("SELECT pg_reload_conf()")

    def ssl_on() -> bool:
        with psycopg.connect(server.superuser_dsn, autocommit=True) as conn:
            row = conn.execute("SHOW ssl").fetchone()
        return row == ("on",)

    wait_for(ssl_on, 30, "Postgres to reload with ssl = on")


@pytest.fixture(scope="module")
def tls_postgres() -> Iterator[tuple[PostgresServer, Ca]]:
    base = Path(tempfile.mkdtemp(prefix="aigw-test-pgtls-"))
    server = PostgresServer.start(base / "server")
    try:
        ca = make_ca("aigw test database CA")
        enable_tls(server, *server_cert(ca))
        yield server, ca
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def dsn(server: PostgresServer, host: str = "localhost", **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"postgresql://aigw:{server.password}@{host}:{server.port}/coder" + (
        f"?{query}" if query else ""
    )


@pytest.fixture
def no_libpq_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CA from the environment or ~/.postgresql: only what the test passes counts."""
    for var in list(os.environ):
        if var.startswith("PG"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_verify_full_with_the_ca_connects_over_tls(
    tls_postgres: tuple[PostgresServer, Ca], no_libpq_env: Path
) -> None:
    server, ca = tls_postgres
    ca_file = no_libpq_env / "ca.crt"
    ca_file.write_bytes(ca.pem())
    with psycopg.connect(dsn(server, sslmode="verify-full", sslrootcert=str(ca_file))) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)
        assert conn.info.pgconn.ssl_in_use


def test_pgsslrootcert_from_the_environment_is_used(
    tls_postgres: tuple[PostgresServer, Ca], no_libpq_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the chart does with database.tls.caSecret: PGSSLROOTCERT names the mounted CA,
    the URL only says sslmode=verify-full."""
    server, ca = tls_postgres
    ca_file = no_libpq_env / "mounted-ca.crt"
    ca_file.write_bytes(ca.pem())
    monkeypatch.setenv("PGSSLROOTCERT", str(ca_file))
    with psycopg.connect(dsn(server, sslmode="verify-full")) as conn:
        assert conn.info.pgconn.ssl_in_use


def test_verify_full_without_the_ca_is_refused(
    tls_postgres: tuple[PostgresServer, Ca], no_libpq_env: Path
) -> None:
    server, _ = tls_postgres
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(dsn(server, sslmode="verify-full"), connect_timeout=10)
    assert "root certificate file" in str(info.value)


def test_verify_full_with_another_ca_is_refused(
    tls_postgres: tuple[PostgresServer, Ca], no_libpq_env: Path
) -> None:
    server, _ = tls_postgres
    other = no_libpq_env / "other-ca.crt"
    other.write_bytes(make_ca("someone else's CA").pem())
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(
            dsn(server, sslmode="verify-full", sslrootcert=str(other)), connect_timeout=10
        )
    assert "certificate verify failed" in str(info.value)


def test_verify_full_checks_the_host_name(
    tls_postgres: tuple[PostgresServer, Ca], no_libpq_env: Path
) -> None:
    """The certificate is for localhost/127.0.0.1: reached as another name, verify-full
    refuses where verify-ca (chain only) accepts."""
    server, ca = tls_postgres
    ca_file = no_libpq_env / "ca.crt"
    ca_file.write_bytes(ca.pem())
    other_name = dsn(
        server, host="db.example.internal", hostaddr="127.0.0.1", sslrootcert=str(ca_file)
    )
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(other_name + "&sslmode=verify-full", connect_timeout=10)
    assert "does not match host name" in str(info.value)
    with psycopg.connect(other_name + "&sslmode=verify-ca", connect_timeout=10) as conn:
        assert conn.info.pgconn.ssl_in_use
