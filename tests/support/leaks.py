"""Where the leak checks look for a planted value: what the API server serves (raw JSON text
and every decoded string) and every row of the database, as text; :func:`surfaces` reads them
all at once, and :class:`SecretHistory` collects every value the namespace's Secrets held (the
keys an operator issued over a test, rotated away ones included)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from kubernetes import client, watch

GROUP, VERSION = "aigateway.dev", "v1alpha1"


def raw_get(api: client.ApiClient, path: str) -> str:
    """A GET's body exactly as the API server sent it (JSON text, escapes and all)."""
    method, url, headers, _, _ = api.param_serialize(
        "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    response = api.call_api(method, url, headers)
    response.read()
    assert response.status == 200
    return str(response.data.decode())


def strings(node: Any) -> Iterator[str]:
    """Every string in decoded JSON, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


def database_text(dsn: str) -> str:
    """Every row of every table of Coder's schema and the operator's, as Postgres prints it:
    a search for a value that must never be stored (a key, a token, a plaintext)."""
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname IN (current_schema(), 'aigateway_operator') ORDER BY 1"
        ).fetchall()
        return "\n".join(
            str(row[0])
            for (table,) in tables
            for row in conn.execute(f"SELECT t::text FROM {table} t").fetchall()  # noqa: S608
        )


@dataclass
class Surfaces:
    """Everything a secret could leak to, read at one moment: each place's text, and every
    string the API server's JSON decodes to (a value escaped in the raw text shows there)."""

    places: dict[str, str]
    decoded: list[str]

    def holding(self, needle: str) -> list[str]:
        """Where ``needle`` is (empty when nowhere)."""
        escaped = json.dumps(needle)[1:-1]  # as JSON text carries it
        found = [w for w, text in self.places.items() if needle in text or escaped in text]
        if any(needle in s for s in self.decoded):
            found.append("a decoded API string")
        return found


def surfaces(
    api: client.ApiClient,
    namespace: str,
    dsn: str,
    plurals: Sequence[str],
    **texts: str,
) -> Surfaces:
    """Every surface this module offers for ``namespace``: the objects of ``plurals`` (our
    group) and the namespace's Events as the API server serves them (raw text and decoded
    strings), every row of the database, and the given ``texts`` (the log, the metrics)."""
    raws = {
        f"objects/{plural}": raw_get(
            api, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"
        )
        for plural in plurals
    }
    raws["events"] = raw_get(api, f"/api/v1/namespaces/{namespace}/events")
    decoded = [s for raw in raws.values() for s in strings(json.loads(raw))]
    return Surfaces({**raws, "database": database_text(dsn), **texts}, decoded)


class SecretHistory:
    """Every value any Secret of ``namespace`` held while inside (a watch from a list, so no
    version is missed): the keys an operator issued, rotated away or re-issued, not only the
    last ones. A watch that cannot continue (its history expired) is an error, not a gap."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.values: set[str] = set()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()

    def _record(self, secret: client.V1Secret) -> None:
        with self._lock:
            for raw in (secret.data or {}).values():
                self.values.add(base64.b64decode(raw).decode(errors="replace"))

    def _run(self) -> None:
        core = client.CoreV1Api(self.api)
        try:
            listed = core.list_namespaced_secret(self.namespace)
            for secret in listed.items:
                self._record(secret)
            version = listed.metadata.resource_version
            while not self._stop.is_set():
                stream = watch.Watch()  # type: ignore[no-untyped-call]
                for event in stream.stream(
                    core.list_namespaced_secret,
                    self.namespace,
                    resource_version=version,
                    allow_watch_bookmarks=True,  # a quiet namespace keeps a fresh version
                    timeout_seconds=2,  # to look at the stop flag, not synchronisation
                ):
                    if event["type"] == "ERROR":
                        raise RuntimeError(f"the Secret watch ended: {event['raw_object']}")
                    if event["type"] != "BOOKMARK":
                        self._record(event["object"])
                    version = event["object"].metadata.resource_version
        except Exception as exc:  # reported by snapshot(), never skipped
            self.errors.append(repr(exc))

    def __enter__(self) -> SecretHistory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def snapshot(self) -> set[str]:
        """Every value seen so far; fails if the watch broke (it would have missed some)."""
        assert not self.errors, f"the Secret history is incomplete: {self.errors}"
        with self._lock:
            return set(self.values)
