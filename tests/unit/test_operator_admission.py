"""How the webhook is wired into kopf: handlers only when enabled, the failure policy, the
server's certificate (kopf's self-signing needs packages we do not ship)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import kopf
import pytest
from cryptography import x509

from aigateway_operator.config import Settings
from aigateway_operator.operator import build_registry
from aigateway_operator.operator.admission import configure_admission, webhook_server
from aigateway_operator.operator.webhook_tls import SelfSignedWebhookServer, self_signed_pair

pytestmark = pytest.mark.unit


def settings(**kw: Any) -> Settings:
    return Settings(database_url="postgresql://u:p@localhost/coder", **kw)  # type: ignore[call-arg]


def test_no_webhook_handlers_unless_enabled() -> None:
    assert build_registry(settings())._webhooks.get_all_handlers() == []


@pytest.mark.parametrize(("policy", "ignore"), [("Ignore", True), ("Fail", False)])
def test_handlers_for_both_kinds_with_the_failure_policy(policy: str, ignore: bool) -> None:
    registry = build_registry(settings(admission=True, admission_failure_policy=policy))
    handlers = registry._webhooks.get_all_handlers()
    assert sorted(h.id for h in handlers) == ["validate-aigatewaycoderdkey", "validate-aiprovider"]
    for h in handlers:
        assert h.ignore_failures is ignore
        assert h.persistent is True  # the configuration stays while the operator is down
        assert h.side_effects is True  # NoneOnDryRun: a real request's requester is recorded
        assert sorted(h.operations or []) == ["CREATE", "UPDATE"]


def test_default_failure_policy_is_ignore_and_admission_is_off() -> None:
    s = settings()
    assert s.admission is False
    assert s.admission_failure_policy.value == "Ignore"


def test_kopf_settings_get_the_server_and_the_managed_name() -> None:
    ks = kopf.OperatorSettings()
    configure_admission(ks, settings())
    assert ks.admission.server is None
    configure_admission(ks, settings(admission=True, admission_config_name="x.example.com"))
    assert isinstance(ks.admission.server, SelfSignedWebhookServer)
    assert ks.admission.managed == "x.example.com"
    ks = kopf.OperatorSettings()
    configure_admission(ks, settings(admission=True, admission_config_name=""))
    assert ks.admission.managed is None


def test_cert_files_need_both_halves(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="AIGW_ADMISSION_CERT_FILE"):
        settings(admission_cert_file=tmp_path / "tls.crt")
    s = settings(
        admission=True,
        admission_cert_file=tmp_path / "tls.crt",
        admission_key_file=tmp_path / "tls.key",
    )
    server = webhook_server(s)
    assert type(server) is kopf.WebhookServer
    assert server.certfile == tmp_path / "tls.crt"


def test_self_signed_pair_loads_and_names_the_hosts(tmp_path: Path) -> None:
    chain, key = self_signed_pair(["svc.ns.svc", "127.0.0.1", "0.0.0.0"])  # noqa: S104
    certs = x509.load_pem_x509_certificates(chain)
    leaf, ca = certs
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["svc.ns.svc"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert leaf.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    (tmp_path / "c.pem").write_bytes(chain)
    (tmp_path / "k.pem").write_bytes(key)
    ctx = ssl.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    client = ssl.create_default_context(cadata=chain.decode())
    assert client.get_ca_certs()  # the bundle kopf hands the API server is loadable
    assert SelfSignedWebhookServer.build_certificate(["h"])[0].count(b"BEGIN CERTIFICATE") == 2
