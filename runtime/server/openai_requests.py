"""The bodies of /v1/chat/completions and /v1/completions, and how they become
engine requests.

Unknown fields are ignored (OpenAI clients send extras such as `user` or
`metadata`); known fields with the wrong type are 400s naming the field; known
features this server does not implement (tools, logprobs, n > 1, penalties...)
are 400s saying so, never silently dropped.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runtime.engine.types import ChatMessage, GenerationRequest, SamplingParams
from runtime.server.openai_errors import OpenAIRequestError, unsupported

# OpenAI's own default for the legacy completions endpoint.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16

CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, refusal, audio...

    role: str
    content: Any = None
    tool_calls: list[Any] | None = None

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

    model_config = ConfigDict(extra="ignore")

    model: str
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=0)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    stop: Any = Field(None, validate_default=True)
    n: int | None = None
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    # llama.cpp's own samplers, as its server and vLLM accept them
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)

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
        given = {
            name: getattr(self, name)
            for name in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed")
            if getattr(self, name) is not None
        }
        return dataclasses.replace(SamplingParams(), **given, greedy=self.temperature == 0)


class ChatCompletionBody(GenerationBody):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=0)
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None

    def check_supported(self) -> None:
        super().check_supported()
        for name in ("tools", "functions"):
            if getattr(self, name):
                raise unsupported(name)
        for name in ("tool_choice", "function_call"):
            if getattr(self, name) not in (None, "none", "auto"):
                raise unsupported(name)
        if self.response_format is not None and self.response_format.get("type") != "text":
            kind = self.response_format.get("type")
            raise unsupported("response_format", f"the type {kind!r}")
        if self.logprobs or self.top_logprobs:
            raise unsupported("logprobs")

    def chat_messages(self) -> list[ChatMessage]:
        messages = []
        for index, message in enumerate(self.messages):
            role = CHAT_ROLES.get(message.role)
            if role is None:
                raise unsupported(f"messages[{index}].role", f"the role {message.role!r}")
            if message.tool_calls:
                raise unsupported(f"messages[{index}].tool_calls")
            if message.content is None and role != "assistant":
                raise OpenAIRequestError(
                    f"Missing required parameter: 'messages[{index}].content'.",
                    f"messages[{index}].content",
                )
            messages.append(ChatMessage(role, message.content or ""))
        return messages

    def generation_request(self) -> GenerationRequest:
        self.check_supported()
        max_tokens = self.max_completion_tokens
        return GenerationRequest(
            messages=self.chat_messages(),
            sampling=self.sampling(),
            stop=self.stop,
            max_tokens=self.max_tokens if max_tokens is None else max_tokens,
        )


class CompletionBody(GenerationBody):
    prompt: Any
    echo: bool = False
    logprobs: int | None = None
    best_of: int | None = None
    suffix: str | None = None

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
        if self.logprobs:
            raise unsupported("logprobs")
        if self.best_of not in (None, 1):
            raise unsupported("best_of", f"more than one candidate ({self.best_of})")
        if self.suffix:
            raise unsupported("suffix")

    def generation_request(self) -> GenerationRequest:
        self.check_supported()
        return GenerationRequest(
            prompt=self.prompt,
            sampling=self.sampling(),
            stop=self.stop,
            max_tokens=COMPLETIONS_DEFAULT_MAX_TOKENS
            if self.max_tokens is None
            else self.max_tokens,
        )
