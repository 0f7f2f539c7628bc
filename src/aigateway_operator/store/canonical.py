"""Turn a :class:`DesiredProvider` into exactly the column values coderd would store.

Pure functions (no I/O) so the rules are unit-testable: validation mirroring coderd's API
(reference §4.2) and runtime (§8.2), per-type ``base_url`` defaults, and the settings JSON
(§3). Comparing canonical desired state with canonical stored state is what makes a
repeated reconcile a true no-op.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from aigateway_operator.store.errors import (
    DuplicateKey,
    InvalidKey,
    InvalidName,
    InvalidProvider,
)
from aigateway_operator.store.models import (
    CODER_OWNABLE,
    BedrockSettings,
    DesiredProvider,
    ProviderType,
)
from aigateway_operator.store.settings import (
    SETTINGS_TYPE_BEDROCK,
    SETTINGS_VERSION,
    SettingsStatus,
    decode,
    encode,
)
from aigateway_operator.store.versions import NEWEST, CoderVersion

__all__ = [
    "DEFAULT_BEDROCK_MODEL",
    "DEFAULT_BEDROCK_SMALL_FAST_MODEL",
    "NAME_RULE",
    "SETTINGS_TYPE_BEDROCK",
    "SETTINGS_VERSION",
    "CanonicalProvider",
    "bedrock_from_dict",
    "canonicalize",
    "decode_settings",
    "default_base_url",
    "encode_settings",
    "generate_external_id",
    "settings_dict",
    "validate_name",
    "with_stored_external_id",
]

NAME_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
NAME_RULE = (
    "use lowercase letters, digits and single hyphens, not starting or ending with a hyphen "
    "(regex ^[a-z0-9]+(-[a-z0-9]+)*$)"
)

DEFAULT_BEDROCK_MODEL = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
"""coderd's deployment default for the Bedrock model (``codersdk/deployment.go``, reference
§3, read at main @ f963381 only: the defaults of earlier releases are not in the reference)."""
DEFAULT_BEDROCK_SMALL_FAST_MODEL = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
"""coderd's deployment default for the small/fast Bedrock model (same source and caveat)."""

_OPENAI_FAMILY_DEFAULTS: dict[ProviderType, str] = {
    ProviderType.OPENAI: "https://api.openai.com/v1/",
    ProviderType.GOOGLE: "https://generativelanguage.googleapis.com/v1beta/openai/",
    ProviderType.OPENROUTER: "https://openrouter.ai/api/v1",
    ProviderType.VERCEL: "https://ai-gateway.vercel.sh/v1",
}


def validate_name(name: str, kind: str = "AI provider", max_len: int | None = None) -> None:
    """Coder's name CHECK, checked before Postgres sees it (``$`` in Python would allow a
    trailing newline, hence ``fullmatch``)."""
    if not NAME_RE.fullmatch(name):
        raise InvalidName(kind, name, NAME_RULE)
    if max_len is not None and len(name) > max_len:
        raise InvalidName(kind, name, f"at most {max_len} characters")


def default_base_url(ptype: ProviderType, bedrock: BedrockSettings | None) -> str | None:
    """The ``base_url`` written when the caller gives none, or None when one is required.

    ``ai_providers.base_url`` is NOT NULL and coderd's API insists on an absolute URL;
    aibridgeproxyd also routes by its hostname. So we always write a real URL, chosen per type:

    * ``openai``: the runtime default ``https://api.openai.com/v1/``.
    * ``google``, ``openrouter``, ``vercel``: the vendor's OpenAI-compatible endpoint (what the
      Coder UI prefills). The runtime's generic fallback is api.openai.com, which would send a
      Google/OpenRouter/Vercel key to OpenAI, and would make proxy hostnames collide.
    * ``azure``, ``openai-compat``: **required**; the endpoint is deployment-specific and any
      default would leak the key to the wrong host.
    * ``anthropic`` (no Bedrock settings): the runtime default ``https://api.anthropic.com/``.
    * ``bedrock``, or ``anthropic`` with Bedrock settings: in Bedrock mode the runtime treats
      ``base_url`` as the Bedrock endpoint override, so api.anthropic.com would be wrong.
      For invoke-model the runtime endpoint for an empty base_url is
      ``https://bedrock-runtime.{region}.amazonaws.com``; we write that (region required).
      ``mantle`` needs an explicit base_url (its endpoint form is not a runtime default).
    * ``copilot``: the runtime default ``https://api.individual.githubcopilot.com``
      (Business/Enterprise seats must set their own).
    """
    if ptype in _OPENAI_FAMILY_DEFAULTS:
        return _OPENAI_FAMILY_DEFAULTS[ptype]
    if ptype is ProviderType.COPILOT:
        return "https://api.individual.githubcopilot.com"
    if ptype is ProviderType.BEDROCK or (ptype is ProviderType.ANTHROPIC and bedrock is not None):
        if bedrock is None or bedrock.protocol == "mantle" or not bedrock.region:
            return None
        return f"https://bedrock-runtime.{bedrock.region}.amazonaws.com"
    if ptype is ProviderType.ANTHROPIC:
        return "https://api.anthropic.com/"
    return None  # azure, openai-compat


def generate_external_id() -> str:
    """An STS external id shaped like Go's ``crypto/rand.Text()``: 26 chars of base32 A-Z2-7."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")[:26]


@dataclass(frozen=True)
class CanonicalProvider:
    """Column values for one provider row, exactly as they will be stored (before encryption)."""

    type: ProviderType
    name: str
    display_name: str | None
    icon: str
    enabled: bool
    base_url: str
    settings: dict[str, Any] | None = field(repr=False)
    api_keys: tuple[str, ...] = field(repr=False)
    coder_owned: frozenset[str] = frozenset()
    """Columns of :data:`~aigateway_operator.store.models.CODER_OWNABLE` written only when the
    row is created or revived (``DesiredProvider.coder_owned``)."""

    @property
    def settings_json(self) -> str | None:
        return encode_settings(self.settings)


def with_stored_external_id(
    canon: CanonicalProvider,
    desired: DesiredProvider,
    stored_settings: dict[str, Any] | None,
    coder: CoderVersion = NEWEST,
) -> CanonicalProvider:
    """Apply coderd's rule for the server-owned STS ``external_id``.

    An explicit ``desired.bedrock.external_id`` wins. Otherwise the stored one is kept, and if
    there is none while a role ARN is set, a new one is generated (coderd does the same on
    create and on PATCH), so the value stays stable across reconciles. A Coder that does not
    know the field (before v2.36) gets none.
    """
    b = desired.bedrock
    if canon.settings is None or b is None or b.external_id is not None:
        return canon
    if "external_id" not in coder.bedrock_fields:
        return canon
    stored = (stored_settings or {}).get("external_id")
    external_id = stored if isinstance(stored, str) else ""
    if not external_id and b.role_arn:
        external_id = generate_external_id()
    if not external_id:
        return canon
    return replace(canon, settings={**canon.settings, "external_id": external_id})


def _check_url(url: str, what: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidProvider(f"{what} is not a valid URL", field="baseURL") from None
    if url != url.strip() or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidProvider(
            f"{what} must be an absolute http(s) URL with a host", field="baseURL"
        )


def _check_keys(keys: tuple[str, ...]) -> None:
    seen: dict[str, int] = {}
    for i, key in enumerate(keys, start=1):
        if not key:
            raise InvalidKey(f"apiKeys entry {i} is empty", field="apiKeys")
        if key.strip() != key:
            raise InvalidKey(
                f"apiKeys entry {i} has leading or trailing whitespace", field="apiKeys"
            )
        if key in seen:
            raise DuplicateKey([seen[key], i])
        seen[key] = i


def _check_bedrock(b: BedrockSettings) -> None:
    if b.protocol not in ("", "invoke-model", "mantle"):
        raise InvalidProvider(
            "bedrock.protocol must be empty, 'invoke-model' or 'mantle'", "bedrock.protocol"
        )
    if b.protocol == "mantle" and not b.region:
        raise InvalidProvider("region is required for the mantle protocol", "bedrock.region")
    if b.role_arn:
        parts = b.role_arn.split(":", 5)
        if (
            len(parts) != 6
            or parts[0] != "arn"
            or parts[2] != "iam"
            or not parts[5].startswith("role/")
        ):
            raise InvalidProvider(
                "bedrock.roleARN must be an IAM role ARN, e.g. "
                "arn:aws:iam::123456789012:role/BedrockRole",
                "bedrock.roleARN",
            )
    if bool(b.access_key) != bool(b.access_key_secret):
        raise InvalidProvider(
            "bedrock access key and access key secret must be set together", "bedrock.accessKey"
        )
    for label, value in (("access key", b.access_key), ("access key secret", b.access_key_secret)):
        if value.strip() != value:
            raise InvalidProvider(
                f"bedrock {label} has leading or trailing whitespace", "bedrock.accessKey"
            )


def settings_dict(
    b: BedrockSettings, external_id: str, fields: frozenset[str] | None = None
) -> dict[str, Any]:
    """The settings object coderd stores: discriminators plus the non-empty fields
    (coderd's JSON tags are all ``omitempty``), limited to ``fields`` (default: all known).

    Invoke-model Bedrock always carries ``model`` and ``small_fast_model``: coderd's runtime
    drops an invoke-model provider without them (reference §8.2), so empty ones are filled
    with coderd's deployment defaults and never written empty.
    """
    values = {
        "region": b.region,
        "model": b.model or DEFAULT_BEDROCK_MODEL,
        "small_fast_model": b.small_fast_model or DEFAULT_BEDROCK_SMALL_FAST_MODEL,
        "access_key": b.access_key,
        "access_key_secret": b.access_key_secret,
        "role_arn": b.role_arn,
        "external_id": external_id,
        "protocol": b.protocol,
    }
    out: dict[str, Any] = {"_type": SETTINGS_TYPE_BEDROCK, "_version": SETTINGS_VERSION}
    out.update({k: v for k, v in values.items() if v and (fields is None or k in fields)})
    return out


def encode_settings(settings: dict[str, Any] | None) -> str | None:
    """Compact JSON with sorted keys (what Go's map marshalling produces); None -> SQL NULL."""
    return encode(settings)


def decode_settings(text: str | None, coder: CoderVersion = NEWEST) -> dict[str, Any] | None:
    """The settings as coderd decodes them (``settings.decode``), normalised; None for
    NULL/blank/``null`` *or anything coderd's decoder would reject or does not know*."""
    decoded = decode(text, coder.bedrock_fields)
    return decoded.view if decoded.status is SettingsStatus.BEDROCK else None


def bedrock_from_dict(d: dict[str, Any] | None) -> BedrockSettings | None:
    """Read a decoded settings object back into :class:`BedrockSettings`."""
    if d is None:
        return None

    def s(key: str) -> str:
        v = d.get(key)
        return v if isinstance(v, str) else ""

    protocol = s("protocol")
    return BedrockSettings(
        region=s("region"),
        model=s("model"),
        small_fast_model=s("small_fast_model"),
        access_key=s("access_key"),
        access_key_secret=s("access_key_secret"),
        role_arn=s("role_arn"),
        external_id=s("external_id") or None,
        protocol=protocol if protocol in ("invoke-model", "mantle") else "",  # type: ignore[arg-type]
    )


def _check_supported(b: BedrockSettings, coder: CoderVersion) -> BedrockSettings:
    """Refuse Bedrock fields the target Coder does not read; drop ones that change nothing.

    Writing a field an older coderd ignores would make the spec lie: the provider would run
    without it. ``protocol: invoke-model`` is what an absent protocol means, so it is left
    out where coderd has no protocol field.
    """
    fields = coder.bedrock_fields
    needs = {
        "role_arn": ("bedrock.roleARN", bool(b.role_arn)),
        "external_id": ("bedrock.externalID", bool(b.external_id)),
        "protocol": ("bedrock.protocol", b.protocol == "mantle"),
    }
    for name, (where, used) in needs.items():
        if used and name not in fields:
            raise InvalidProvider(
                f"{where} is not supported by {coder.label}; upgrade Coder or remove it",
                field=where,
            )
    if b.protocol and "protocol" not in fields:
        return replace(b, protocol="")
    return b


def canonicalize(desired: DesiredProvider, coder: CoderVersion = NEWEST) -> CanonicalProvider:
    """Validate ``desired`` and return the exact column values to store for ``coder``.

    Raises :class:`InvalidProvider` (or a subclass) / :class:`InvalidName` with a message
    naming the offending field. Call :func:`with_stored_external_id` once the stored row is
    known, to apply coderd's server-owned ``external_id`` rule.

    Bedrock is always written as ``type = bedrock``: an ``anthropic`` provider with Bedrock
    settings is stored the way coderd's own backfill leaves such a row (reference §6.6), so
    coderd and the operator never fight over ``type``.
    """
    try:
        ptype = ProviderType(desired.type)
    except ValueError:
        raise InvalidProvider(
            f"unknown provider type {desired.type!r}; expected one of "
            + ", ".join(t.value for t in ProviderType),
            field="type",
        ) from None
    validate_name(desired.name)
    unknown = set(desired.coder_owned) - CODER_OWNABLE
    if unknown:
        raise InvalidProvider(
            f"coder_owned may name only {', '.join(sorted(CODER_OWNABLE))}, not "
            + ", ".join(sorted(unknown)),
            field="coderOwnedFields",
        )
    keys = tuple(desired.api_keys)
    _check_keys(keys)
    b = desired.bedrock

    if b is not None:
        if ptype not in (ProviderType.ANTHROPIC, ProviderType.BEDROCK):
            raise InvalidProvider(
                f"bedrock settings are only allowed for types anthropic and bedrock, not {ptype}",
                field="bedrock",
            )
        _check_bedrock(b)
        b = _check_supported(b, coder)
        if keys:
            raise InvalidProvider(
                "a provider with bedrock settings authenticates with AWS; remove apiKeys",
                field="apiKeys",
            )
        if ptype is ProviderType.ANTHROPIC:
            ptype = ProviderType.BEDROCK  # coderd's backfill: Bedrock is its own type
    if ptype is ProviderType.BEDROCK and (b is None or not b.is_configured()):
        raise InvalidProvider(
            "type bedrock needs bedrock settings with a region, a role ARN or access keys",
            field="bedrock",
        )
    if ptype is ProviderType.COPILOT and keys:
        raise InvalidProvider("type copilot does not take apiKeys", field="apiKeys")

    if desired.base_url:
        _check_url(desired.base_url, "baseURL")
        base_url = desired.base_url
    else:
        found = default_base_url(ptype, b)
        if found is None:
            if b is not None and b.protocol == "mantle":
                reason = "the mantle protocol needs an explicit baseURL"
            elif b is not None:
                reason = "bedrock needs a region (or an explicit baseURL)"
            else:
                reason = f"type {ptype} has no safe default endpoint"
            raise InvalidProvider(f"baseURL is required: {reason}", field="baseURL")
        base_url = found

    settings: dict[str, Any] | None = None
    if b is not None:
        settings = settings_dict(b, b.external_id or "", coder.bedrock_fields)

    return CanonicalProvider(
        type=ptype,
        name=desired.name,
        display_name=desired.display_name or None,
        icon=desired.icon or "",
        enabled=desired.enabled,
        base_url=base_url,
        settings=settings,
        api_keys=keys,
        coder_owned=frozenset(desired.coder_owned),
    )
