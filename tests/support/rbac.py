"""Service accounts on the real API server: a token for one, a client that authenticates
only with it, and a namespaced grant on Secrets (for tests of RBAC and bearer-token auth)."""

from __future__ import annotations

from kubernetes import client


def sa_token(
    k8s_api: client.ApiClient, namespace: str, sa: str, audience: str | None = None
) -> str:
    """A 10-minute token of ``namespace/sa`` (TokenRequest), for ``audience`` if given."""
    core = client.CoreV1Api(k8s_api)
    spec = client.V1TokenRequestSpec(
        audiences=[audience] if audience else [], expiration_seconds=600
    )
    req = core.create_namespaced_service_account_token(
        sa, namespace, client.AuthenticationV1TokenRequest(spec=spec)
    )
    return str(req.status.token)


def client_with_token(k8s_api: client.ApiClient, token: str) -> client.ApiClient:
    """A client of the same server that authenticates with ``token`` only."""
    cfg = client.Configuration()
    cfg.host = k8s_api.configuration.host
    cfg.ssl_ca_cert = k8s_api.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)


def grant_secrets(
    k8s_api: client.ApiClient, namespace: str, sa: str, name: str, verbs: list[str]
) -> None:
    """Role ``name`` with ``verbs`` on Secrets in ``namespace``, bound to ``sa`` there."""
    rbac = client.RbacAuthorizationV1Api(k8s_api)
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name=name),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=verbs)],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=name
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=sa, namespace=namespace)],
        ),
    )
