"""Apply the CRDs in ``crds/`` to an API server and wait until they are Established."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

#: ``crds/`` of this checkout (the tool lives in the repository, at ``tools/devenv/``).
REPO_CRDS = Path(__file__).resolve().parents[2] / "crds"


def apply_crds(kubeconfig: Path, crds_dir: Path, timeout: float = 60.0) -> list[str]:
    """Create or replace every CRD in ``crds_dir``; return their names once all are Established."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    docs: list[dict[str, Any]] = []
    for path in sorted(crds_dir.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    if not crds:
        return []
    api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        ext = client.ApiextensionsV1Api(api_client)
        for crd in crds:
            name = crd["metadata"]["name"]
            try:
                ext.create_custom_resource_definition(crd)  # type: ignore[arg-type]
            except ApiException as exc:
                if exc.status != 409:
                    raise
                current = ext.read_custom_resource_definition(name)
                meta = current.metadata
                crd["metadata"]["resourceVersion"] = meta.resource_version if meta else None
                ext.replace_custom_resource_definition(name, crd)  # type: ignore[arg-type]
        names = [c["metadata"]["name"] for c in crds]
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in list(pending):
                obj = ext.read_custom_resource_definition(name)
                conds = (obj.status.conditions or []) if obj.status else []
                if any(c.type == "Established" and c.status == "True" for c in conds):
                    pending.discard(name)
            if pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"CRDs not Established after {timeout}s: {sorted(pending)}")
                time.sleep(0.1)
        return names
    finally:
        api_client.close()
