"""Which Coder the database belongs to: golang-migrate's version mapped to a Coder release.

coderd migrates its schema with golang-migrate, which keeps one row in ``schema_migrations``
(``version bigint, dirty boolean``): the number of the last migration applied. The table
below maps that number to a Coder release range; behaviour that differs between releases
(which tables and columns exist, which settings fields coderd reads) is chosen from it.

Facts behind the table (``/work/shared/coder-reference.md`` §0.1, §1.8, §3; issue #19):

* 000495..000506 create AI providers; 000506 adds ``copilot`` (present from v2.34.0).
* 000514 creates ``ai_gateway_keys`` (absent in v2.34.0..v2.34.5, present in v2.35.0).
* 000532 renames ``last_used_at`` to ``last_heartbeat_at`` (present in v2.35.0).
* 000539 adds ``ai_providers.icon`` (absent in v2.35.1, present on main @ f963381).
* main @ f963381 (2026-07-24) ends at 000551; issue #19 says that is what shipped as v2.36.
* Bedrock settings fields: v2.34 region, model, small_fast_model, access_key,
  access_key_secret; v2.35.0 adds role_arn; main (v2.36) adds external_id and protocol.
  Settings ``_type`` is only ``bedrock`` and ``_version`` is 1 in every release listed.

What is *not* known: the last migration number of each release (only which migrations a
tag contains), and any migration number of v2.37 or v2.38. Rows built on those gaps are
marked ``inferred``. A database newer than the newest known migration starts (the operator
writes only what it knows) with one warning.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BEDROCK_FIELDS",
    "CODER_RELEASES",
    "MIN_SUPPORTED_MIGRATION",
    "NEWEST_KNOWN_MIGRATION",
    "CoderRelease",
    "CoderVersion",
    "release_for",
]

_BASE_BEDROCK = frozenset(
    {"region", "model", "small_fast_model", "access_key", "access_key_secret"}
)
_V235_BEDROCK = _BASE_BEDROCK | {"role_arn"}
_V236_BEDROCK = _V235_BEDROCK | {"external_id", "protocol"}

BEDROCK_FIELDS = tuple(sorted(_V236_BEDROCK))
"""Every Bedrock settings field this operator knows (all JSON strings in coderd's struct)."""

MIN_SUPPORTED_MIGRATION = 506
"""000506 (``copilot``), the newest AI-provider migration of v2.34.0: the oldest supported."""

NEWEST_KNOWN_MIGRATION = 551
"""The last migration on Coder main @ f963381 (shipped as v2.36)."""


@dataclass(frozen=True)
class CoderRelease:
    """A range of Coder schema migrations and what this operator may write there."""

    label: str
    """Coder release(s), e.g. ``v2.35``."""
    first_migration: int
    last_migration: int | None
    """Inclusive; None: open-ended (newer than anything this operator knows)."""
    bedrock_fields: frozenset[str]
    """Bedrock settings fields coderd of this release decodes (others it ignores)."""
    supported: bool = True
    inferred: bool = False
    """The range's bounds are inferred (see the module docstring), not read from a tag."""
    known: bool = True
    """False for the open-ended row beyond the newest known migration."""

    @property
    def has_gateway_keys(self) -> bool:
        return self.first_migration >= 514

    def contains(self, migration: int) -> bool:
        return migration >= self.first_migration and (
            self.last_migration is None or migration <= self.last_migration
        )


CODER_RELEASES: tuple[CoderRelease, ...] = (
    # Before v2.34: no AI providers at all (v2.33.x ends before 000495).
    CoderRelease("v2.33 or older", 0, 494, frozenset(), supported=False),
    # Development builds between v2.33 and v2.34: providers without every enum value.
    CoderRelease(
        "a development build before v2.34", 495, 505, _BASE_BEDROCK, supported=False, inferred=True
    ),
    # v2.34.0..v2.34.5 contain 000506 and not 000514; their last number is not known.
    CoderRelease("v2.34", 506, 513, _BASE_BEDROCK, inferred=True),
    # Development builds between v2.34 and v2.35: gateway keys still have last_used_at.
    CoderRelease("a development build before v2.35", 514, 531, _BASE_BEDROCK, inferred=True),
    # v2.35.0..v2.35.1 contain 000532 and not 000539.
    CoderRelease("v2.35", 532, 538, _V235_BEDROCK, inferred=True),
    # main @ f963381 ends at 000551; issue #19: "what shipped as v2.36".
    CoderRelease("v2.36", 539, NEWEST_KNOWN_MIGRATION, _V236_BEDROCK, inferred=True),
    # v2.37, v2.38 and later: migration numbers unknown here. Written like v2.36 (the
    # settings format, lock 10 and ai_providers_changed are unchanged per issue #19).
    CoderRelease(
        "v2.37 or later",
        NEWEST_KNOWN_MIGRATION + 1,
        None,
        _V236_BEDROCK,
        inferred=True,
        known=False,
    ),
)


def release_for(migration: int) -> CoderRelease:
    """The release row containing ``migration``."""
    for release in CODER_RELEASES:
        if release.contains(migration):
            return release
    return CODER_RELEASES[0]  # negative numbers: nothing we know


@dataclass(frozen=True)
class CoderVersion:
    """The Coder schema this store talks to, as read from ``schema_migrations`` at start."""

    migration: int
    dirty: bool
    release: CoderRelease

    @classmethod
    def of(cls, migration: int, dirty: bool = False) -> CoderVersion:
        return cls(migration, dirty, release_for(migration))

    @property
    def label(self) -> str:
        """E.g. ``Coder v2.35 (schema migration 000532)``."""
        return f"Coder {self.release.label} (schema migration {self.migration:06d})"

    @property
    def supported(self) -> bool:
        return self.release.supported

    @property
    def newer_than_known(self) -> bool:
        return not self.release.known

    @property
    def bedrock_fields(self) -> frozenset[str]:
        return self.release.bedrock_fields


NEWEST = CoderVersion.of(NEWEST_KNOWN_MIGRATION)
"""What pure code assumes when no version is given: the newest known schema."""
