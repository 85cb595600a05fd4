"""A streamed run's text on its way to Redis (the worker's side of the
stream: `{name}:{workflow_id}:{run_id}:stream`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from redis.asyncio import Redis

from runtime.engine.logprobs import TokenLogprob
from runtime.engine.types import GenerationResult

# Pieces of text that may wait for Redis before the run waits too.
MAX_PENDING = 256


class StreamWriter:
    """Writes a run's text to its Redis stream as it is generated. While one
    write is on its way, new text waits and goes with the next one, merged
    with its neighbours (one entry per stretch of answer or of reasoning): a
    token costs no round trip of its own, so the stream keeps pace with the
    model (a write per token cost 8% of the tokens/s on 2 cores). The run
    waits only when MAX_PENDING pieces wait: a stalled Redis slows the run
    down instead of filling memory."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis = redis
        self.key = key
        self.pending: list[tuple[str, bool]] = []
        self.writing: asyncio.Task[None] | None = None

    def on_delta(
        self,
        job_id: str,
        text: str,
        streaming: bool,
        reasoning: bool = False,
        logprobs: tuple[TokenLogprob, ...] = (),
    ) -> Awaitable[None] | None:
        self.pending.append((text, reasoning))
        if self.writing is None or self.writing.done():
            self.writing = asyncio.create_task(self._write(), name=f"stream:{self.key}")
        return self.writing if len(self.pending) > MAX_PENDING else None

    def on_result(self, job_id: str, result: GenerationResult) -> None:
        pass

    async def drain(self) -> None:
        """Wait until every piece is in Redis (before the stream's last
        entry); raises the Redis error a write met."""
        while self.writing is not None:
            writing = self.writing
            await writing
            if writing is self.writing and not self.pending:
                return

    async def _write(self) -> None:
        while self.pending:
            pieces, self.pending = self.pending, []
            async with self.redis.pipeline(transaction=False) as pipe:
                for text, reasoning in merged(pieces):
                    fields = {"event": "chunk", "data": text}
                    if reasoning:
                        fields["reasoning"] = "1"
                    pipe.xadd(self.key, fields)  # type: ignore[arg-type]
                await pipe.execute()


def merged(pieces: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Consecutive pieces of the same kind (answer or reasoning) as one."""
    runs: list[tuple[str, bool]] = []
    for text, reasoning in pieces:
        if runs and runs[-1][1] == reasoning:
            runs[-1] = (runs[-1][0] + text, reasoning)
        else:
            runs.append((text, reasoning))
    return runs
