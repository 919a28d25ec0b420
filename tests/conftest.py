"""Shared test configuration.

Tests run in FAST mode with their own data home (``./dev test`` sets both;
running pytest directly falls back to a folder under ``.cache/``), so they
never touch a user's ``~/.ocnb_data``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OCNB_FAST", "1")
os.environ.setdefault("OCNB_DATA_DIR", str(ROOT / ".cache" / "test-data-home"))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Folder for test artefacts (screenshots, executed notebooks); git-ignored."""
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def tmp_data_home(tmp_path, monkeypatch) -> Path:
    """An empty, private data home for tests that write caches."""
    monkeypatch.setenv("OCNB_DATA_DIR", str(tmp_path / "data-home"))
    return tmp_path / "data-home"
