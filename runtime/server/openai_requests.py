"""The bodies of /v1/chat/completions and /v1/completions, and how they become
engine requests.

Unknown fields are ignored (OpenAI clients send extras such as `user` or
`metadata`); known fields with the wrong type are 400s naming the field (no
coercion: `"max_tokens": "5"` or `"stream": 0` is refused, not guessed at;
`5.0` is the integer 5, as JSON has one number type);
known features this server does not implement (n > 1,
penalties...) are 400s saying so, never silently dropped. The OpenAPI
document says which values of those fields are accepted (`only`).
Structured output (`response_format`, `grammar`, `json_schema`) is
openai_structured.py's.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from runtime.engine.logprobs import MAX_TOP_LOGPROBS
from runtime.engine.types import ChatMessage, GenerationRequest, SamplingParams
from runtime.server.openai_errors import OpenAIRequestError, unsupported
from runtime.server.openai_structured import (
    GRAMMAR_DOC,
    JSON_SCHEMA_DOC,
    ONE_WAY_TO_ASK,
    RESPONSE_FORMAT,
    answer_grammar,
)
from runtime.server.openai_tools import (
    FORCED_CALL_NEEDS_TOOLS,
    TOOL_CHOICE,
    HistoryToolCall,
    ToolDefinition,
    ToolUse,
    tool_choice,
    tool_use,
)
from runtime.tasks.common import ReasoningSettings

# OpenAI's own default for the legacy completions endpoint.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
# OpenAI's reasoning efforts. "none" turns thinking off (Ollama's OpenAI API
# does the same); the others leave it on: a template has only on and off.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

CHAT_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


def _integral(value: Any) -> Any:
    """JSON has one number type: 5.0 is the integer 5 (JSON Schema agrees),
    5.5 is not an integer and stays a float for the strict check to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer field of a JSON body: strict (no "5", no true), but 5.0 is 5.
JsonInt = Annotated[int, BeforeValidator(_integral)]
# A token count: the bound inside the type, so the document says `minimum`.
Count = Annotated[int, Field(ge=0), BeforeValidator(_integral)]
# How many alternatives a token's logprobs list (the bounds inside the type,
# so the document says `minimum`/`maximum`).
TopLogprobs = Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS), BeforeValidator(_integral)]


def only(*values: Any, **bounds: Any) -> Any:
    """Document that a field accepts just `values`: the others are refused
    with a 400 by `check_supported` (in words), not by pydantic, except
    those outside `bounds` (e.g. `ge=1`: no value could ever mean anything)."""
    return Field(None, json_schema_extra={"enum": list(values)}, **bounds)


def documented(schema: dict[str, Any], default: Any = None) -> Any:
    """A field validated by hand (a validator or `check_supported`), with the
    JSON schema of the values accepted."""
    return Field(default, validate_default=True, json_schema_extra=_replace_with(schema))


def _replace_with(schema: dict[str, Any]) -> Any:
    def replace(field_schema: dict[str, Any]) -> None:
        field_schema.clear()
        field_schema.update(schema)

    return replace


STRINGS = {"type": "array", "items": {"type": "string"}}
PROMPT = {"type": "string", "minLength": 1}
TEXT_PART = {
    "type": "object",
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
    "required": ["type", "text"],
}


def first_set(*values: int | None) -> int | None:
    """The first value that is not None (0 is a value)."""
    return next((value for value in values if value is not None), None)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    include_usage: bool = False


class Message(BaseModel):
    # Extra fields (name, refusal, audio...) are ignored. Content may be null
    # (or absent) only in an assistant message.
    model_config = ConfigDict(
        extra="ignore",
        strict=True,
        json_schema_extra={
            "if": {"properties": {"role": {"const": "assistant"}}},
            "else": {"required": ["content"], "properties": {"content": {"not": {"type": "null"}}}},
        },
    )

    role: str = Field(json_schema_extra={"enum": list(CHAT_ROLES)})
    content: Any = documented(
        {"anyOf": [{"type": "string"}, {"type": "array", "items": TEXT_PART}, {"type": "null"}]}
    )
    # An assistant message's calls; a tool message's answer to one of them.
    tool_calls: list[HistoryToolCall] | None = None
    tool_call_id: str | None = None

    @field_validator("content")
    @classmethod
    def _content_text(cls, value: Any) -> str | None:
        """A string, or a list of text parts (joined with newlines)."""
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ValueError("must be a string or a list of content parts")
        texts = []
        for index, part in enumerate(value):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text":
                what = f"type '{kind}'" if isinstance(kind, str) else "this shape"
                raise ValueError(
                    f"content part [{index}] has {what}; only text parts "
                    '({"type": "text", "text": ...}) are supported'
                )
            if not isinstance(part.get("text"), str):
                raise ValueError(f"content part [{index}] needs a string 'text'")
            texts.append(part["text"])
        return "\n".join(texts)


class GenerationBody(BaseModel):
    """The fields both endpoints share."""

    model_config = ConfigDict(extra="ignore", strict=True, json_schema_extra=ONE_WAY_TO_ASK)

    model: str
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Count | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    seed: JsonInt | None = None
    stop: Any = documented({"anyOf": [{"type": "string"}, STRINGS, {"type": "null"}]})
    # n=0 asks for no choice at all: a bad value, not one we do not implement.
    n: JsonInt | None = only(1, None, ge=1)
    frequency_penalty: float | None = only(0, None)
    presence_penalty: float | None = only(0, None)
    logit_bias: dict[str, float] | None = Field(None, json_schema_extra={"maxProperties": 0})
    # llama.cpp's own samplers, as its server and vLLM accept them
    top_k: Count | None = None
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)
    # llama-server's: the most tokens a reasoning block may take before the
    # server closes it (-1: no limit). Default: the component's.
    reasoning_budget: Annotated[int, Field(ge=-1), BeforeValidator(_integral)] | None = None
    # Structured output (openai_structured.py): OpenAI's, then llama-server's own.
    response_format: dict[str, Any] | None = documented(RESPONSE_FORMAT)
    grammar: str | None = Field(None, description=GRAMMAR_DOC)
    json_schema: dict[str, Any] | None = Field(None, description=JSON_SCHEMA_DOC)
    # llama-server's Mirostat: 0 off, 1 or 2 its version (it replaces top-k,
    # top-p and min-p), with its target surprise and learning rate.
    mirostat: Annotated[int, Field(ge=0, le=2), BeforeValidator(_integral)] | None = None
    mirostat_tau: float | None = Field(None, ge=0)
    mirostat_eta: float | None = Field(None, ge=0)

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,) if value else ()
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(v for v in value if v)
        raise ValueError("must be a string or a list of strings")

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def check_supported(self) -> None:
        if self.n not in (None, 1):
            raise unsupported("n", f"more than one choice (n={self.n})")
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name):
                raise unsupported(name, "a nonzero value")
        if self.logit_bias:
            raise unsupported("logit_bias")

    def sampling(self) -> SamplingParams:
        names = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed")
        names += ("mirostat", "mirostat_tau", "mirostat_eta")
        given = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        return dataclasses.replace(SamplingParams(), **given, greedy=self.temperature == 0)

    def grammar_text(self) -> str | None:
        """The grammar the answer must follow (openai_structured.py); None: free text."""
        return answer_grammar(self.response_format, self.grammar, self.json_schema)

    def reasoning(self, defaults: ReasoningSettings) -> ReasoningSettings:
        """The component's reasoning settings with this request's on top."""
        if self.reasoning_budget == -1:
            return dataclasses.replace(defaults, budget=None)
        return defaults.but(budget=self.reasoning_budget)


class ChatCompletionBody(GenerationBody):
    # OpenAI's rule: alternatives are only given with the tokens' own logprobs;
    # and a forced call needs tools.
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                ONE_WAY_TO_ASK,
                FORCED_CALL_NEEDS_TOOLS,
                {
                    "if": {
                        "required": ["top_logprobs"],
                        "properties": {"top_logprobs": {"type": "integer", "minimum": 1}},
                    },
                    "then": {
                        "required": ["logprobs"],
                        "properties": {"logprobs": {"const": True}},
                    },
                },
            ]
        }
    )

    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: Count | None = None
    logprobs: bool | None = None
    top_logprobs: TopLogprobs | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: Any = documented(TOOL_CHOICE)
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = Field(None, json_schema_extra={"maxItems": 0})
    function_call: Any = only("none", "auto", None)
    # Extra chat template variables, as llama-server and vLLM take them
    # (SmolLM3's and Qwen3's `enable_thinking`).
    chat_template_kwargs: dict[str, Any] | None = None
    reasoning_effort: Any = Field(None, json_schema_extra={"enum": [*REASONING_EFFORTS, None]})

    @field_validator("tool_choice")
    @classmethod
    def _tool_choice(cls, value: Any) -> Any:
        return tool_choice(value)

    def tool_use(self) -> ToolUse:
        return tool_use(self.tools, self.tool_choice, self.parallel_tool_calls)

    def reasoning(self, defaults: ReasoningSettings) -> ReasoningSettings:
        effort = self.reasoning_effort
        if effort is not None and effort not in REASONING_EFFORTS:
            raise OpenAIRequestError(
                f"Invalid value for 'reasoning_effort': {effort!r}; use one of "
                f"{', '.join(REASONING_EFFORTS)}.",
                "reasoning_effort",
            )
        settings = super().reasoning(defaults)
        thinking = None if effort is None else effort != "none"
        return settings.but(thinking=thinking).but(kwargs=self.chat_template_kwargs)

    def check_supported(self) -> None:
        super().check_supported()
        if self.functions:  # the legacy form of `tools`
            raise unsupported("functions")
        if self.function_call not in (None, "none", "auto"):
            raise unsupported("function_call")
        if self.top_logprobs and not self.logprobs:
            raise OpenAIRequestError(
                "Invalid value for 'top_logprobs': it requires 'logprobs' to be true.",
                "top_logprobs",
            )

    def answer_or_call_grammar(self, tools: ToolUse) -> str | None:
        """The grammar of a forced tool call, or of the answer's format: one
        request cannot be held to both."""
        call, answer = tools.grammar(), self.grammar_text()
        if call is not None and answer is not None:
            raise OpenAIRequestError(
                "A forced tool call ('tool_choice' required or a named function) cannot be "
                "combined with a constrained answer ('response_format', 'grammar' or "
                "'json_schema').",
                "tool_choice",
            )
        return call if call is not None else answer

    def chat_messages(self) -> list[ChatMessage]:
        messages = []
        for index, message in enumerate(self.messages):
            role = CHAT_ROLES.get(message.role)
            if role is None:
                raise unsupported(f"messages[{index}].role", f"the role {message.role!r}")
            if message.content is None and role != "assistant":
                raise OpenAIRequestError(
                    f"Missing required parameter: 'messages[{index}].content'.",
                    f"messages[{index}].content",
                )
            # Calls belong to assistant messages, call ids to tool messages.
            calls = message.tool_calls if role == "assistant" else None
            call_id = message.tool_call_id if role == "tool" else None
            content = message.content or ""
            messages.append(
                ChatMessage(role, content, tuple(c.call() for c in calls or ()), call_id)
            )
        return messages

    def generation_request(
        self, reasoning: ReasoningSettings, default_max_tokens: int | None = None
    ) -> GenerationRequest:
        """The engine request; `reasoning` and `default_max_tokens` (None:
        the rest of the context): the component's settings."""
        self.check_supported()
        settings = self.reasoning(reasoning)
        tools = self.tool_use()
        return GenerationRequest(
            messages=self.chat_messages(),
            sampling=self.sampling(),
            stop=self.stop,
            max_tokens=first_set(self.max_completion_tokens, self.max_tokens, default_max_tokens),
            chat_template_kwargs=settings.chat_template_kwargs,
            reasoning_budget=settings.budget,
            tools=tools.listed or None,
            grammar=self.answer_or_call_grammar(tools),
            logprobs=(self.top_logprobs or 0) if self.logprobs else None,
        )


class CompletionBody(GenerationBody):
    # The prompt's own logprobs (what `echo` with `logprobs` asks for) are not computed.
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                ONE_WAY_TO_ASK,
                {
                    "if": {"required": ["echo"], "properties": {"echo": {"const": True}}},
                    "then": {"properties": {"logprobs": {"type": "null"}}},
                },
            ]
        }
    )

    # An empty prompt has no token to start from: refused by the engine.
    prompt: Any = documented(
        {"anyOf": [PROMPT, {"type": "array", "items": PROMPT, "minItems": 1, "maxItems": 1}]},
        default=...,
    )
    echo: bool = False
    # The answer's tokens' logprobs, with this many alternatives (OpenAI's
    # limit is 5; ours is the chat API's 20).
    logprobs: TopLogprobs | None = None
    best_of: JsonInt | None = only(1, None, ge=1)
    suffix: str | None = Field(None, json_schema_extra={"maxLength": 0})

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            return value[0]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            raise ValueError("only one prompt per request is supported")
        raise ValueError("must be a string (token arrays are not supported)")

    def check_supported(self) -> None:
        super().check_supported()
        if self.logprobs is not None and self.echo:
            raise unsupported("logprobs", "with 'echo' (the prompt's log-probabilities)")
        if self.best_of not in (None, 1):
            raise unsupported("best_of", f"more than one candidate ({self.best_of})")
        if self.suffix:
            raise unsupported("suffix")

    def generation_request(
        self, reasoning: ReasoningSettings, default_max_tokens: int | None = None
    ) -> GenerationRequest:
        """The engine request; `reasoning` and `default_max_tokens` (None:
        OpenAI's 16): the component's settings."""
        self.check_supported()
        return GenerationRequest(
            prompt=self.prompt,
            sampling=self.sampling(),
            stop=self.stop,
            max_tokens=first_set(
                self.max_tokens, default_max_tokens, COMPLETIONS_DEFAULT_MAX_TOKENS
            ),
            reasoning_budget=self.reasoning(reasoning).budget,
            logprobs=self.logprobs,
            grammar=self.grammar_text(),
        )
