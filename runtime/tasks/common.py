"""What both tasks share: rendering an action, streaming one generation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.binding import render
from runtime.config.schema import ModelComponent
from runtime.engine.types import (
    CancelToken,
    ChatMessage,
    Engine,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
)
from runtime.errors import InputError
from runtime.tasks.params import GenerationSettings, generation_settings, reasoning_budget
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


@dataclass(frozen=True)
class ReasoningSettings:
    """A reasoning model's controls: chat template variables (thinking on or
    off is `enable_thinking`) and the reasoning budget."""

    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None

    def but(
        self,
        *,
        kwargs: dict[str, Any] | None = None,
        thinking: bool | None = None,
        budget: int | None = None,
    ) -> ReasoningSettings:
        """These settings with what a more specific level (an action, a
        request) says; None there leaves a setting as it is."""
        merged = {**self.chat_template_kwargs, **(kwargs or {})}
        if thinking is not None:
            merged["enable_thinking"] = thinking
        return ReasoningSettings(merged, self.budget if budget is None else budget)


def component_reasoning(component: ModelComponent) -> ReasoningSettings:
    """The component's own reasoning settings: its actions' and its /v1 requests' defaults."""
    return ReasoningSettings(budget=component.reasoning_budget).but(
        kwargs=component.chat_template_kwargs, thinking=component.thinking
    )


def component_max_tokens(component: ModelComponent) -> int | None:
    """The answer length of the component's /v1 requests that set none: its
    default action's `max_output_length` when that is a plain number (a
    binding such as `${input.max_tokens}` has no value outside a run)."""
    if not component.actions:
        return None
    value = component.actions[0].max_output_length
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def action_reasoning(
    component: ModelComponent, action: Any, scope: dict[str, Any]
) -> ReasoningSettings:
    """The component's reasoning settings with the action's rendered ones on
    top. A binding that renders to null (an optional input left out) leaves
    the component's setting in place."""
    kwargs = render(getattr(action, "chat_template_kwargs", None), scope)
    if kwargs is not None and not isinstance(kwargs, dict):
        raise InputError(f"chat_template_kwargs must be a mapping, got {kwargs!r}")
    thinking = render(getattr(action, "thinking", None), scope)
    if thinking is not None:
        thinking = render_flag("thinking", thinking, scope)
    return component_reasoning(component).but(
        kwargs=kwargs,
        thinking=thinking,
        budget=reasoning_budget(render(action.reasoning_budget, scope)),
    )


def generation_request(
    settings: GenerationSettings,
    cancel: CancelToken,
    *,
    messages: list[ChatMessage] | None = None,
    prompt: str | None = None,
    sampling: SamplingParams | None = None,
    reasoning: ReasoningSettings | None = None,
    grammar: str | None = None,
) -> GenerationRequest:
    """The engine request for an action's rendered settings. `cancel` is the
    run's token, taken at construction: the engine watches the request's own."""
    reasoning = reasoning or ReasoningSettings()
    return GenerationRequest(
        prompt=prompt,
        messages=messages,
        sampling=settings.sampling if sampling is None else sampling,
        stop=settings.stop,
        max_tokens=settings.max_tokens,
        max_length=settings.max_length,
        chat_template_kwargs=reasoning.chat_template_kwargs,
        reasoning_budget=reasoning.budget,
        grammar=grammar,
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
            if not delta.reasoning:  # the lead goes with the answer, not the reasoning
                await context.delta(job_id, lead, streaming)
                lead = ""
            await context.delta(
                job_id,
                delta.text,
                streaming,
                reasoning=delta.reasoning,
                logprobs=delta.logprobs,
            )
        result = await generation.result()
    except BaseException:
        # The engine does not notice an abandoned generation by itself: a run
        # that fails or is cancelled must free the model for the next request.
        generation.cancel()
        raise
    await context.delta(job_id, lead, streaming)
    context.finished(job_id, result)
    return result
