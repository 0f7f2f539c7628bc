"""What both kinds' admission checks share: the request as the checks see it, the verdict.

An admission check runs *before* the API server stores an object (kopf's validating
webhook, ``operator/admission.py``), against Coder's live rows and the cluster as they are
now. It has three kinds of answers (the kinds' modules, ``controllers/<kind>/admission.py``):

- **deny** what can never converge as written (a name held by somebody else, a Secret that
  belongs to another app): :attr:`Verdict.denied`, a message naming the field and the
  holder;
- **warn** about what may fix itself (a Secret created later, an STS check that may pass
  next time): :attr:`Verdict.warnings`, which ``kubectl`` prints as ``Warning: ...``;
- **plan**: what the operator will do in Coder (``plan: ...``, a warning too), with names
  and masked values only, so ``kubectl apply --dry-run=server`` shows it before the change.

The checks read; they write nothing (not Coder's rows, not the cluster), and a dry-run
request is checked exactly like a real one. The one write of admission is the requester of
a real request it allows (``controllers/actors.py``: user name and groups, in the
operator's own table, for Coder's audit log); a dry run records nothing, so the webhook
declares ``sideEffects: NoneOnDryRun``.

Only requests that change what the operator acts on are checked: a create, or an update of
the ``spec``. Updates of metadata alone (kopf adding or removing the finalizer, a
``aigateway.dev/reconcile`` poke) and objects being deleted are let through without a
word: a deny there could keep a finalizer on an object forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aigateway_operator.kube import Requester

__all__ = ["PLAN", "Review", "Verdict"]

#: How plan lines start (``kubectl`` prints each as ``Warning: plan: ...``).
PLAN = "plan: "


@dataclass(frozen=True)
class Review:
    """One admission request for an object of ours, as plain values (kopf's are not
    imported below the operator layer)."""

    operation: str
    """``CREATE`` or ``UPDATE`` (``DELETE`` and ``CONNECT`` are not sent to us)."""
    namespace: str
    name: str
    uid: str
    spec: Mapping[str, Any] | None
    old_spec: Mapping[str, Any] | None = None
    status: Mapping[str, Any] | None = None
    """The object's current status (an update's old object carries it; a create has none)."""
    deleting: bool = False
    dry_run: bool = False
    generation: int = 0
    """``metadata.generation`` of the object as it will be stored (the API server sets it,
    and the uid, before validating admission: 1 on a create, bumped on a spec update)."""
    username: str = ""
    """The requester (``userInfo.username``); its groups below. Never a token."""
    groups: tuple[str, ...] = ()
    user_uid: str = field(default="", repr=False)
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    """``userInfo.uid`` and ``extra``: only for asking the API server what the requester may
    do (a SubjectAccessReview); never recorded, never logged."""

    @property
    def requester(self) -> Requester:
        """The requester, as a SubjectAccessReview asks about them."""
        return Requester(self.username, self.groups, self.user_uid, self.extra)

    @classmethod
    def of(
        cls,
        operation: str | None,
        body: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        *,
        dry_run: bool,
        userinfo: Mapping[str, Any] | None = None,
    ) -> Review:
        meta = body.get("metadata") or {}
        user = userinfo or {}
        extra = user.get("extra") or {}
        return cls(
            operation=str(operation or ""),
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            spec=body.get("spec"),
            old_spec=(old or {}).get("spec") if old is not None else None,
            status=(old or body).get("status"),
            deleting=bool(meta.get("deletionTimestamp")),
            dry_run=dry_run,
            generation=int(meta.get("generation") or 0),
            username=str(user.get("username") or ""),
            groups=tuple(str(g) for g in user.get("groups") or ()),
            user_uid=str(user.get("uid") or ""),
            extra={
                str(k): tuple(str(v) for v in (vs if isinstance(vs, list) else [vs]))
                for k, vs in (extra.items() if isinstance(extra, Mapping) else ())
            },
        )

    @property
    def checked(self) -> bool:
        """Whether this request is checked at all (see the module docstring)."""
        if self.deleting:
            return False
        if self.operation == "CREATE":
            return True
        return self.operation == "UPDATE" and self.spec != self.old_spec


@dataclass
class Verdict:
    """The answer to one request: denied (with why) or allowed, plus warnings."""

    denied: str | None = None
    warnings: list[str] = field(default_factory=list)

    def deny(self, message: str) -> Verdict:
        self.denied = message
        return self

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def plan(self, message: str) -> None:
        self.warnings.append(PLAN + message)
