"""POST /v1/responses: OpenAI's Responses API (what openai-agents' default
model calls), as a chat completion.

A Responses body becomes a `ChatCompletionBody` (`chat_body`): instructions
and input items are its messages, `max_output_tokens`, `reasoning.effort`
and the logprobs options its own fields. The engine request is then the
chat endpoint's, so what chat completions learn (tools, structured output)
reaches this API by adding its fields here.

Not stored: a response cannot be fetched or continued by its id
(`previous_response_id` is refused; `store` changes nothing). Like the other
endpoints, unknown fields are ignored, and known ones this server cannot
honour are 400s naming them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from runtime.engine.logprobs import MAX_TOP_LOGPROBS
from runtime.engine.types import GenerationRequest
from runtime.server.deps import ServiceDep
from runtime.server.openai_errors import OpenAIRequestError, unsupported
from runtime.server.openai_models import OpenAIError
from runtime.server.openai_requests import (
    CHAT_ROLES,
    REASONING_EFFORTS,
    ChatCompletionBody,
    Count,
    JsonInt,
    Message,
    documented,
    only,
)
from runtime.server.openai_response_events import ResponseStream, response_events
from runtime.server.openai_response_models import ResponseObject, ResponseStreamEvent
from runtime.server.openai_routes import respond_with_generation
from runtime.server.openapi import error_responses, event_stream
from runtime.tasks.common import ReasoningSettings

router = APIRouter()

# What `include` may ask for that this server adds: the answer's logprobs.
# Other values name outputs it never makes (search results, encrypted
# reasoning...): nothing to include.
INCLUDE_LOGPROBS = "message.output_text.logprobs"

TEXT_PART = {
    "type": "object",
    "properties": {"type": {"enum": ["input_text", "output_text"]}, "text": {"type": "string"}},
    "required": ["type", "text"],
}
MESSAGE_ITEM = {
    "type": "object",
    "properties": {
        "type": {"const": "message"},
        "role": {"enum": list(CHAT_ROLES)},
        "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": TEXT_PART}]},
    },
    "required": ["role", "content"],
}
# A reasoning item of an earlier answer, sent back: skipped (chat templates
# leave earlier turns' reasoning out anyway).
REASONING_ITEM = {
    "type": "object",
    "properties": {"type": {"const": "reasoning"}},
    "required": ["type"],
}
INPUT = {
    "anyOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {"anyOf": [MESSAGE_ITEM, REASONING_ITEM]},
            "contains": MESSAGE_ITEM,
        },
    ]
}
TEXT_FORMAT = {
    "anyOf": [
        {"type": "object", "properties": {"type": {"const": "text"}}, "required": ["type"]},
        {"type": "null"},
    ]
}


class ReasoningOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    # "none" turns thinking off, as `reasoning_effort` does on chat. `summary`
    # is ignored: the reasoning item holds the reasoning itself, never a summary.
    effort: Any = Field(None, json_schema_extra={"enum": [*REASONING_EFFORTS, None]})

    @field_validator("effort")
    @classmethod
    def _known_effort(cls, value: Any) -> Any:
        if value is not None and value not in REASONING_EFFORTS:
            raise ValueError(f"use one of {', '.join(REASONING_EFFORTS)}")
        return value


class TextOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    format: dict[str, Any] | None = documented(TEXT_FORMAT)


class ResponsesBody(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    model: str
    input: Any = documented(INPUT, default=...)
    instructions: str | None = None
    stream: bool = False
    max_output_tokens: Count | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    reasoning: ReasoningOptions | None = None
    include: list[str] | None = None
    # With it (or `include` asking for them), the answer's logprobs.
    top_logprobs: JsonInt | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    text: TextOptions | None = None
    tools: list[Any] | None = Field(None, json_schema_extra={"maxItems": 0})
    tool_choice: Any = only("none", "auto", None)
    previous_response_id: str | None = Field(None, json_schema_extra={"type": "null"})
    conversation: Any = only(None)
    prompt: Any = only(None)
    background: bool | None = only(False, None)
    truncation: str | None = only("disabled", None)
    store: bool | None = None  # nothing is stored either way
    metadata: dict[str, Any] | None = None  # echoed in the response

    @property
    def wants_logprobs(self) -> bool:
        return self.top_logprobs is not None or INCLUDE_LOGPROBS in (self.include or [])

    @property
    def effort(self) -> str | None:
        return self.reasoning.effort if self.reasoning is not None else None

    def check_supported(self) -> None:
        if self.tools:
            raise unsupported("tools")
        if self.tool_choice not in (None, "none", "auto"):
            raise unsupported("tool_choice")
        text_format = self.text.format if self.text is not None else None
        if text_format is not None and text_format.get("type") != "text":
            raise unsupported("text.format", f"the type {text_format.get('type')!r}")
        if self.previous_response_id is not None:
            raise unsupported("previous_response_id", "a stored response (none are kept)")
        for name in ("conversation", "prompt"):
            if getattr(self, name) is not None:
                raise unsupported(name)
        if self.background:
            raise unsupported("background", "true")
        if self.truncation not in (None, "disabled"):
            raise unsupported("truncation", repr(self.truncation))

    def messages(self) -> list[Message]:
        """The instructions (as a system message), then the input's messages."""
        if isinstance(self.input, str):
            turns = [Message(role="user", content=self.input)]
        elif isinstance(self.input, list):
            items = (input_message(item, f"input[{i}]") for i, item in enumerate(self.input))
            turns = [message for message in items if message is not None]
            if not turns:
                raise invalid("input", "has no message")
        else:
            raise invalid("input", "must be a string or a list of input items")
        if self.instructions is None:
            return turns
        return [Message(role="system", content=self.instructions), *turns]

    def chat_body(self) -> ChatCompletionBody:
        """The chat completion this response is."""
        self.check_supported()
        return ChatCompletionBody(
            model=self.model,
            messages=self.messages(),
            stream=self.stream,
            max_completion_tokens=self.max_output_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            reasoning_effort=self.effort,
            logprobs=self.wants_logprobs or None,
            top_logprobs=self.top_logprobs if self.wants_logprobs else None,
        )

    def generation_request(
        self, reasoning: ReasoningSettings, default_max_tokens: int | None = None
    ) -> GenerationRequest:
        return self.chat_body().generation_request(reasoning, default_max_tokens)


def invalid(param: str, problem: str) -> OpenAIRequestError:
    return OpenAIRequestError(f"Invalid value for '{param}': {problem}.", param)


def input_message(item: Any, where: str) -> Message | None:
    """One input item as a chat message; None for an item that adds nothing
    (an earlier answer's reasoning)."""
    if not isinstance(item, dict):
        raise invalid(where, "must be an input item (an object)")
    kind = item.get("type", "message")
    if kind == "reasoning":
        return None
    if kind != "message":
        raise unsupported(f"{where}.type", f"the item type {kind!r}")
    role = item.get("role")
    if not isinstance(role, str) or role not in CHAT_ROLES:
        raise invalid(f"{where}.role", f"use one of {', '.join(CHAT_ROLES)}")
    return Message(role=role, content=message_text(item.get("content"), f"{where}.content"))


def message_text(content: Any, where: str) -> str:
    """A message's content: a string, or its text parts joined with newlines."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(where, "must be a string or a list of content parts")
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("input_text", "output_text"):
            what = f"the type {kind!r}" if isinstance(kind, str) else "this shape"
            raise unsupported(f"{where}[{index}]", f"{what} (only text parts)")
        if not isinstance(part.get("text"), str):
            raise invalid(f"{where}[{index}].text", "must be a string")
        texts.append(part["text"])
    return "\n".join(texts)


@router.post(
    "/responses",
    response_model=None,
    responses={
        200: {
            "model": ResponseObject,
            "description": "The response, or with stream: true its events.",
            "content": {"text/event-stream": event_stream(ResponseStreamEvent)},
        },
        **error_responses(OpenAIError, 400, 404, 413, 500, 503),
    },
)
async def create_response(body: ResponsesBody, request: Request, service: ServiceDep) -> Response:
    reply = ResponseStream(body)
    return await respond_with_generation(
        request,
        service,
        body,
        "input",
        stream=lambda generation, first: response_events(generation, first, reply),
        reply=reply.whole,
    )
