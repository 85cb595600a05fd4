"""Tiny random-weight llama models that llama.cpp loads and runs, made with
the `gguf` package (convert.synthetic): about 1M parameters, written in
milliseconds. Tests that need *a* GGUF model use these; tests that need
sensible answers use the embedded model.

- `tiny_model`: one F16 tiny model per session (do not modify it).
- `tiny_model_factory(path=None, *, quant=None, **options)`: a new model;
  `options` are `write_llama_gguf`'s (n_layers, n_ctx_train, file_type,
  seed, name...), `quant` quantizes it (e.g. "Q4_K_M") through llama.cpp,
  `path` (absolute, or relative to a fresh temporary folder) names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pytest

from convert.quantize import quantize
from convert.synthetic import write_llama_gguf
from tests.convert.hub_fixtures import hub  # noqa: F401  (the Hub stand-in)


class TinyModelFactory(Protocol):
    def __call__(
        self, path: str | Path | None = None, *, quant: str | None = None, **options: Any
    ) -> Path: ...


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory: pytest.TempPathFactory) -> TinyModelFactory:
    def make(path: str | Path | None = None, *, quant: str | None = None, **options: Any) -> Path:
        target = tmp_path_factory.mktemp("tiny") / (path or "tiny.gguf")
        if quant is None:
            return write_llama_gguf(target, **options)
        source = write_llama_gguf(target.with_name(target.name + ".f16.gguf"), **options)
        quantize(source, target, quant)
        source.unlink()
        return target

    return make


@pytest.fixture(scope="session")
def tiny_model(tiny_model_factory: TinyModelFactory) -> Path:
    return tiny_model_factory("tiny-f16.gguf", name="tiny")
