"""POST /v1/responses: OpenAI's Responses API (what openai-agents' default
model calls), as a chat completion.

A Responses body becomes a `ChatCompletionBody` (`chat_body`): instructions
and input items are its messages, `max_output_tokens`, `reasoning.effort`
and the logprobs options its own fields; function tools, `tool_choice` and
`parallel_tool_calls` its tools (Responses' flat function tools nested as
chat's), `text.format` its `response_format`; `function_call` and
`function_call_output` input items an assistant message with `tool_calls`
and a `tool` message. The engine request is then the chat endpoint's, so a
forced call is grammar-constrained here as there. Tools other than functions
(web search, file search, computer use...) are 400s naming their type: this
server runs none of them.

Not stored: a response cannot be fetched or continued by its id
(`previous_response_id` is refused; `store` changes nothing). Like the other
endpoints, unknown fields are ignored, and known ones this server cannot
honour are 400s naming them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runtime.engine.types import GenerationRequest
from runtime.server.deps import ServiceDep
from runtime.server.openai_errors import OpenAIRequestError, unsupported
from runtime.server.openai_models import OpenAIError
from runtime.server.openai_requests import (
    CHAT_ROLES,
    REASONING_EFFORTS,
    ChatCompletionBody,
    Count,
    Message,
    TopLogprobs,
    documented,
    only,
)
from runtime.server.openai_response_events import ResponseStream, response_events
from runtime.server.openai_response_models import ResponseObject, ResponseStreamEvent
from runtime.server.openai_routes import respond_with_generation
from runtime.server.openai_tools import (
    FORCED_CALL_NEEDS_TOOLS,  # as chat's: a forced call needs tools
    FUNCTION_NAME,
    CalledFunction,
    FunctionDefinition,
    HistoryToolCall,
    ToolDefinition,
)
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
# An earlier answer's call, and what the caller's function returned.
FUNCTION_CALL_ITEM = {
    "type": "object",
    "properties": {
        "type": {"const": "function_call"},
        "call_id": {"type": "string"},
        "name": {"type": "string"},
        "arguments": {"type": "string"},
    },
    "required": ["type", "call_id", "name", "arguments"],
}
FUNCTION_CALL_OUTPUT_ITEM = {
    "type": "object",
    "properties": {
        "type": {"const": "function_call_output"},
        "call_id": {"type": "string"},
        "output": {"anyOf": [{"type": "string"}, {"type": "array", "items": TEXT_PART}]},
    },
    "required": ["type", "call_id", "output"],
}
# Items that are turns of the conversation (a reasoning item alone is none).
TURN_ITEM = {"anyOf": [MESSAGE_ITEM, FUNCTION_CALL_ITEM, FUNCTION_CALL_OUTPUT_ITEM]}
INPUT = {
    "anyOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {"anyOf": [*TURN_ITEM["anyOf"], REASONING_ITEM]},
            "contains": TURN_ITEM,
        },
    ]
}
NULLABLE_BOOL = {"anyOf": [{"type": "boolean"}, {"type": "null"}]}
OBJECT = {"type": "object"}
TEXT_FORMAT = {
    "anyOf": [
        {"type": "object", "properties": {"type": {"const": "text"}}, "required": ["type"]},
        {"type": "object", "properties": {"type": {"const": "json_object"}}, "required": ["type"]},
        {
            "type": "object",
            "description": "the answer is JSON valid against `schema`",
            "properties": {
                "type": {"const": "json_schema"},
                "name": {"type": "string"},
                "description": {"type": "string"},
                "schema": OBJECT,
                "strict": NULLABLE_BOOL,
            },
            "required": ["type", "schema"],
        },
        {"type": "null"},
    ]
}
# Responses' function tool: flat, where chat nests it under `function`.
FUNCTION_TOOL = {
    "type": "object",
    "properties": {
        "type": {"const": "function"},
        "name": {"type": "string", "pattern": FUNCTION_NAME},
        "description": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "parameters": {
            "anyOf": [
                {"type": "object", "properties": {"type": {"const": "object"}}},
                {"type": "null"},
            ]
        },
        "strict": NULLABLE_BOOL,
    },
    "required": ["type", "name"],
}
TOOLS = {"anyOf": [{"type": "array", "items": FUNCTION_TOOL}, {"type": "null"}]}
CHOICES = ("none", "auto", "required")
TOOL_CHOICE = {
    "anyOf": [
        {"enum": list(CHOICES)},
        {
            "type": "object",
            "properties": {"type": {"const": "function"}, "name": {"type": "string"}},
            "required": ["type", "name"],
        },
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
    model_config = ConfigDict(
        extra="ignore", strict=True, json_schema_extra=FORCED_CALL_NEEDS_TOOLS
    )

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
    top_logprobs: TopLogprobs | None = None
    text: TextOptions | None = None
    tools: Any = documented(TOOLS)
    tool_choice: Any = documented(TOOL_CHOICE)
    parallel_tool_calls: bool | None = None
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

    @property
    def text_format(self) -> dict[str, Any] | None:
        return self.text.format if self.text is not None else None

    def check_supported(self) -> None:
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
        """The instructions (as a system message), then the input's turns."""
        if isinstance(self.input, str):
            turns = [Message(role="user", content=self.input)]
        elif isinstance(self.input, list):
            turns = input_turns(self.input)
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
            tools=chat_tools(self.tools),
            tool_choice=chat_tool_choice(self.tool_choice),
            parallel_tool_calls=self.parallel_tool_calls,
            response_format=response_format(self.text_format),
        )

    def generation_request(
        self, reasoning: ReasoningSettings, default_max_tokens: int | None = None
    ) -> GenerationRequest:
        return self.chat_body().generation_request(reasoning, default_max_tokens)


def invalid(param: str, problem: str) -> OpenAIRequestError:
    return OpenAIRequestError(f"Invalid value for '{param}': {problem}.", param)


def input_turns(items: list[Any]) -> list[Message]:
    """The input items as chat messages. A `function_call` joins the
    assistant message before it (the text and calls of one answer are one
    chat message, as templates expect), or starts one."""
    turns: list[Message] = []
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise invalid(where, "must be an input item (an object)")
        kind = item.get("type", "message")
        if kind == "reasoning":
            continue
        if kind == "function_call":
            call = history_call(item, where)
            last = turns[-1] if turns else None
            if last is not None and last.role == "assistant":
                last.tool_calls = [*(last.tool_calls or []), call]
            else:
                turns.append(Message(role="assistant", content=None, tool_calls=[call]))
        elif kind == "function_call_output":
            call_id = required_string(item, "call_id", where)
            output = message_text(item.get("output"), f"{where}.output")
            turns.append(Message(role="tool", content=output, tool_call_id=call_id))
        elif kind == "message":
            turns.append(input_message(item, where))
        else:
            raise unsupported(f"{where}.type", f"the item type {kind!r}")
    return turns


def required_string(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise invalid(f"{where}.{name}", "must be a string")
    return value


def history_call(item: dict[str, Any], where: str) -> HistoryToolCall:
    """A `function_call` item as the chat history's call."""
    call_id, name, arguments = (
        required_string(item, field, where) for field in ("call_id", "name", "arguments")
    )
    function = CalledFunction(name=name, arguments=arguments)
    return HistoryToolCall(id=call_id, type="function", function=function)


def input_message(item: dict[str, Any], where: str) -> Message:
    role = item.get("role")
    if not isinstance(role, str) or role not in CHAT_ROLES:
        raise invalid(f"{where}.role", f"use one of {', '.join(CHAT_ROLES)}")
    return Message(role=role, content=message_text(item.get("content"), f"{where}.content"))


def chat_tools(tools: Any) -> list[ToolDefinition] | None:
    """Responses' function tools as chat's; any other tool type is a 400."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise invalid("tools", "must be a list of tools")
    definitions = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            raise invalid(where, "must be a tool (an object with a 'type')")
        if kind != "function":
            raise unsupported(f"{where}.type", f"the tool type {kind!r} (only function tools)")
        fields = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
        try:
            function = FunctionDefinition.model_validate(fields)
        except ValidationError as error:
            problem = error.errors()[0]
            field = ".".join(str(part) for part in problem["loc"])
            raise invalid(f"{where}.{field}" if field else where, problem["msg"]) from None
        definitions.append(ToolDefinition(type="function", function=function))
    return definitions


def chat_tool_choice(choice: Any) -> Any:
    """Responses' `tool_choice` as chat's: a named function is flat here."""
    if choice is None or choice in CHOICES:
        return choice
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if isinstance(kind, str) and kind != "function":
        raise unsupported("tool_choice", f"the choice type {kind!r}")
    raise invalid(
        "tool_choice",
        f'must be one of {", ".join(CHOICES)}, or {{"type": "function", "name": ...}}',
    )


def response_format(text_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """`text.format` as chat's `response_format`: Responses' json_schema
    format is flat, chat's nests it under `json_schema`."""
    if text_format is None:
        return None
    kind = text_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if "schema" not in text_format:  # required by Responses' format, as documented
            raise OpenAIRequestError(
                "Missing required parameter: 'text.format.schema'.", "text.format.schema"
            )
        fields = ("name", "description", "schema", "strict")
        schema = {name: text_format[name] for name in fields if name in text_format}
        return {"type": "json_schema", "json_schema": schema}
    raise unsupported("text.format", f"the type {kind!r}")


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
