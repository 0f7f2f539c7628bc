"""AI provider rows: upsert by owner identity, key-set replacement, soft delete, read back.

One module per concern: ``rows`` (the SQL every provider statement shares and the row
mapping), ``upsert`` (the executor of the pure plan, ``plan``), ``reads`` (get, drift check,
preview, versions, hostname peers) and ``delete``; the claim rule is ``claim``'s and every
ownership-record statement ``ownership``'s. :class:`ProviderOps` is all of them bound to one
key ring, schema capabilities and audit actor.

Every public operation runs in **one** short READ COMMITTED transaction on the connection it
is given, and follows coderd's rules (reference §5, §8, §9):

* ``pg_advisory_xact_lock(10)`` first, the lock coderd's env seed and its provider readers
  take, so a gateway never reads a half-written provider and we never race the seed;
* the primary encryption key is proven active before anything encrypted is written;
* ``pg_notify('ai_providers_changed', '')`` in the same transaction after a real change (it
  is delivered at commit), and only then: running gateways reload on that signal alone;
* coderd-shaped audit rows for real changes, in the same transaction.

Ownership: every row we write is recorded in ``aigateway_operator.owners`` under the owner's
identity ``(instance, kind, namespace, name)`` (see ``ownership``), and every call acts only
on the row recorded for that identity: never on a row found by name or id alone. Who may take
a name is the claim rule (``claim``), the same for upsert and preview. A provider we create
gets the id ``uuid5(namespace, "ai_provider:" + identity)``: the same object re-created
(after a cluster rebuild from the same Git) finds its row again, by its record.

No-op detection: desired state is canonicalised (``canonical``) and compared with the stored
row *decrypted* and decoded as coderd decodes it (``settings``), key rows included, by the
pure :func:`plan.plan_provider` that the read-only check shares; when equal, nothing is
written at all: no UPDATE, no ``updated_at`` bump, no notify, no audit. Ciphertext under a
non-primary key, or plaintext (NULL key id) once keys are configured, is rewritten under the
primary key even then (a silent re-encryption: readers see identical plaintext, so no notify
and no audit). A key row or settings blob of ours whose ciphertext no longer decrypts is
rewritten from the desired value; one under a key we were not given still fails closed
(:class:`UnknownKeyReference`). A row with a type or settings ``_type`` this operator does
not know is left alone (``action="left_alone"``). Coder-owned columns
(``DesiredProvider.coder_owned``) are written on create and revive only; the plan leaves them
alone on a live row (an adopted one included), so an edit made in Coder stays.

Versions: every result carries the :class:`RowVersion` the call left (``updated_at``,
``deleted`` and a token over the ``xmin`` of the provider row and its key rows), so a caller
can tell its own writes from anybody else's, key-row edits included.
"""

from __future__ import annotations

from aigateway_operator.store.providers.delete import ProviderDelete
from aigateway_operator.store.providers.reads import ProviderReads
from aigateway_operator.store.providers.rows import (
    AI_PROVIDERS_LOCK_ID,
    NOTIFY_CHANNEL,
    OWNER_NAMESPACE,
    provider_row_id,
)
from aigateway_operator.store.providers.upsert import ProviderUpsert

__all__ = [
    "AI_PROVIDERS_LOCK_ID",
    "NOTIFY_CHANNEL",
    "OWNER_NAMESPACE",
    "ProviderOps",
    "provider_row_id",
]


class ProviderOps(ProviderUpsert, ProviderReads, ProviderDelete):
    """Provider operations bound to one key ring, schema capabilities and audit actor."""
