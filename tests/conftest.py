"""Shared fixtures: the real public data under ../shared/data (see its README)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REWARDLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data directory; tests that need it skip, saying why, when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set REWARDLAB_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def store(shared_data: Path) -> Path:
    """Spider's department_store database folder, for the SQL rewards."""
    return shared_data / "sql" / "spider_department_store"


@pytest.fixture(scope="session")
def questions(store: Path) -> list[dict[str, Any]]:
    """Spider's department_store questions with their gold queries (`output`)."""
    return json.loads((store / "questions.json").read_text())
