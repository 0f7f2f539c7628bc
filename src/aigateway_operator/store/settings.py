"""``ai_providers.settings`` read exactly as coderd's Go decoder reads it (reference §3).

coderd decodes the blob with Go's ``encoding/json`` into its settings structs: first the
discriminators (``_type`` string, ``_version`` int), then the variant's fields. Python's
``json`` plus ``==`` is laxer in ways that matter, because a blob coderd cannot decode makes
it skip the provider (gateways) and fail the whole provider list (API, §5.4):

* ``_version`` must be the JSON *integer* 1: ``true``, ``1.0``, ``1e0`` and ``"1"`` are
  errors in Go (``cannot unmarshal bool into Go struct field ... of type int``), although
  Python finds ``True == 1.0 == 1``. A missing or ``null`` ``_version`` reads as 0 and is
  rejected.
* ``_type`` must be a JSON string (``null`` leaves it empty, which is rejected).
* Every known field must have its Go type: the Bedrock fields are all strings (two of them
  ``*string``); ``null`` is allowed (it leaves the zero value); a number, bool, array or
  object is an error.
* Go matches object keys to struct fields *case-insensitively* (exact match preferred,
  otherwise Unicode simple case folding: ``"Region"`` and ``"REGION"`` fill ``region``, and
  so do U+017F (long s) for ``s`` and U+212A (Kelvin sign) for ``k``); when several keys
  map to one field the last one wins. Keys matching no field are ignored.
* Only standard JSON: ``NaN``/``Infinity`` (which Python accepts) are syntax errors.
* Empty text or ``null`` is "no settings"; whitespace alone is a syntax error for Go
  (derived: coderd treats only NULL and ``''`` as empty before decoding).

:func:`decode` reports one of four outcomes; messages name the field and the JSON kind,
never a value (a value may be an AWS secret). ``_type`` values are quoted (shortened): they
are discriminators, not secrets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aigateway_operator.store.versions import BEDROCK_FIELDS

__all__ = [
    "SETTINGS_TYPE_BEDROCK",
    "SETTINGS_VERSION",
    "DecodedSettings",
    "SettingsStatus",
    "decode",
    "encode",
    "go_field_match",
    "normalized",
]

SETTINGS_TYPE_BEDROCK = "bedrock"
SETTINGS_VERSION = 1

# Characters outside ASCII that Go's simple case folding maps onto an ASCII letter:
# U+017F LATIN SMALL LETTER LONG S (s) and U+212A KELVIN SIGN (k). Every other non-ASCII
# character folds only to non-ASCII ones, so it can never match our (ASCII) field names.
_FOLD_TO_ASCII = {"\u017f": "s", "\u212a": "k"}


class SettingsStatus(StrEnum):
    EMPTY = "empty"
    """NULL, ``''`` or JSON ``null``: no settings."""
    BEDROCK = "bedrock"
    """A Bedrock blob coderd decodes."""
    UNDECODABLE = "undecodable"
    """coderd's decoder fails: the row is skipped by gateways and breaks the provider list."""
    UNKNOWN_TYPE = "unknown_type"
    """A ``_type`` this operator does not know (a newer Coder's variant): left alone."""


@dataclass(frozen=True)
class DecodedSettings:
    status: SettingsStatus
    fields: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The known Bedrock fields as coderd sees them, non-empty values only."""
    reason: str = ""
    """Why the blob is undecodable or left alone (no values)."""
    type_name: str = ""
    """The ``_type`` value for :attr:`SettingsStatus.UNKNOWN_TYPE`."""

    @property
    def view(self) -> dict[str, Any] | None:
        """The normalised settings object (what :func:`encode` would write for it), or None."""
        if self.status is not SettingsStatus.BEDROCK:
            return None
        return normalized(self.fields)


def normalized(fields: Mapping[str, str]) -> dict[str, Any]:
    """Discriminators plus the non-empty fields: the canonical form compared and written."""
    out: dict[str, Any] = {"_type": SETTINGS_TYPE_BEDROCK, "_version": SETTINGS_VERSION}
    out.update({k: v for k, v in fields.items() if v})
    return out


def encode(settings: Mapping[str, Any] | None) -> str | None:
    """Compact JSON with sorted keys (what Go's map marshalling produces); None -> SQL NULL."""
    if not settings:
        return None
    return json.dumps(settings, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def go_field_match(key: str, name: str) -> bool:
    """Go's ``encoding/json`` key-to-field rule for an ASCII field ``name``: exact, or equal
    under Unicode simple case folding (``bytes.EqualFold``)."""
    if key == name:
        return True
    if len(key) != len(name):
        return False
    for k, n in zip(key, name, strict=True):
        k = _FOLD_TO_ASCII.get(k, k)
        if not k.isascii() or k.lower() != n.lower():
            return False
    return True


class _Object(list[tuple[str, Any]]):
    """A parsed JSON object as its key/value pairs in document order (Go sees duplicates)."""


def _kind(value: object) -> str:
    """The JSON kind of a parsed value, in Go's words (``cannot unmarshal <kind> into ...``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Object):
        return "object"
    return "array"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(text: str) -> tuple[Any, str]:
    """Parse standard JSON; returns (value, error)."""
    try:
        return json.loads(text, object_pairs_hook=_Object, parse_constant=_reject_constant), ""
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg})"
    except ValueError:
        return None, "not valid JSON (NaN or Infinity)"


def _struct_fields(pairs: _Object, names: tuple[str, ...]) -> dict[str, Any]:
    """Go's assignment of object keys to struct fields: last matching key wins."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        for name in names:
            if go_field_match(key, name):
                out[name] = value
                break
    return out


def decode(text: str | None, known_fields: frozenset[str] | None = None) -> DecodedSettings:
    """Decode a stored (decrypted) settings blob as coderd does.

    ``known_fields``: the Bedrock fields the target coderd decodes (type-checked and
    compared); default: every field this operator knows. Others are ignored, as Go does.
    """
    if text is None or text == "":
        return DecodedSettings(SettingsStatus.EMPTY)
    value, error = _parse(text)
    if error:
        return DecodedSettings(SettingsStatus.UNDECODABLE, reason=error)
    if value is None:
        return DecodedSettings(SettingsStatus.EMPTY)
    if not isinstance(value, list):  # object_pairs_hook=list: objects arrive as pair lists
        return DecodedSettings(
            SettingsStatus.UNDECODABLE,
            reason=f"the blob is a JSON {_kind(value)}, coderd needs an object",
        )
    if not isinstance(value, _Object):
        return _undecodable(f"the blob is a JSON {_kind(value)}, coderd needs an object")
    # 1. The discriminators, decoded into {_type string; _version int}: a type mismatch fails
    #    the whole decode, whatever the rest says.
    disc = _struct_fields(value, ("_type", "_version"))
    type_value = disc.get("_type")
    version = disc.get("_version")
    if type_value is not None and not isinstance(type_value, str):
        return _undecodable(f"_type is a JSON {_kind(type_value)}, coderd needs a string")
    if version is not None and type(version) is not int:  # bool is an int in Python
        return _undecodable(f"_version is a JSON {_kind(version)}, coderd needs the integer 1")
    # 2. The discriminator's value, then the version.
    if not type_value:
        return _undecodable("settings missing _type discriminator")
    if type_value != SETTINGS_TYPE_BEDROCK:
        shown = type_value if len(type_value) <= 40 else type_value[:37] + "..."
        return DecodedSettings(
            SettingsStatus.UNKNOWN_TYPE,
            reason=f"settings _type {shown!r} is not one this operator knows",
            type_name=type_value,
        )
    if version != SETTINGS_VERSION:
        return _undecodable("_version is missing" if version is None else "_version is not 1")
    # 3. The variant's fields: strings (or null) only.
    names = tuple(known_fields) if known_fields is not None else BEDROCK_FIELDS
    found = _struct_fields(value, names)
    fields: dict[str, str] = {}
    for name in sorted(found):
        v = found[name]
        if v is None:
            continue  # null leaves the zero value (nil for the *string fields)
        if not isinstance(v, str):
            return _undecodable(f"field {name} is a JSON {_kind(v)}, coderd needs a string")
        if v:
            fields[name] = v
    return DecodedSettings(SettingsStatus.BEDROCK, fields=fields)


def _undecodable(reason: str) -> DecodedSettings:
    return DecodedSettings(SettingsStatus.UNDECODABLE, reason=reason)
