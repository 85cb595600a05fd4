"""What both tasks share: rendering an action, streaming one generation."""

from __future__ import annotations

from typing import Any

from runtime.binding import render
from runtime.engine.types import (
    CancelToken,
    ChatMessage,
    Engine,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
)
from runtime.errors import InputError
from runtime.tasks.params import GenerationSettings, generation_settings
from runtime.workflow.context import RunContext


def action_scope(input: Any) -> dict[str, Any]:
    return {"input": input}


def render_flag(name: str, value: Any, scope: dict[str, Any]) -> bool:
    value = render(value, scope)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InputError(f"{name} must be true or false, got {value!r}")


def render_settings(action: Any, scope: dict[str, Any]) -> GenerationSettings:
    params = render(action.params, scope) or {}
    if not isinstance(params, dict):
        raise InputError(f"params must be a mapping, got {params!r}")
    max_output_length = render(action.max_output_length, scope)
    stop = render(action.stop_sequences, scope)
    return generation_settings(params, max_output_length, stop)


def generation_request(
    settings: GenerationSettings,
    cancel: CancelToken,
    *,
    messages: list[ChatMessage] | None = None,
    prompt: str | None = None,
    sampling: SamplingParams | None = None,
) -> GenerationRequest:
    """The engine request for an action's rendered settings. `cancel` is the
    run's token, taken at construction: the engine watches the request's own."""
    return GenerationRequest(
        prompt=prompt,
        messages=messages,
        sampling=settings.sampling if sampling is None else sampling,
        stop=settings.stop,
        max_tokens=settings.max_tokens,
        max_length=settings.max_length,
        cancel=cancel,
    )


async def generate(
    engine: Engine,
    request: GenerationRequest,
    context: RunContext,
    job_id: str,
    streaming: bool,
    lead: str = "",
) -> GenerationResult:
    """Run one generation, passing its deltas (after `lead`, text that is part
    of the output but not generated) to the run's listener. The request
    carries the run's cancel token (see `generation_request`)."""
    generation = engine.submit(request)
    try:
        # The lead goes out with the first generated text, not at submit: when
        # several generations queue at once (repeats, num_return_sequences), each
        # one's lead then stays next to its own text instead of all leads first.
        async for delta in generation:
            await context.delta(job_id, lead, streaming)
            lead = ""
            await context.delta(job_id, delta.text, streaming)
        result = await generation.result()
    except BaseException:
        # The engine does not notice an abandoned generation by itself: a run
        # that fails or is cancelled must free the model for the next request.
        generation.cancel()
        raise
    await context.delta(job_id, lead, streaming)
    context.finished(job_id, result)
    return result
