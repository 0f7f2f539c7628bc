"""Admission for AIGatewayCoderdKey: deny what can never converge, and show the plan.

- **denied**: a key name held by a live ``ai_gateway_keys`` row that is not this object's
  (a key made in Coder, another object, another operator install: the message names it,
  as the pass's ``NameConflict`` would); a ``secretName`` that is an existing Secret this
  object does not own (the pass never overwrites it: ``SecretNotOwned``). A new object owns
  no Secret yet, so on a create any existing Secret of that name is denied;
- **warned**: the detected Coder has no gateway keys, or the database is unreachable (then
  nothing is checked against Coder);
- **plan**: ``issue key 'x' into Secret 'x-key'``, ``rotate key 'x' (generation 1 -> 2)``,
  a new key into a renamed Secret, or ``no change``. The plaintext does not exist yet and
  never appears: only names.

Reads only: the ownership records (``store.gateway_key_state``), the name's holder
(``store.gateway_key_name_holder``) and the Secret's metadata and owner references.
"""

from __future__ import annotations

from aigateway_operator.api.common import InvalidSpecError
from aigateway_operator.api.gatewaykey import GatewayKeySpec
from aigateway_operator.api.identity import AIGATEWAYCODERDKEY
from aigateway_operator.controllers.admission import Review, Verdict
from aigateway_operator.controllers.gatewaykey.status import parse_status
from aigateway_operator.controllers.shared import ObjectIdentity
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.kube import KubeError
from aigateway_operator.store import GatewayKeyOwnership, NotSupportedByCoder, StoreError

__all__ = ["review_gateway_key"]

KIND = AIGATEWAYCODERDKEY.kind


async def review_gateway_key(wiring: Wiring, review: Review) -> Verdict:
    """The verdict on one AIGatewayCoderdKey create or update (reads only)."""
    verdict = Verdict()
    if not review.checked:
        return verdict
    try:
        spec = GatewayKeySpec.from_body(dict(review.spec) if review.spec else None)
        name = spec.effective_key_name(review.name)
        secret_name = spec.effective_secret_name(review.name)
    except InvalidSpecError as exc:
        verdict.warn(str(exc))
        return verdict
    ident = ObjectIdentity(AIGATEWAYCODERDKEY, review.namespace, review.name, review.uid, 0)
    owner = ident.owner(wiring.settings.instance_id)

    try:
        sec = await wiring.kube.read_secret(review.namespace, secret_name)
    except KubeError as exc:
        verdict.warn(f"spec.secretName {secret_name!r}: could not be read ({exc}); not checked")
    else:
        if sec is not None and (not review.uid or review.uid not in sec.owner_uids):
            return verdict.deny(
                f"spec.secretName {secret_name!r}: Secret {secret_name!r} exists in namespace "
                f"{review.namespace!r} and is not owned by this {KIND}; the operator never "
                "overwrites it. Delete that Secret or set another spec.secretName"
            )

    try:
        holder = await wiring.store.gateway_key_name_holder(owner, name)
        own = await wiring.store.gateway_key_state(owner)
    except NotSupportedByCoder as exc:
        verdict.warn(f"{exc} (the object's status will say NotSupportedByCoder)")
        return verdict
    except StoreError as exc:
        verdict.warn(
            f"Coder's database could not be read ({exc}); the key name and the plan were not "
            "checked, the object's status will report them"
        )
        return verdict
    if holder is not None:
        return verdict.deny(
            f"spec.keyName {name!r}: the AI Gateway key name is held by {holder}; choose "
            "another spec.keyName"
        )
    verdict.plan(_plan(review, spec, name, secret_name, own))
    return verdict


def _plan(
    review: Review, spec: GatewayKeySpec, name: str, secret_name: str, own: GatewayKeyOwnership
) -> str:
    status = parse_status(dict(review.status) if review.status else None)
    if own.current is None and not own.current_revoked:
        return f"issue key {name!r} into Secret {secret_name!r}"
    if own.current_revoked:
        return (
            f"issue a new key {name!r} into Secret {secret_name!r} (the current one was "
            "deleted in Coder)"
        )
    if status.secret_name and status.secret_name != secret_name:
        return (
            f"issue a new key {name!r} into Secret {secret_name!r} (spec.secretName changed; "
            f"Secret {status.secret_name!r} is deleted)"
        )
    before = status.rotation.generation if status.rotation else None
    if before is None:
        old = (review.old_spec or {}).get("rotation") or {}
        before = int(old.get("generation") or 0)
    after = spec.rotation.generation
    if after != before:
        return (
            f"rotate key {name!r} (generation {before} -> {after}) into Secret "
            f"{secret_name!r}; the old key keeps working for {spec.rotation.grace_period}"
        )
    return f"no change to key {name!r}"
