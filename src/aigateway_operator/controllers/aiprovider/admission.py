"""Admission for AIProvider: deny what can never converge, warn, and show the plan.

Inputs are gathered first (the spec parsed as a pass parses it, the referenced Secrets
resolved by the pass's own rules, the name claims of the in-memory index, the store's
read-only :meth:`~aigateway_operator.store.Store.preview_provider`), then judged:

- **denied**: a create or spec update that changes which Secret is used, or where its values
  are sent (``spec.baseURL``, or the Bedrock endpoint), when the requester may not ``get``
  that Secret themselves (a SubjectAccessReview as the requester: user, groups, uid, extra;
  its answer does not depend on whether the Secret exists, so it reveals nothing about it);
  ``spec.providerName`` held by a live Coder row another owner holds (a provider
  made in Coder's UI while adoption is off or not allowed in the namespace, an object of
  this or another operator install), adoption of a row of another ``type``, or a name
  another object of this cluster claims (the index; the message names it);
- **warned**: a referenced Secret or key missing, or not opted in (word for word the
  ``SecretNotFound`` message of the status: nothing about a Secret that does not allow this
  AIProvider is revealed), a value that fails the checks, a spec the detected Coder cannot
  store, the last STS check failed (from the current status), the database unreachable
  (then nothing is checked against Coder);
- **plan**: ``create`` / ``update`` (columns; keys added and removed, masked) / ``adopt`` /
  ``restore`` / ``no change``.

The index is fed by kopf's watch events, which stop while peering pauses a replica: there
it is what the replica last saw. The database check does not depend on it.
"""

from __future__ import annotations

from aigateway_operator.api.aiprovider import AIProviderSpec, InvalidSpecError
from aigateway_operator.api.common import ConditionStatus, ConditionType, Reason
from aigateway_operator.api.identity import AIPROVIDER
from aigateway_operator.controllers.admission import Review, Verdict
from aigateway_operator.controllers.aiprovider.index import ProviderIndex
from aigateway_operator.controllers.aiprovider.reading import read_provider
from aigateway_operator.controllers.aiprovider.reconcile import desired_provider
from aigateway_operator.controllers.aiprovider.secrets import (
    ProviderSecretRefs,
    ProviderSecrets,
    resolve_provider_secrets,
    spec_destination,
)
from aigateway_operator.controllers.aiprovider.status import parse_status
from aigateway_operator.controllers.shared import ObjectIdentity
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.store import (
    InvalidName,
    InvalidProvider,
    NameConflict,
    NameTaken,
    NotSupportedByCoder,
    ProviderPreview,
    StoreError,
    TypeMismatch,
)

__all__ = ["describe_plan", "review_provider"]

_FIELD = "spec.providerName"


async def review_provider(wiring: Wiring, index: ProviderIndex, review: Review) -> Verdict:
    """The verdict on one AIProvider create or update (reads only)."""
    verdict = Verdict()
    if not review.checked:
        return verdict
    ident = ObjectIdentity(AIPROVIDER, review.namespace, review.name, review.uid, 0)
    reading = read_provider(ident, dict(review.spec) if review.spec else None)
    spec, name = reading.spec, reading.provider_name
    if spec is None or name is None:
        # The CRD's rules reject nearly all of this before us; the rest is the status's job.
        verdict.warn(reading.problem or "invalid spec")
        return verdict
    settings = wiring.settings

    unreadable = await _unreadable_secret(wiring, review, spec, reading.refs)
    if unreadable is not None:
        return verdict.deny(unreadable)

    resolved = await resolve_provider_secrets(
        wiring.kube,
        review.namespace,
        spec,
        reading.refs,
        consumer=review.name,
        access=settings.secret_access,
    )
    known = not isinstance(resolved, list)
    if isinstance(resolved, list):
        for finding in resolved:
            verdict.warn(finding.message)
        secrets = ProviderSecrets(reading.refs, (), None, "")
    else:
        secrets = resolved

    owner = ident.owner(settings.instance_id)
    may_adopt = settings.may_adopt(review.namespace)
    try:
        preview = await wiring.store.preview_provider(
            desired_provider(spec, name, secrets),
            owner,
            adopt=spec.adopt_existing and may_adopt,
        )
    except NameConflict as exc:
        advice = _adoption_advice(spec, review, may_adopt)
        return verdict.deny(f"{_FIELD} {name!r}: {exc}. {advice}")
    except NameTaken as exc:
        return verdict.deny(f"{_FIELD} {name!r}: {exc}; choose another spec.providerName")
    except TypeMismatch as exc:
        return verdict.deny(f"spec.type {spec.type.value!r}: {exc}")
    except (InvalidProvider, InvalidName, NotSupportedByCoder) as exc:
        verdict.warn(f"spec: {exc} (the object's status will say InvalidSpec)")
        return verdict
    except StoreError as exc:
        verdict.warn(
            f"Coder's database could not be read ({exc}); the name and the plan were not "
            "checked, the object's status will report them"
        )
        return verdict

    if preview.action in ("create", "adopt", "revive"):
        others = [
            c
            for c in index.claims(name)
            if (c.namespace, c.name) != (review.namespace, review.name) and not c.deleting
        ]
        if others:
            holders = ", ".join(f"AIProvider {c.namespace}/{c.name}" for c in others)
            return verdict.deny(
                f"{_FIELD} {name!r} is claimed by {holders}; choose another spec.providerName"
            )

    _sts_warning(review, verdict)
    verdict.plan(describe_plan(preview, keys_known=known))
    return verdict


def _changed_refs(
    review: Review, spec: AIProviderSpec, refs: ProviderSecretRefs
) -> list[tuple[str, str]]:
    """(field, Secret name) of the references whose Secret this request newly puts to use:
    every one on a create or when the destination changes, else those naming a Secret the
    stored spec did not name."""
    named = [(r.field, r.name) for r in refs.all()]
    if review.operation != "UPDATE":
        return named
    try:
        old = AIProviderSpec.from_body(dict(review.old_spec) if review.old_spec else None)
    except InvalidSpecError:
        return named
    if spec_destination(old) != spec_destination(spec):
        return named
    before = ProviderSecretRefs.of(old).secret_names()
    return [(f, name) for f, name in named if name not in before]


async def _unreadable_secret(
    wiring: Wiring, review: Review, spec: AIProviderSpec, refs: ProviderSecretRefs
) -> str | None:
    """The denial when the requester may not ``get`` a Secret this request newly uses or
    sends elsewhere (None: every one may be read by them, or none changed)."""
    seen: set[str] = set()
    for field, name in _changed_refs(review, spec, refs):
        if name in seen:
            continue
        seen.add(name)
        if not await wiring.kube.may_get_secret(review.requester, review.namespace, name):
            return (
                f"{field}: {review.username or 'the requester'} may not get Secret {name!r} "
                f"in namespace {review.namespace!r}; an AIProvider may use a Secret, or send "
                "it to another destination, only by someone who may read that Secret"
            )
    return None


def _adoption_advice(spec: AIProviderSpec, review: Review, may_adopt: bool) -> str:
    """What a user can do about a provider made in Coder holding the name."""
    if spec.adopt_existing and not may_adopt:
        return (
            f"spec.adoptExisting is set, but adoption is not allowed in namespace "
            f"{review.namespace!r} (the operator's AIGW_ADOPTION_NAMESPACES); ask the platform "
            "team, or choose another spec.providerName"
        )
    if may_adopt:
        return (
            "Set spec.adoptExisting: true to take over the existing Coder provider, or choose "
            "another spec.providerName"
        )
    return "Choose another spec.providerName"


def _sts_warning(review: Review, verdict: Verdict) -> None:
    """A Bedrock role whose last STS check failed (the current status says so)."""
    if review.status is None:
        return
    spec = review.spec or {}
    if not spec.get("bedrock"):
        return
    status = parse_status(dict(review.status))
    cond = status.condition(ConditionType.CREDENTIALS_VALID)
    if cond is None or cond.status != ConditionStatus.FALSE:
        return
    if cond.reason == Reason.NOT_APPLICABLE:
        return
    verdict.warn(
        f"spec.bedrock: the last STS check failed ({cond.reason}: {cond.message}); it is "
        "checked again after this change"
    )


def _keys(prefix: str, masked: tuple[str, ...]) -> str:
    shown = ", ".join(m or "<undecryptable>" for m in masked)
    return f"{prefix}{len(masked)} ({shown})"


def describe_plan(preview: ProviderPreview, *, keys_known: bool = True) -> str:
    """One line: what the operator will do to Coder's rows (names and masked values only)."""
    name = preview.name
    columns = [c for c in preview.columns if keys_known or c != "settings"]
    keys: list[str] = []
    if not keys_known:
        keys.append("unknown until the Secrets resolve")
    else:
        if preview.keys_added:
            keys.append(_keys("+", preview.keys_added))
        if preview.keys_removed:
            keys.append(_keys("-", preview.keys_removed))
        if preview.keys_reordered and not keys:
            keys.append("reordered")
    changes = ", ".join(columns)
    if keys:
        changes = f"{changes}; keys: {', '.join(keys)}" if changes else f"keys: {', '.join(keys)}"
    if preview.action == "create":
        if not keys_known:
            what = "keys unknown until the Secrets resolve"
        else:
            count = len(preview.keys_added)
            what = f"{count} key{'s' if count != 1 else ''}"
            if preview.keys_added:
                what += ": " + ", ".join(preview.keys_added)
        return f"create provider {name!r} (type {preview.type}, {what})"
    if preview.action == "left_alone":
        return f"none: provider {name!r} holds what this operator does not know; it is left alone"
    if preview.action == "unchanged" or not changes:
        verb = {"adopt": "adopt", "revive": "restore"}.get(preview.action)
        if verb is not None:
            return f"{verb} provider {name!r} (no other change)"
        return f"no change to provider {name!r}"
    verb = {"adopt": "adopt", "revive": "restore"}.get(preview.action, "update")
    return f"{verb} provider {name!r}: {changes}"
