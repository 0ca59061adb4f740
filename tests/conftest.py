"""Suite-wide fixtures. Tests that need the team data take the `data_dir` fixture: under CI it
fails loudly when the data is missing; on a laptop without the data it skips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("STREAMSENSE_DATA_DIR", "data"))
    if not path.is_dir():
        message = f"team data not found at {path} (set STREAMSENSE_DATA_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
