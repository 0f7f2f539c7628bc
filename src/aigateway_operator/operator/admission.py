"""kopf's validating admission webhook for both kinds (thin: the checks live in
``controllers/<kind>/admission.py``), and the server kopf runs it on.

**How it is wired.** ``@kopf.on.validate`` handlers (one per kind, ``CREATE`` and
``UPDATE``) are registered only with ``AIGW_ADMISSION=true``; the startup handler then
sets ``settings.admission.server`` (kopf's :class:`kopf.WebhookServer`, self-signing with
``cryptography`` when no certificate files are given, see :mod:`.webhook_tls`) and, unless
``AIGW_ADMISSION_CONFIG_NAME`` is empty, ``settings.admission.managed``: kopf then creates
and patches a ValidatingWebhookConfiguration of that name with its handlers, its URL and
its CA bundle (and an empty MutatingWebhookConfiguration of the same name: kopf manages
both kinds whenever managed mode is on, so RBAC needs ``create``/``patch`` on both).

**Every replica answers.** kopf starts its webhook server as a root task of the operator
(``kopf/_core/reactor/running.py``: "admission webhook server", a task of its own, not one
of the watch tasks that peering pauses), once the startup handlers are done. The pause
toggle (``operator_paused``) reaches the watchers, daemons and timers only, so a replica
paused by peering keeps answering admission requests. Each replica therefore needs its own
database pool: it has one, opened by the startup handler on every replica; admission only
reads through it. (Its in-memory index follows kopf's watch events, which a paused replica
does not receive: there the index is what it last saw; the database check is always live.)

**The configuration stays when the operator stops.** The handlers are ``persistent``: kopf
leaves them in the configuration at exit (otherwise the last replica stopping during a
rollout would remove the webhook for all replicas). What the API server does while nobody
answers is the failure policy (``AIGW_ADMISSION_FAILURE_POLICY``): ``Ignore`` (default)
admits unchecked, so ``kubectl apply`` and a GitOps bootstrap never hang or fail on a down
operator; ``Fail`` refuses.

**The requester.** A real (not ``dryRun``) create or spec update that is allowed has its
requester (``userInfo.username`` and groups; never a token, never ``extra`` or the body)
recorded with the object's uid and new generation in the operator's own table
(``controllers/actors.py``), for the audit rows the pass writes in Coder. The webhook
declares ``sideEffects: NoneOnDryRun`` (kopf's ``side_effects=True``). A failed recording
never refuses a request: it is admitted with a warning, and Coder's audit log says
``unknown``.

**Errors of our own.** kopf turns any exception of a handler into a denial (HTTP 500). A
check that fails unexpectedly or takes longer than ``AIGW_ADMISSION_TIMEOUT_S`` is treated
like an unreachable webhook instead: admitted with a warning under ``Ignore``, denied under
``Fail``. Denials are :class:`kopf.AdmissionError` with code 403 and a message naming the
field and the holder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from aigateway_operator.api.identity import AIGATEWAYCODERDKEY, AIPROVIDER, Kind
from aigateway_operator.config import AdmissionFailurePolicy, Settings
from aigateway_operator.controllers.actors import record_requester
from aigateway_operator.controllers.admission import Review, Verdict
from aigateway_operator.controllers.aiprovider.admission import review_provider
from aigateway_operator.controllers.gatewaykey.admission import review_gateway_key
from aigateway_operator.operator.app import OperatorApp, app_of
from aigateway_operator.operator.webhook_tls import SelfSignedWebhookServer

__all__ = ["configure_admission", "register"]

log = logging.getLogger("aigateway_operator")

#: The HTTP code of a denial (what ``kubectl`` shows as the reason: Forbidden).
DENIED = 403


def webhook_server(settings: Settings) -> kopf.WebhookServer:
    """kopf's server with the configured address, port, host name and certificate."""
    common: dict[str, Any] = {
        "addr": settings.admission_addr or None,
        "port": settings.admission_port or None,
        "host": settings.admission_host or None,
    }
    if settings.admission_cert_file is not None and settings.admission_key_file is not None:
        return kopf.WebhookServer(
            certfile=settings.admission_cert_file,
            pkeyfile=settings.admission_key_file,
            cafile=settings.admission_ca_file,
            **common,
        )
    return SelfSignedWebhookServer(**common)


def configure_admission(kopf_settings: kopf.OperatorSettings, settings: Settings) -> None:
    """Set kopf's admission server (and managed configuration) when admission is on."""
    if not settings.admission:
        return
    kopf_settings.admission.server = webhook_server(settings)
    kopf_settings.admission.managed = settings.admission_config_name or None


async def _answer(
    app: OperatorApp,
    kind: Kind,
    review: Review,
    check: Callable[[], Awaitable[Verdict]],
    warnings: list[str],
) -> None:
    """Run one kind's check; its warnings go to kopf's list, a denial raises."""
    settings = app.settings
    watched = settings.namespace_list()
    if watched and review.namespace not in watched:
        return  # not ours to judge: this install does not serve that namespace
    if not app.started:
        warnings.append("the operator is starting; nothing was checked")
        return
    try:
        async with asyncio.timeout(settings.admission_timeout_s):
            verdict = await check()
    except Exception as exc:
        what = (
            f"took longer than {settings.admission_timeout_s:g}s"
            if isinstance(exc, TimeoutError)
            else f"failed ({type(exc).__name__})"
        )
        log.warning(
            "admission check of %s %s/%s %s",
            kind.kind,
            review.namespace,
            review.name,
            what,
            exc_info=not isinstance(exc, TimeoutError),
        )
        message = f"the operator's admission check {what}"
        if settings.admission_failure_policy is AdmissionFailurePolicy.FAIL:
            raise kopf.AdmissionError(f"{message} (failure policy Fail)", code=500) from None
        warnings.append(f"{message}; nothing was checked (failure policy Ignore)")
        return
    warnings.extend(verdict.warnings)
    if verdict.denied is not None:
        log.info(
            "admission denied %s %s/%s: %s",
            kind.kind,
            review.namespace,
            review.name,
            verdict.denied,
        )
        raise kopf.AdmissionError(verdict.denied, code=DENIED)
    if review.checked and not review.dry_run:
        await _record(app, kind, review, warnings)


async def _record(app: OperatorApp, kind: Kind, review: Review, warnings: list[str]) -> None:
    """Record the requester of an allowed, real request (see the module docstring)."""
    try:
        async with asyncio.timeout(app.settings.admission_timeout_s):
            await record_requester(
                app.wiring,
                kind,
                namespace=review.namespace,
                name=review.name,
                uid=review.uid,
                generation=review.generation,
                spec=review.spec,
                username=review.username,
                groups=review.groups,
            )
    except Exception as exc:
        log.warning(
            "admission: the requester of %s %s/%s generation %d was not recorded (%s)",
            kind.kind,
            review.namespace,
            review.name,
            review.generation,
            type(exc).__name__,
        )
        warnings.append(
            "the operator could not record who made this change; Coder's audit log will "
            "name the actor 'unknown'"
        )


def _review(body: kopf.Body, dryrun: bool, kwargs: dict[str, Any]) -> Review:
    """kopf passes ``operation``, ``old`` (the stored object of an update) and ``userinfo``
    (the request's ``userInfo``: username, uid, groups, extra) as kwargs its webhook protocol
    does not declare. The username and groups are recorded for the audit; all four are asked
    about in a SubjectAccessReview (may the requester read a Secret the change points at),
    and uid and extra go nowhere else."""
    old = kwargs.get("old")
    userinfo = kwargs.get("userinfo")
    return Review.of(
        kwargs.get("operation"),
        body,
        old if old else None,
        dry_run=dryrun,
        userinfo=userinfo if isinstance(userinfo, dict) else None,
    )


async def validate_provider(
    body: kopf.Body, dryrun: bool, warnings: list[str], memo: Any, **kwargs: Any
) -> None:
    app = app_of(memo)
    review = _review(body, dryrun, kwargs)
    await _answer(
        app,
        AIPROVIDER,
        review,
        lambda: review_provider(app.wiring, app.providers.index, review),
        warnings,
    )


async def validate_gateway_key(
    body: kopf.Body, dryrun: bool, warnings: list[str], memo: Any, **kwargs: Any
) -> None:
    app = app_of(memo)
    review = _review(body, dryrun, kwargs)
    await _answer(
        app, AIGATEWAYCODERDKEY, review, lambda: review_gateway_key(app.wiring, review), warnings
    )


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """The validating handlers, on ``registry`` (only when ``AIGW_ADMISSION=true``)."""
    if not settings.admission:
        return
    ignore = settings.admission_failure_policy is AdmissionFailurePolicy.IGNORE
    for kind, fn in ((AIPROVIDER, validate_provider), (AIGATEWAYCODERDKEY, validate_gateway_key)):
        kopf.on.validate(
            kind.group,
            kind.version,
            kind.plural,
            id=f"validate-{kind.kind.lower()}",
            operations=["CREATE", "UPDATE"],
            persistent=True,
            # NoneOnDryRun: a real request's requester is recorded (``_record``), a dry run
            # writes nothing, so ``kubectl apply --dry-run=server`` still reaches the webhook.
            side_effects=True,
            ignore_failures=ignore,
            registry=registry,
        )(fn)
