"""text-generation: a rendered prompt → the prompt and its continuation
(seed 003: "the complete generated text including the original prompt")."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from runtime.binding import render
from runtime.config.schema import ModelComponent, TextGenerationAction
from runtime.engine.types import Engine
from runtime.errors import InputError
from runtime.tasks.common import (
    action_reasoning,
    action_scope,
    generate,
    generation_request,
    render_flag,
    render_settings,
)
from runtime.tasks.structured import action_grammar, parsed_output
from runtime.workflow.context import RunContext
from runtime.workflow.runner import ActionResult


def prompt_text(value: Any) -> str:
    if value is None or value == "":
        raise InputError("the prompt is empty")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError(f"the prompt must be text, got {type(value).__name__}")
    return str(value)


async def run_text_generation(
    engine: Engine,
    component: ModelComponent,
    action: TextGenerationAction,
    input: Any,
    context: RunContext,
    job_id: str,
) -> ActionResult:
    scope = action_scope(input)
    prompt = prompt_text(render(action.prompt if action.prompt is not None else action.text, scope))
    settings = render_settings(action, scope)
    streaming = render_flag("streaming", action.streaming, scope)
    full_text = settings.return_full_text and render_flag(
        "return_full_text", action.return_full_text, scope
    )
    count = render(action.num_return_sequences, scope)
    count = settings.num_return_sequences if count in (None, 1) else count
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if isinstance(count, float) and count.is_integer():
        count = int(count)  # `${input.n as number}` renders 2.0
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(f"num_return_sequences must be a whole number of 1 or more, got {count!r}")
    reasoning = action_reasoning(component, action, scope)
    grammar = action_grammar(action, scope)
    # A structured result is the parsed continuation: the prompt is no part of it.
    lead = prompt if full_text and grammar is None else ""

    async def one(index: int) -> ActionResult:
        sampling = settings.sampling
        if count > 1 and sampling.seed is not None:
            # Same seed for every sequence would give the same text n times.
            sampling = replace(sampling, seed=sampling.seed + index)
        request = generation_request(
            settings,
            context.cancel,
            prompt=prompt,
            sampling=sampling,
            reasoning=reasoning,
            grammar=grammar,
        )
        result = await generate(engine, request, context, job_id, streaming, lead)
        output = lead + result.text if grammar is None else parsed_output(result)
        return ActionResult(output, result.reasoning)

    if count == 1:
        return await one(0)
    results = await asyncio.gather(*(one(i) for i in range(count)))
    return ActionResult([r.output for r in results], [r.reasoning for r in results])
