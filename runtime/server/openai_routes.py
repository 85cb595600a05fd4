"""The OpenAI-compatible API under /v1: models, chat completions, completions.

A "model" is a model component of the compose file, named by its component id
or by its model (the `model:` string, or a mapping's repository or path).
Requests run straight on the component's model (no workflow), under the same
concurrency limit as its actions. The model name a request gives is the one
its response echoes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import Match

from runtime.config.schema import ComposeConfig
from runtime.engine.types import GenerationRequest, GenerationResult, Usage
from runtime.errors import PromptTooLongError
from runtime.server.api_models import ErrorResponse
from runtime.server.openai_errors import (
    OpenAIRequestError,
    OpenAIRoute,
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
from runtime.server.openai_requests import ChatCompletionBody, CompletionBody, GenerationBody
from runtime.server.openai_stream import (
    BackgroundGeneration,
    ChunkFormat,
    GenerationStream,
    unfinished_error,
)
from runtime.server.openapi import error_responses, event_stream
from runtime.server.workflow_routes import ready_service, service_of

router = APIRouter(prefix="/v1", route_class=OpenAIRoute)

CLIENT_CLOSED = 499  # nginx's status for "the client hung up first"


def generation_responses(answer: Any, chunk: Any) -> dict[int | str, dict[str, Any]]:
    """A completion answers JSON, or with `stream: true` its chunks, then an
    error event if it failed midway, then `[DONE]`. A body over the size
    limit is refused by the middleware, in the model-compose API's shape."""
    return {
        200: {
            "model": answer,
            "description": "The completion, or with stream: true its chunks.",
            "content": {"text/event-stream": event_stream(chunk | OpenAIError, final=DONE)},
        },
        **error_responses(OpenAIError, 400, 404, 500, 503),
        **error_responses(ErrorResponse, 413),
    }


# -- models ------------------------------------------------------------------------


def served_models(config: ComposeConfig) -> dict[str, str]:
    """Every name a request may use → its component id: component ids first."""
    names = {component.id: component.id for component in config.components}
    for component in config.components:
        names.setdefault(component.model_name, component.id)
    return names


def component_for(config: ComposeConfig, model: str) -> str:
    names = served_models(config)
    if model not in names:
        raise model_not_found(model, list(names))
    return names[model]


def created_at(request: Request) -> int:
    """When this app started serving its models (OpenAI's `created`)."""
    state = request.app.state
    if getattr(state, "openai_created", None) is None:
        state.openai_created = int(time.time())
    return int(state.openai_created)


def model_entry(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "model-compose"}


@router.get("/models", response_model=ModelList)
async def list_models(request: Request) -> dict[str, Any]:
    created = created_at(request)
    names = served_models(service_of(request).config)
    return {"object": "list", "data": [model_entry(name, created) for name in names]}


@router.get(
    "/models/{model_id:path}",
    response_model=Model,
    responses=error_responses(OpenAIError, 404),
)
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    component_for(service_of(request).config, model_id)
    return model_entry(model_id, created_at(request))


# -- completions -------------------------------------------------------------------


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


class Reply:
    """What every object of one response shares: id, object, created, model."""

    def __init__(self, id_prefix: str, object_: str, model: str) -> None:
        self.head = {
            "id": f"{id_prefix}-{uuid.uuid4().hex}",
            "object": object_,
            "created": int(time.time()),
            "model": model,
        }

    def json(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**self.head, "choices": choices, **extra}


def chat_chunks(body: ChatCompletionBody) -> ChunkFormat:
    reply = Reply("chatcmpl", "chat.completion.chunk", body.model)
    extra: dict[str, Any] = {"usage": None} if body.include_usage else {}

    def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return reply.json(
            [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            **extra,
        )

    return ChunkFormat(
        head=[choice({"role": "assistant", "content": ""})],
        delta=lambda text: choice({"content": text}),
        finish=lambda result: choice({}, str(result.finish_reason)),
        usage=(lambda usage: reply.json([], usage=usage_json(usage)))
        if body.include_usage
        else None,
    )


def chat_completion(body: ChatCompletionBody, result: GenerationResult) -> dict[str, Any]:
    message = {"role": "assistant", "content": result.text}
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": str(result.finish_reason),
    }
    return Reply("chatcmpl", "chat.completion", body.model).json(
        [choice], usage=usage_json(result.usage)
    )


def text_chunks(body: CompletionBody) -> ChunkFormat:
    reply = Reply("cmpl", "text_completion", body.model)
    extra: dict[str, Any] = {"usage": None} if body.include_usage else {}

    def choice(text: str, finish_reason: str | None = None) -> dict[str, Any]:
        return reply.json(
            [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}], **extra
        )

    return ChunkFormat(
        head=[choice(body.prompt)] if body.echo and body.prompt else [],
        delta=choice,
        finish=lambda result: choice("", str(result.finish_reason)),
        usage=(lambda usage: reply.json([], usage=usage_json(usage)))
        if body.include_usage
        else None,
    )


def text_completion(body: CompletionBody, result: GenerationResult) -> dict[str, Any]:
    text = body.prompt + result.text if body.echo else result.text
    choice = {
        "text": text,
        "index": 0,
        "logprobs": None,
        "finish_reason": str(result.finish_reason),
    }
    return Reply("cmpl", "text_completion", body.model).json(
        [choice], usage=usage_json(result.usage)
    )


@router.post(
    "/chat/completions",
    response_model=None,
    responses=generation_responses(ChatCompletion, ChatCompletionChunk),
)
async def chat_completions(body: ChatCompletionBody, request: Request) -> Response:
    return await respond(request, body, "messages", chat_chunks, chat_completion)


@router.post(
    "/completions",
    response_model=None,
    responses=generation_responses(TextCompletion, TextCompletionChunk),
)
async def completions(body: CompletionBody, request: Request) -> Response:
    return await respond(request, body, "prompt", text_chunks, text_completion)


async def respond(
    request: Request,
    body: Any,
    prompt_param: str,
    chunks: Callable[[Any], Any],
    reply: Callable[[Any, GenerationResult], dict[str, Any]],
) -> Response:
    """Both endpoints: start, then stream chunks or answer with the reply."""
    component_id = component_for(service_of(request).config, body.model)
    generation = await start(request, body, component_id, body.generation_request(), prompt_param)
    if isinstance(generation, Response):
        return generation
    generator, first = generation
    if body.stream:
        return GenerationStream(generator, first, chunks(body))
    return JSONResponse(reply(body, finished(first)))


async def start(
    request: Request,
    body: GenerationBody,
    component_id: str,
    generation_request: GenerationRequest,
    prompt_param: str,
) -> tuple[BackgroundGeneration, str | GenerationResult] | Response:
    """Start the generation and wait for its first event (for a non-streaming
    request, its result), so that a prompt that does not fit, or any other
    failure before the first token, is still a plain JSON error."""
    service = ready_service(request)
    generation = BackgroundGeneration(
        service.components, component_id, generation_request, streaming=body.stream
    )
    handed_over = False
    try:
        first = await generation.next_unless_disconnected(request)
        if first is None:
            return Response(status_code=CLIENT_CLOSED)
        if isinstance(first, PromptTooLongError):
            raise context_length_exceeded(first, prompt_param)
        if isinstance(first, Exception):
            raise first
        handed_over = True
        return generation, first
    finally:
        if not handed_over:
            generation.cancel()


def finished(event: str | GenerationResult) -> GenerationResult:
    """The result of a non-streaming generation (its only event)."""
    if not isinstance(event, GenerationResult):
        raise OpenAIRequestError("the generation sent text to a non-streaming request", status=500)
    error = unfinished_error(event)
    if error is not None:
        raise error
    return event


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def unknown_route(path: str, request: Request) -> Response:
    """OpenAI's 404 for a path it does not serve; a 405 naming the methods
    allowed for a path served with other methods (HTTP's rule, which OpenAI
    clients handle the same way)."""
    allowed = allowed_methods(request)
    if allowed:
        raise OpenAIRequestError(
            f"Method {request.method} is not allowed on {request.url.path} "
            f"(allowed: {', '.join(allowed)})",
            status=405,
            headers={"Allow": ", ".join(allowed)},
        )
    raise OpenAIRequestError(f"Invalid URL ({request.method} {request.url.path})", status=404)


def allowed_methods(request: Request) -> list[str]:
    """The methods of the other /v1 routes whose path matches the request's."""
    methods: set[str] = set()
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint is not unknown_route:
            match, _ = route.matches(request.scope)
            if match == Match.PARTIAL:
                methods |= route.methods
    return sorted(methods)
