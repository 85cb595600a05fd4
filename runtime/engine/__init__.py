"""The llama.cpp engine: model pool, chat formatting, sampling, generation.

The contract types import cheaply; `BatchedEngine`, `ModelPool` and
`EngineFactory` load llama.cpp, so they are imported on first use (code that
only builds requests, such as config validation, stays light).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from runtime.engine.types import (
    CancelToken,
    ChatMessage,
    Delta,
    Engine,
    EngineStats,
    FinishReason,
    Generation,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    ModelSpec,
    SamplingParams,
    Timings,
    Usage,
)

if TYPE_CHECKING:
    from runtime.engine.batched import BatchedEngine
    from runtime.engine.pool import EngineFactory, ModelPool

_LAZY = {
    "BatchedEngine": "runtime.engine.batched",
    "EngineFactory": "runtime.engine.pool",
    "ModelPool": "runtime.engine.pool",
}

__all__ = [
    "BatchedEngine",
    "CancelToken",
    "ChatMessage",
    "Delta",
    "Engine",
    "EngineFactory",
    "EngineStats",
    "FinishReason",
    "Generation",
    "GenerationRequest",
    "GenerationResult",
    "ModelInfo",
    "ModelPool",
    "ModelSpec",
    "SamplingParams",
    "Timings",
    "Usage",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
