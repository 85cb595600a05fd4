"""The reference answers: every prompt run alone, one request at a time,
through the same server and endpoint (greedy, so the answer under load must
be the same text)."""

from __future__ import annotations

import httpx

from scripts.reliability.clients import Outcome, stream_request


def key(endpoint: str, prompt: int) -> str:
    return f"{endpoint}/{prompt}"


async def reference_answers(
    client: httpx.AsyncClient, prompts: list[str], max_tokens: int, endpoints: tuple[str, ...]
) -> dict[str, Outcome]:
    """`key(endpoint, prompt)` → its answer alone; RuntimeError if one fails
    (nothing can be compared against it). Each prompt goes to every endpoint
    in turn, so that after the first its prompt is in the prefix cache."""
    answers = {}
    for index, prompt in enumerate(prompts):
        for endpoint in endpoints:
            outcome = await stream_request(client, endpoint, prompt, index, max_tokens)
            if not outcome.answered or not outcome.text:
                raise RuntimeError(
                    f"the reference request {key(endpoint, index)} failed alone: "
                    f"{outcome.problem or outcome.finish_reason!r}"
                )
            answers[key(endpoint, index)] = outcome
    return answers
