"""chat-completion: rendered `messages` → the assistant's reply text."""

from __future__ import annotations

import json
from typing import Any

from runtime.binding import render
from runtime.config.schema import ChatCompletionAction, ModelComponent
from runtime.engine.types import ChatMessage, Engine
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

ROLES = ("system", "user", "assistant", "tool")


def chat_messages(value: Any) -> list[ChatMessage]:
    """Rendered `messages` → ChatMessages. A message whose content rendered to
    null (an optional input left out) is dropped rather than sent empty."""
    if not isinstance(value, list):
        raise InputError(f"messages must be a list of {{role, content}}, got {value!r}")
    messages: list[ChatMessage] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or "role" not in item:
            raise InputError(f"messages[{index}] must be a mapping with 'role' and 'content'")
        role, content = item["role"], item.get("content")
        if role not in ROLES:
            raise InputError(
                f"messages[{index}].role must be one of {', '.join(ROLES)}, got {role!r}"
            )
        if content is None:
            continue
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
        messages.append(ChatMessage(role=role, content=content))
    if not any(m.role == "user" for m in messages):
        raise InputError("the chat has no user message to answer")
    return messages


async def run_chat_completion(
    engine: Engine,
    component: ModelComponent,
    action: ChatCompletionAction,
    input: Any,
    context: RunContext,
    job_id: str,
) -> ActionResult:
    scope = action_scope(input)
    # A chat turn (the Web UI) brings its conversation in place of the messages.
    messages = context.messages or chat_messages(render(action.messages, scope))
    settings = render_settings(action, scope)
    streaming = render_flag("streaming", action.streaming, scope)
    reasoning = action_reasoning(component, action, scope)
    grammar = action_grammar(action, scope)
    request = generation_request(
        settings, context.cancel, messages=messages, reasoning=reasoning, grammar=grammar
    )
    result = await generate(engine, request, context, job_id, streaming)
    output = result.text if grammar is None else parsed_output(result)
    return ActionResult(output, result.reasoning)
