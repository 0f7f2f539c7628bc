"""What a GitOps tool does with the chart, modelled on a real API server.

Argo CD renders with ``helm template --include-crds --api-versions <every group/version and
group/version/kind the cluster serves>`` and applies the result itself, wave by wave (CRDs of a
wave first, and a wave only once the one before is healthy); with ``prune`` it then deletes
every object that carries its tracking label (``app.kubernetes.io/instance`` by default, set
to the Application's name) and is no longer rendered, *except* those whose
``argocd.argoproj.io/sync-options`` holds ``Prune=false`` (gitops-engine's rule: the option
string is split on commas and trimmed, and the exact option is looked for). ``kubectl apply
--prune`` has no such exception, so the pruning here is ours, written after Argo CD's rule:
tests assert both that the annotation is on every object that must survive and that a prune
honouring it leaves them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.support.wait import wait_for
from tools.devenv.helm import apply_manifests

SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
#: What keeps an object from each tool's deletion (templates/_gitops.tpl).
KEEP_ANNOTATIONS = {
    "helm.sh/resource-policy": "keep",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}
KEEP_SYNC_OPTIONS = ("Prune=false", "Delete=false")
#: Argo CD's default tracking label; the chart sets it to the release name.
TRACKING_LABEL = "app.kubernetes.io/instance"


def sync_options(obj: Mapping[str, Any]) -> list[str]:
    """The object's Argo CD sync options, split and trimmed as gitops-engine does."""
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(SYNC_OPTIONS, "")
    return [o.strip() for o in str(raw).split(",") if o.strip()]


def argo_prunes(obj: Mapping[str, Any]) -> bool:
    """Whether Argo CD's prune would delete ``obj`` once it left the render."""
    return "Prune=false" not in sync_options(obj)


def argo_api_versions(api: Any) -> list[str]:
    """What Argo CD passes as ``--api-versions`` for this cluster: every served group/version,
    and every group/version/kind (from discovery, as Argo CD's cluster cache has them)."""
    from kubernetes import client

    lists = [("v1", client.CoreV1Api(api).get_api_resources())]
    custom = client.CustomObjectsApi(api)
    for group in client.ApisApi(api).get_api_versions().groups:
        lists += [
            (v.group_version, custom.get_api_resources(group.name, v.version))
            for v in group.versions
        ]
    out: set[str] = set()
    for group_version, resources in lists:
        out.add(group_version)
        for res in resources.resources:
            if "/" not in res.name:  # not a subresource
                out.add(f"{group_version}/{res.kind}")
    return sorted(out)


def _wave(doc: Mapping[str, Any]) -> int:
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    return int(annotations.get(SYNC_WAVE, "0"))


def _tracked(doc: Mapping[str, Any], app: str) -> dict[str, Any]:
    """``doc`` with Argo CD's tracking label, which it sets on everything it applies."""
    out = copy.deepcopy(dict(doc))
    meta = out.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), TRACKING_LABEL: app}
    return out


def _key(doc: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta = doc["metadata"]
    return (doc["apiVersion"], doc["kind"], meta.get("namespace") or "", meta["name"])


@dataclass
class SyncResult:
    applied: list[tuple[str, str, str, str]] = field(default_factory=list)
    pruned: list[tuple[str, str, str, str]] = field(default_factory=list)
    prune_skipped: list[tuple[str, str, str, str]] = field(default_factory=list)


def argo_sync(
    api: Any,
    docs: Sequence[Mapping[str, Any]],
    *,
    app: str,
    previous: Sequence[Mapping[str, Any]] = (),
    prune: bool = True,
) -> SyncResult:
    """Apply ``docs`` as Argo CD's sync does (each labelled ``TRACKING_LABEL=app``,
    server-side apply, wave by wave, each wave's CRDs first and Established before its other
    objects), then, with ``prune``, delete the live top-level objects labelled
    ``TRACKING_LABEL=app`` of the kinds ``previous`` or ``docs`` rendered that ``docs`` no
    longer holds, skipping those annotated ``Prune=false``.
    """
    result = SyncResult()
    docs = [_tracked(d, app) for d in docs]
    for wave in sorted({_wave(d) for d in docs}):
        batch = [d for d in docs if _wave(d) == wave]
        apply_manifests(api, batch, field_manager="argocd-controller")
        result.applied += [_key(d) for d in batch]
    if prune:
        _prune(api, docs, previous, app, result)
    return result


def _prune(
    api: Any,
    docs: Sequence[Mapping[str, Any]],
    previous: Sequence[Mapping[str, Any]],
    app: str,
    result: SyncResult,
) -> None:
    from kubernetes import dynamic

    dyn = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]
    dyn.resources.invalidate_cache()
    wanted = {_key(d) for d in docs}
    kinds = sorted({(d["apiVersion"], d["kind"]) for d in (*previous, *docs)})
    for api_version, kind in kinds:
        resource = dyn.resources.get(api_version=api_version, kind=kind)
        for item in resource.get(label_selector=f"{TRACKING_LABEL}={app}").items:
            live = item.to_dict()
            meta = live["metadata"]
            key = (api_version, kind, meta.get("namespace") or "", meta["name"])
            if key in wanted or meta.get("ownerReferences"):
                continue  # rendered, or not top-level (Argo CD prunes only what it applied)
            if not argo_prunes(live):
                result.prune_skipped.append(key)
                continue
            resource.delete(name=meta["name"], namespace=meta.get("namespace"))
            result.pruned.append(key)


def keep_violations(docs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The objects among ``docs`` missing any annotation that keeps them from a tool's
    deletion (empty when every one carries all of them)."""
    bad = []
    for doc in docs:
        annotations = (doc.get("metadata") or {}).get("annotations") or {}
        missing = [k for k, v in KEEP_ANNOTATIONS.items() if annotations.get(k) != v]
        missing += [o for o in KEEP_SYNC_OPTIONS if o not in sync_options(doc)]
        if missing:
            bad.append(f"{doc['kind']}/{doc['metadata']['name']}: {missing}")
    return bad


#: The CRDs the chart brings (its templates and its crds/ directory).
CHART_CRDS = (
    "aiproviders.aigateway.dev",
    "aigatewaycoderdkeys.aigateway.dev",
    "kopfpeerings.kopf.dev",
    "clusterkopfpeerings.kopf.dev",
)


def remove_chart_crds(api: Any, timeout: float = 120.0) -> None:
    """Bring the cluster back to one that never had the chart's CRDs: release every remaining
    object's finalizers (no operator runs any more), delete the CRDs, and wait until the API
    server has removed them. Tests that install the chart "from zero" on the shared node run
    this before and after, so each one sees a fresh cluster and leaves no CRD owned by a
    release that no longer exists (Helm refuses to adopt such CRDs into another release)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    ext = client.ApiextensionsV1Api(api)
    custom = client.CustomObjectsApi(api)
    present = {c.metadata.name for c in ext.list_custom_resource_definition().items}
    for name in CHART_CRDS:
        if name not in present:
            continue
        plural, group = name.split(".", 1)
        for obj in custom.list_cluster_custom_object(group, _served_version(ext, name), plural)[
            "items"
        ]:
            meta = obj["metadata"]
            if meta.get("finalizers"):
                patch = {"metadata": {"finalizers": None}}
                version = _served_version(ext, name)
                try:
                    if meta.get("namespace"):
                        custom.patch_namespaced_custom_object(
                            group, version, meta["namespace"], plural, meta["name"], patch
                        )
                    else:
                        custom.patch_cluster_custom_object(
                            group, version, plural, meta["name"], patch
                        )
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        try:
            ext.delete_custom_resource_definition(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    wait_for(
        lambda: (
            not (
                {c.metadata.name for c in ext.list_custom_resource_definition().items}
                & set(CHART_CRDS)
            )
        ),
        timeout,
        "the chart's CRDs to be removed",
        interval=0.5,
    )


def _served_version(ext: Any, name: str) -> str:
    crd = ext.read_custom_resource_definition(name)
    return str(next(v.name for v in crd.spec.versions if v.storage))
