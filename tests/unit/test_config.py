"""AIGW_* settings: file variants, key parsing, and no secret in any error."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import ValidationError

from aigateway_operator.config import ConfigError, Settings, parse_encryption_keys

pytestmark = pytest.mark.unit

KEY = base64.b64encode(b"k" * 32).decode()
KEY2 = base64.b64encode(b"j" * 32).decode()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for var in list(os.environ):
        if var.startswith("AIGW_"):
            monkeypatch.delenv(var)


def test_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGW_DATABASE_URL", "postgresql://u:pw@h/db")
    monkeypatch.setenv("AIGW_ENCRYPTION_KEYS", f"{KEY}, {KEY2}")
    monkeypatch.setenv("AIGW_AUDIT_USER_ID", "11111111-1111-1111-1111-111111111111")
    s = Settings()
    assert s.encryption_key_bytes() == (b"k" * 32, b"j" * 32)
    assert str(s.audit_user_id).startswith("1111")
    assert "pw" not in repr(s)
    assert KEY not in repr(s)


def test_defaults() -> None:
    s = Settings()
    assert s.encryption_key_bytes() == ()
    assert s.audit_user_id.int == 0
    with pytest.raises(ConfigError, match="AIGW_DATABASE_URL"):
        s.require_database_url()


def test_file_variants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "url").write_text("postgresql://u:pw@h/db\n")
    (tmp_path / "keys").write_text(KEY + "\n")
    monkeypatch.setenv("AIGW_DATABASE_URL_FILE", str(tmp_path / "url"))
    monkeypatch.setenv("AIGW_ENCRYPTION_KEYS_FILE", str(tmp_path / "keys"))
    s = Settings()
    assert s.require_database_url() == "postgresql://u:pw@h/db"
    assert s.encryption_key_bytes() == (b"k" * 32,)
    monkeypatch.setenv("AIGW_DATABASE_URL", "postgresql://u:pw@h/db")
    with pytest.raises(ValidationError, match="not both"):
        Settings()


def test_empty_keys_mean_plaintext() -> None:
    assert parse_encryption_keys("") == ()
    assert parse_encryption_keys("  ") == ()


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("c2VrcmV0LWtleS1tYXRlcmlhbA==", "entry 1 of 1 decodes to 19 bytes"),
        (f"{KEY},not*base64", "entry 2 of 2 is not valid standard base64"),
        (f"{KEY},,{KEY2}", "entry 2 of 3 is empty"),
    ],
)
def test_bad_keys_never_echo_material(raw: str, match: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(encryption_keys=raw)
    text = str(info.value)
    assert match in text
    for part in raw.split(","):
        if part:
            assert part not in text
    assert "secret-key-material" not in text


def test_bad_dsn_never_echoes_password() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(database_url="host=h password=hunter2 'unterminated")
    assert "hunter2" not in str(info.value)
    assert "not a valid libpq connection string" in str(info.value)


def test_redactions_cover_dsn_and_password() -> None:
    s = Settings(database_url="postgresql://u:hunter2@h/db")
    assert "hunter2" in s.redactions()
