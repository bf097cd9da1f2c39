"""Fixtures the unit tests of several areas share."""

from __future__ import annotations

from pathlib import Path

import pytest

from testing.tinymodel import build_tiny_model


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny Llama for the session, saved as a hub checkpoint is (testing/tinymodel.py)."""
    return build_tiny_model(tmp_path_factory.getbasetemp() / "tiny-model")
