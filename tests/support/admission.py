"""Requests as ``kubectl`` makes them, with what ``kubectl`` prints: the admission warnings.

The generated ``kubernetes`` API methods drop response headers, and the API server returns
admission warnings only as ``Warning: 299 - "text"`` headers (RFC 7234; ``kubectl`` prints
each as ``Warning: text``). :func:`request` uses the client's public request builder and
returns the status, the body and the warnings, parsed as kubectl parses them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

#: One warning value: ``299 - "text"`` (text escapes ``"`` and ``\\`` with a backslash).
_WARNING = re.compile(r'\s*\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] = field(repr=False)
    warnings: list[str]

    @property
    def message(self) -> str:
        """The API server's message (a denial's text)."""
        return str(self.body.get("message", ""))

    def plans(self) -> list[str]:
        return [w for w in self.warnings if w.startswith("plan: ")]


def parse_warnings(values: list[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        for match in _WARNING.finditer(value):
            out.append(re.sub(r"\\(.)", r"\1", match.group(1)))
    return out


def request(
    api: client.ApiClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    dry_run: bool = False,
    content_type: str = "application/json",
) -> Answer:
    """One request (``dry_run``: ``?dryRun=All``, as ``kubectl --dry-run=server``)."""
    query = [("dryRun", "All")] if dry_run else []
    method, url, headers, payload, _ = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=query,
        header_params={"Accept": "application/json", "Content-Type": content_type},
        body=body,
        auth_settings=["BearerToken"],
    )
    resp = api.call_api(method, url, header_params=headers, body=payload)
    resp.read()
    raw = resp.getheaders()
    values = list(raw.getlist("Warning")) if hasattr(raw, "getlist") else []
    data = json.loads(resp.data) if resp.data else {}
    return Answer(int(resp.status), data, parse_warnings(values))


def objects_path(group: str, version: str, namespace: str, plural: str, name: str = "") -> str:
    path = f"/apis/{group}/{version}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path
