"""Operator settings from ``AIGW_*`` environment variables (pydantic-settings).

Secrets arrive either inline (``AIGW_DATABASE_URL``, ``AIGW_ENCRYPTION_KEYS``) or, better in
Kubernetes, as files mounted from a Secret (``AIGW_DATABASE_URL_FILE``,
``AIGW_ENCRYPTION_KEYS_FILE``); setting both forms of one value is an error. Secrets are held
as :class:`~pydantic.SecretStr` and validation errors hide their input
(``hide_input_in_errors``), and every message we write ourselves names the variable, never
its value: a DSN password or an encryption key must not end up in a log or an Event.

``AIGW_ENCRYPTION_KEYS`` has the format of coderd's ``CODER_EXTERNAL_TOKEN_ENCRYPTION_KEYS``:
comma-separated standard base64, each decoding to 32 bytes; the first encrypts, all decrypt.
Give the operator the **same list as coderd** (reference §2.5). Empty means "no encryption",
which the store accepts only when chosen with ``AIGW_ALLOW_PLAINTEXT=true`` (and even then
never writes a secret in plaintext while coderd has an active key).
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from pathlib import Path
from typing import Self
from uuid import UUID

from pydantic import Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "AdmissionFailurePolicy",
    "ConfigError",
    "LogFormat",
    "SecretAccess",
    "Settings",
    "parse_encryption_keys",
]

NIL_UUID = UUID(int=0)


class ConfigError(ValueError):
    """A setting is missing or malformed. The message names the variable, never its value."""


#: ``AIGW_INSTANCE_ID``: a DNS-label-like name.
INSTANCE_ID = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class SecretAccess(StrEnum):
    """``AIGW_SECRET_ACCESS``: which Secrets of its namespace an AIProvider may use."""

    ANNOTATED = "annotated"
    """Only Secrets that opt in with ``aigateway.dev/allowed-aiproviders`` (the default)."""
    NAMESPACE = "namespace"
    """Any Secret of the object's namespace (for clusters without namespace tenants)."""


class AdmissionFailurePolicy(StrEnum):
    """``AIGW_ADMISSION_FAILURE_POLICY``: what the API server does when the webhook does not
    answer (the webhook configuration's ``failurePolicy``)."""

    IGNORE = "Ignore"
    """Admit the request unchecked (the default: an apply never hangs or fails because the
    operator is down; the status still reports everything)."""
    FAIL = "Fail"
    """Refuse the request: nothing unchecked gets in, and nothing at all while no replica
    answers."""


class LogFormat(StrEnum):
    """``AIGW_LOG_FORMAT``."""

    TEXT = "text"
    JSON = "json"


def parse_encryption_keys(raw: str, source: str = "AIGW_ENCRYPTION_KEYS") -> tuple[bytes, ...]:
    """Parse coderd's key-list format. Errors name the entry's position, never its content."""
    entries = [e.strip() for e in raw.split(",")]
    if entries == [""]:
        return ()
    keys: list[bytes] = []
    for i, entry in enumerate(entries, start=1):
        where = f"{source}: entry {i} of {len(entries)}"
        if not entry:
            raise ConfigError(f"{where} is empty (stray comma?)")
        try:
            key = base64.b64decode(entry, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where} is not valid standard base64") from None
        if len(key) != 32:
            raise ConfigError(f"{where} decodes to {len(key)} bytes; keys must be 32 bytes")
        keys.append(key)
    return tuple(keys)


def _read_secret_file(path: Path, var: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"{var}: cannot read {path}: {exc.strerror or type(exc).__name__}"
        ) from None


class Settings(BaseSettings):
    """All ``AIGW_*`` settings. Construct with ``Settings()`` to read the environment."""

    model_config = SettingsConfigDict(
        env_prefix="AIGW_",
        hide_input_in_errors=True,
        extra="ignore",
        populate_by_name=True,
    )

    database_url: SecretStr | None = None
    """libpq URL/DSN of Coder's Postgres (``AIGW_DATABASE_URL``)."""
    database_url_file: Path | None = None
    """File holding the URL (``AIGW_DATABASE_URL_FILE``), e.g. a mounted Secret."""
    encryption_keys: SecretStr | None = None
    """coderd's key list (``AIGW_ENCRYPTION_KEYS``); empty/unset = plaintext."""
    encryption_keys_file: Path | None = None
    """File holding the key list (``AIGW_ENCRYPTION_KEYS_FILE``)."""
    allow_plaintext: bool = False
    """``AIGW_ALLOW_PLAINTEXT``: without encryption keys, write API keys and settings in
    plaintext (NULL key ids) as coderd without keys does. Off by default: without keys the
    store refuses to start. Never used while coderd has an active ``dbcrypt_keys`` key."""
    audit_user_id: UUID = NIL_UUID
    """Actor recorded in ``audit_logs.user_id``; coderd has no user for an operator, so the
    default is the nil UUID. Point it at a dedicated Coder user to make entries attributable."""
    pool_min_size: int = Field(default=1, ge=0, le=50)
    pool_max_size: int = Field(default=4, ge=1, le=50)
    pool_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """Longest wait for a free pooled connection before failing with StoreUnavailable."""
    connect_timeout_s: int = Field(default=5, ge=1, le=120)
    statement_timeout_ms: int = Field(default=10_000, ge=100, le=600_000)
    """Per-statement cap; our statements are tiny, so hitting it means something is stuck."""
    lock_timeout_ms: int = Field(default=5_000, ge=100, le=600_000)
    """Cap on waiting for advisory lock 10 or a row lock (coderd's seed/readers hold them)."""
    idle_in_transaction_timeout_ms: int = Field(default=30_000, ge=1_000, le=3_600_000)
    """Server-side guard: a transaction we abandon can never hold coderd's lock for long."""
    application_name: str = Field(default="aigateway-operator", max_length=63)

    # --- the operator process ---------------------------------------------------------------
    namespaces: str = ""
    """``AIGW_NAMESPACES``: comma-separated namespaces to watch; empty watches all."""
    verify_interval_s: float = Field(default=900.0, ge=10, le=86_400)
    """How often a Bedrock identity is re-verified with STS even when nothing changed."""
    resync_interval_s: float = Field(default=600.0, ge=10, le=86_400)
    """Backstop resync of every object against the database (drift a notify did not show)."""
    gc_grace_s: float = Field(default=900.0, ge=0, le=7 * 86_400)
    """``AIGW_GC_GRACE_S``: how long a recorded object must have been seen missing (by the
    periodic sweep, with a 404 from the API server) before its rows are collected per their
    recorded deletion policy. Covers a cluster rebuilt from Git whose objects arrive after
    the operator. A deletion the operator sees (a watch event) is applied at once."""
    heartbeat_interval_s: float = Field(default=60.0, ge=5, le=3_600)
    """How often gateway-key heartbeats are mirrored into status."""
    gateway_heartbeat_period_s: float = Field(default=60.0, ge=1, le=3_600)
    """``AIGW_GATEWAY_HEARTBEAT_PERIOD_S``: how often coderd records a connected gateway's
    heartbeat (``last_heartbeat_at``; coderd's own period is 60 s). After a rotation the
    previous key counts as no longer used once its last heartbeat is older than 1.5 periods
    (a late beat is not mistaken for a gateway gone)."""
    metrics_port: int = Field(default=9090, ge=0, le=65_535)
    """Port of the Prometheus ``/metrics`` endpoint; 0 disables it."""
    health_port: int = Field(default=8080, ge=0, le=65_535)
    """Port of the probe endpoints (``/startupz``, ``/healthz``, ``/readyz``); 0 disables them."""
    peering: str = ""
    """kopf peering name for multi-replica installs (one active replica); empty = standalone."""
    peering_priority: int | None = Field(default=None, ge=0, le=2**31 - 1)
    """This replica's peering priority; unset = by seniority (a replica started earlier ranks
    higher, so a new one never preempts the active one; see ``operator.seniority_priority``)."""
    peering_lifetime_s: int = Field(default=60, ge=5, le=3_600)
    """How long a replica's peering heartbeat stays valid: a dead active replica's successor
    takes over after at most this long."""
    max_workers: int = Field(default=64, ge=1, le=10_000)
    """AIProvider passes run at once (the controller's workers; gateway keys get an eighth, at
    least 2). Without a limit a burst of thousands of new objects runs
    thousands of passes at once: no faster on a few cores, and the memory high-water mark of
    the burst is never returned to the OS."""
    drift_debounce_s: float = Field(default=0.3, ge=0, le=30)
    """How long to gather ``ai_providers_changed`` notifies before checking rows for drift."""

    # --- ownership and tenancy --------------------------------------------------------------
    instance_id: str = Field(default="default", min_length=1, max_length=63, pattern=INSTANCE_ID)
    """``AIGW_INSTANCE_ID``: who this operator install is in Coder's database. Every row it
    writes is recorded as owned by (instance id, kind, namespace, name), so the same value
    after a cluster rebuild from the same Git takes the same rows back; two clusters writing
    to one Coder must use different values (see docs/security.md, "Two clusters, one Coder")."""
    adoption_namespaces: str = ""
    """``AIGW_ADOPTION_NAMESPACES``: namespaces whose AIProviders may take over
    (``spec.adoptExisting``) a provider made in Coder's UI; comma-separated, ``*`` for all;
    empty (the default): none may."""
    secret_access: SecretAccess = SecretAccess.ANNOTATED
    """``AIGW_SECRET_ACCESS``: ``annotated`` (default: a Secret is used only when its
    ``aigateway.dev/allowed-aiproviders`` annotation names the AIProvider, or ``*``) or
    ``namespace`` (any Secret of the object's namespace)."""

    # --- admission (the validating webhook) -------------------------------------------------
    admission: bool = False
    """``AIGW_ADMISSION``: serve the validating webhook for both kinds (deny what can never
    converge, warn, print the plan). Off by default."""
    admission_failure_policy: AdmissionFailurePolicy = AdmissionFailurePolicy.IGNORE
    """``AIGW_ADMISSION_FAILURE_POLICY``: ``Ignore`` (default) or ``Fail``."""
    admission_addr: str = "0.0.0.0"  # noqa: S104 - a pod serves the API server on its IP
    """``AIGW_ADMISSION_ADDR``: the address the webhook server listens on."""
    admission_port: int = Field(default=9443, ge=0, le=65_535)
    """``AIGW_ADMISSION_PORT``: its port (0: a free one, for tests)."""
    admission_host: str = ""
    """``AIGW_ADMISSION_HOST``: the host name the API server calls (the webhook URL and the
    self-signed certificate's name), e.g. the Service's ``name.namespace.svc``; empty: the
    listening address (``127.0.0.1`` for ``0.0.0.0``)."""
    admission_config_name: str = Field(default="aigateway-operator.aigateway.dev", max_length=253)
    """``AIGW_ADMISSION_CONFIG_NAME``: the ValidatingWebhookConfiguration kopf keeps up to
    date (kopf's managed mode); empty: none is managed (one made elsewhere points at us)."""
    admission_cert_file: Path | None = None
    """``AIGW_ADMISSION_CERT_FILE``: the server certificate (PEM; e.g. cert-manager's
    ``tls.crt``); unset: a self-signed one is made at start."""
    admission_key_file: Path | None = None
    """``AIGW_ADMISSION_KEY_FILE``: its private key (PEM; ``tls.key``)."""
    admission_ca_file: Path | None = None
    """``AIGW_ADMISSION_CA_FILE``: the CA bundle the API server trusts (``ca.crt``); unset:
    the certificate file itself."""
    admission_timeout_s: float = Field(default=8.0, gt=0, le=25)
    """``AIGW_ADMISSION_TIMEOUT_S``: an answer is given within this (kopf gives the API
    server 30 s): checks still running then are skipped with a warning."""

    # --- logs -------------------------------------------------------------------------------
    log_format: LogFormat = LogFormat.TEXT
    """``AIGW_LOG_FORMAT``: ``text`` or ``json`` (one JSON object per line)."""

    _keys: tuple[bytes, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _resolve_secrets(self) -> Self:
        if self.database_url is not None and self.database_url_file is not None:
            raise ConfigError("set AIGW_DATABASE_URL or AIGW_DATABASE_URL_FILE, not both")
        if self.database_url_file is not None:
            self.database_url = SecretStr(
                _read_secret_file(self.database_url_file, "AIGW_DATABASE_URL_FILE")
            )
        if self.database_url is not None:
            _check_dsn(self.database_url.get_secret_value())

        if self.encryption_keys is not None and self.encryption_keys_file is not None:
            raise ConfigError("set AIGW_ENCRYPTION_KEYS or AIGW_ENCRYPTION_KEYS_FILE, not both")
        if self.encryption_keys_file is not None:
            raw = _read_secret_file(self.encryption_keys_file, "AIGW_ENCRYPTION_KEYS_FILE")
            self._keys = parse_encryption_keys(raw, "AIGW_ENCRYPTION_KEYS_FILE")
        elif self.encryption_keys is not None:
            self._keys = parse_encryption_keys(self.encryption_keys.get_secret_value())
        if (self.admission_cert_file is None) != (self.admission_key_file is None):
            raise ConfigError(
                "set both AIGW_ADMISSION_CERT_FILE and AIGW_ADMISSION_KEY_FILE, or neither"
            )
        if self.pool_min_size > self.pool_max_size:
            raise ConfigError("AIGW_POOL_MIN_SIZE must not exceed AIGW_POOL_MAX_SIZE")
        return self

    def encryption_key_bytes(self) -> tuple[bytes, ...]:
        """The decoded keys, primary first (empty tuple: no encryption)."""
        return self._keys

    def namespace_list(self) -> tuple[str, ...]:
        """``AIGW_NAMESPACES`` as a tuple; empty means cluster-wide."""
        return tuple(n.strip() for n in self.namespaces.split(",") if n.strip())

    def may_adopt(self, namespace: str) -> bool:
        """Whether AIProviders in ``namespace`` may adopt rows made in Coder's UI."""
        allowed = {n.strip() for n in self.adoption_namespaces.split(",") if n.strip()}
        return "*" in allowed or namespace in allowed

    def require_database_url(self) -> str:
        """The DSN, or a :class:`ConfigError` naming both ways to set it."""
        if self.database_url is None or not self.database_url.get_secret_value():
            raise ConfigError("AIGW_DATABASE_URL or AIGW_DATABASE_URL_FILE must be set")
        return self.database_url.get_secret_value()

    def redactions(self) -> tuple[str, ...]:
        """Strings that must never appear in a message: the DSN and its password."""
        out: list[str] = []
        if self.database_url is not None:
            dsn = self.database_url.get_secret_value()
            if dsn:
                out.append(dsn)
                password = _dsn_password(dsn)
                if password:
                    out.append(password)
        return tuple(out)


def _check_dsn(dsn: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(dsn)
    except Exception:
        # libpq's parse errors quote the offending fragment, which may be the password.
        raise ConfigError("AIGW_DATABASE_URL is not a valid libpq connection string") from None


def _dsn_password(dsn: str) -> str | None:
    from psycopg.conninfo import conninfo_to_dict

    try:
        value = conninfo_to_dict(dsn).get("password")
    except Exception:
        return None
    return str(value) if value else None
