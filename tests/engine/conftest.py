"""Engines over the embedded model, loaded once per session.

The engine's worker thread does not belong to any event loop (each generation
binds to the loop running when it is submitted), so session-scoped engines are
safe with pytest-asyncio's per-test loops.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.engine.batched import BatchedEngine
from runtime.engine.types import ModelSpec

SMALL_CONTEXT = 64


@pytest.fixture(scope="session")
def engine(embedded_model_path: Path) -> Iterator[BatchedEngine]:
    """The engine with one slot (`parallel: 1`, the default)."""
    engine = BatchedEngine.load(ModelSpec(str(embedded_model_path)))
    yield engine
    engine.shutdown()


@pytest.fixture(scope="session")
def small_engine(embedded_model_path: Path) -> Iterator[BatchedEngine]:
    """The same model with a 64-token context, for context-limit tests."""
    engine = BatchedEngine.load(ModelSpec(str(embedded_model_path), n_ctx=SMALL_CONTEXT))
    yield engine
    engine.shutdown()


@pytest.fixture(scope="session")
def batched(embedded_model_path: Path) -> Iterator[BatchedEngine]:
    """The batching engine: 4 slots of 1,024 tokens, prompts in chunks of 64."""
    engine = BatchedEngine.load(
        ModelSpec(str(embedded_model_path), n_ctx=1024, n_batch=64, parallel=4, max_queue=256)
    )
    yield engine
    engine.shutdown()
