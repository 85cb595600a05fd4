"""Whether the engine honours `GenerationRequest.grammar`: tests that need
a constrained answer (a forced tool call on a model that would not call by
itself) are skipped until it does, and run from then on with nothing to
change. Asked of the engine itself, once per session: one greedy request
on the embedded model whose grammar allows nothing but "yes"."""

from __future__ import annotations

import asyncio
import functools

import pytest

from runtime.engine.types import GenerationRequest, ModelSpec, SamplingParams

REASON = "the engine does not honour GenerationRequest.grammar yet (the grammar branch)"


@functools.cache
def engine_honours_grammars() -> bool:
    from convert.embedded import embedded_model_path
    from runtime.engine.batched import BatchedEngine

    path = embedded_model_path()
    if path is None:
        return False
    engine = BatchedEngine.load(ModelSpec(str(path), n_ctx=128))

    async def answer() -> str:
        request = GenerationRequest(
            prompt="Is the sky green? Answer:",
            grammar='root ::= "yes"',
            max_tokens=4,
            sampling=SamplingParams(greedy=True),
        )
        return (await engine.submit(request).result()).text

    try:
        return asyncio.run(answer()) == "yes"
    finally:
        engine.shutdown()


class _GrammarsIgnored:
    """True while the engine ignores grammars. pytest takes a condition's
    truth when a marked test is set up, so collecting loads no model."""

    def __bool__(self) -> bool:
        return not engine_honours_grammars()


needs_grammar = pytest.mark.skipif(_GrammarsIgnored(), reason=REASON)
