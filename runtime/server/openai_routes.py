"""The OpenAI-compatible API under /v1: models, chat completions, completions.

A "model" is a model component of the compose file, named by its component id
or by its model (the `model:` string, or a mapping's repository or path).
Requests run straight on the component's model (no workflow), under the same
concurrency limit as its actions. The model name a request gives is the one
its response echoes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from runtime.config.schema import ComposeConfig
from runtime.engine.types import GenerationResult
from runtime.errors import PromptTooLongError
from runtime.server import streaming
from runtime.server.deps import ServiceDep, ready
from runtime.server.openai_errors import (
    OpenAIRequestError,
    context_length_exceeded,
    model_not_found,
)
from runtime.server.openai_models import (
    DONE,
    ChatCompletion,
    ChatCompletionChunk,
    Model,
    ModelList,
    OpenAIError,
    TextCompletion,
    TextCompletionChunk,
)
from runtime.server.openai_replies import chat_chunks, chat_completion, text_chunks, text_completion
from runtime.server.openai_requests import ChatCompletionBody, CompletionBody
from runtime.server.openai_stream import (
    BackgroundGeneration,
    ChunkFormat,
    Event,
    chunk_events,
    unfinished_error,
)
from runtime.server.openapi import error_responses, event_stream
from runtime.service import Service
from runtime.tasks.common import component_max_tokens, component_reasoning

# Paths relative to the /v1 app (app.py mounts it); its 404s and 405s are
# its handlers' (openai_errors.py).
router = APIRouter()


def generation_responses(answer: Any, chunk: Any) -> dict[int | str, dict[str, Any]]:
    """A completion answers JSON, or with `stream: true` its chunks, then an
    error event if it failed midway, then `[DONE]`. (A body over the size
    limit is refused by the middleware, in OpenAI's shape too.)"""
    return {
        200: {
            "model": answer,
            "description": "The completion, or with stream: true its chunks.",
            "content": {"text/event-stream": event_stream(chunk | OpenAIError, final=DONE)},
        },
        **error_responses(OpenAIError, 400, 404, 413, 500, 503),
    }


# -- models ------------------------------------------------------------------------


def served_models(config: ComposeConfig) -> dict[str, str]:
    """Every name a request may use → its component id: component ids first."""
    models = config.model_components  # a workflow component serves no model
    names = {component.id: component.id for component in models}
    for component in models:
        names.setdefault(component.model_name, component.id)
    return names


def component_for(config: ComposeConfig, model: str) -> str:
    names = served_models(config)
    if model not in names:
        raise model_not_found(model, list(names))
    return names[model]


def created_at(request: Request) -> int:
    """When the /v1 app was made (OpenAI's `created` of its models)."""
    return int(request.app.state.created)


def model_entry(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "model-compose"}


@router.get("/models", response_model=ModelList)
async def list_models(request: Request, service: ServiceDep) -> dict[str, Any]:
    created = created_at(request)
    names = served_models(service.config)
    return {"object": "list", "data": [model_entry(name, created) for name in names]}


@router.get(
    "/models/{model_id:path}",
    response_model=Model,
    responses=error_responses(OpenAIError, 404),
)
async def get_model(model_id: str, request: Request, service: ServiceDep) -> dict[str, Any]:
    component_for(service.config, model_id)
    return model_entry(model_id, created_at(request))


# -- completions -------------------------------------------------------------------


@router.post(
    "/chat/completions",
    response_model=None,
    responses=generation_responses(ChatCompletion, ChatCompletionChunk),
)
async def chat_completions(
    body: ChatCompletionBody, request: Request, service: ServiceDep
) -> Response:
    return await generate(request, service, body, "messages", chat_chunks, chat_completion)


@router.post(
    "/completions",
    response_model=None,
    responses=generation_responses(TextCompletion, TextCompletionChunk),
)
async def completions(body: CompletionBody, request: Request, service: ServiceDep) -> Response:
    return await generate(request, service, body, "prompt", text_chunks, text_completion)


async def generate(
    request: Request,
    service: Service,
    body: Any,
    prompt_param: str,
    chunks: Callable[[Any], ChunkFormat],
    reply: Callable[[Any, GenerationResult], dict[str, Any]],
) -> Response:
    """Both completion endpoints: their chunks, or their reply."""
    return await respond_with_generation(
        request,
        service,
        body,
        prompt_param,
        stream=lambda generation, first: chunk_events(generation, first, chunks(body)),
        reply=lambda result: reply(body, result),
    )


# How an endpoint streams a generation, from its first event on.
StreamFrom = Callable[[BackgroundGeneration, Event], AsyncIterator[Any]]


async def respond_with_generation(
    request: Request,
    service: Service,
    body: Any,
    prompt_param: str,
    stream: StreamFrom,
    reply: Callable[[GenerationResult], dict[str, Any]],
) -> Response:
    """Every generating endpoint: start the generation `body` asks for (its
    `model`, `stream` and `generation_request`) and wait for its first event
    (for a non-streaming request, its result), so that a prompt that does
    not fit, or any other failure before the first token, is still a plain
    JSON error; then stream, or answer with the reply."""
    component_id = component_for(service.config, body.model)
    component = service.config.component(component_id)
    generation_request = body.generation_request(
        component_reasoning(component), component_max_tokens(component)
    )
    ready(service)
    generation = BackgroundGeneration(
        service.components, component_id, generation_request, streaming=body.stream
    )

    def answer(first: Event) -> Response | AsyncIterator[Any]:
        if isinstance(first, PromptTooLongError):
            raise context_length_exceeded(first, prompt_param)
        if isinstance(first, Exception):
            raise first
        if body.stream:
            return stream(generation, first)
        return JSONResponse(reply(finished(first)))

    return await streaming.respond(generation, request, answer, service.write_timeout)


def finished(event: Event) -> GenerationResult:
    """The result of a non-streaming generation (its only event)."""
    if not isinstance(event, GenerationResult):
        raise OpenAIRequestError("the generation sent text to a non-streaming request", status=500)
    error = unfinished_error(event)
    if error is not None:
        raise error
    return event
