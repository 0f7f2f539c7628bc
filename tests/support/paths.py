"""Where the checkout is, for tests (and the root conftest) that read or apply its files."""

from __future__ import annotations

from pathlib import Path


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
