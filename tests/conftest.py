"""Shared test helpers: where ../shared is, and skipping (with the reason) when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCHOOLPLAN_SHARED", PROJECT_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder, or skip: fixtures are read there and never copied into the project."""
    if not (SHARED / "fixtures").is_dir():
        pytest.skip(f"../shared is absent ({SHARED}): published reference fixtures are read from there")
    return SHARED


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT
