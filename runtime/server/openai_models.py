"""What the OpenAI-compatible API answers, as pydantic models: the /v1 part
of the OpenAPI document. The routes build these objects as dicts (see
openai_routes.py); the schema fuzz test holds the two together."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# A generation that was cancelled or failed is an error, never a finish reason.
FinishReason = Literal["stop", "length"]
# A chat answer that called functions (and ended by itself) finishes with tool_calls.
ChatFinishReason = Literal["stop", "length", "tool_calls"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenAIErrorDetail(Strict):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error or server_error")
    param: str | None = Field(description="the request field at fault, when there is one")
    code: str | None = Field(description="e.g. model_not_found, context_length_exceeded")


class OpenAIError(Strict):
    """Every /v1 error, in OpenAI's shape (OpenAI clients raise it)."""

    error: OpenAIErrorDetail


class Model(Strict):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(Strict):
    object: Literal["list"]
    data: list[Model]


class PromptTokensDetails(Strict):
    cached_tokens: int


class CompletionTokensDetails(Strict):
    reasoning_tokens: int = Field(description="of the completion tokens, the reasoning block's")


class Usage(Strict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails


class Reply(Strict):
    """What every object of one response shares."""

    id: str
    created: int
    model: str = Field(description="the model name as the request gave it")


REASONING = "the model's reasoning block (its thinking), never part of `content`"


class CalledFunction(Strict):
    name: str
    arguments: str = Field(description="a JSON object, as text")


class ToolCall(Strict):
    id: str
    type: Literal["function"]
    function: CalledFunction


class AssistantMessage(Strict):
    role: Literal["assistant"]
    content: str | None = Field(
        description="null when the answer is only function calls (with tools)"
    )
    reasoning_content: str | None = Field(None, description=REASONING + "; absent: none written")
    tool_calls: list[ToolCall] | None = Field(None, description="absent: no call")


class TopLogprob(Strict):
    token: str = Field(description="the token's text (bytes of a partial character escaped)")
    logprob: float = Field(description="the model's log-probability of it (raw logits)")
    bytes: list[int]


class Logprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(description="the most likely tokens at its place")


class ChatLogprobs(Strict):
    """The answer's tokens (never the reasoning's), with `logprobs: true`."""

    content: list[Logprob]
    refusal: None = None


class TextLogprobs(Strict):
    """The answer's tokens, with `logprobs: N`."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class ChatChoice(Strict):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None
    finish_reason: ChatFinishReason


class ChatCompletion(Reply):
    object: Literal["chat.completion"]
    choices: list[ChatChoice]
    usage: Usage


class FunctionDelta(Strict):
    name: str | None = None
    arguments: str


class ToolCallDelta(Strict):
    """A call's first delta has its id, type and name (arguments ""); the
    next ones, of the same index, add to its arguments."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionDelta


class ChatDelta(Strict):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = Field(None, description=REASONING)
    tool_calls: list[ToolCallDelta] | None = None


class ChatChunkChoice(Strict):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None = Field(description="the tokens of this chunk's content")
    finish_reason: ChatFinishReason | None


class ChatCompletionChunk(Reply):
    """One streamed event. With `stream_options.include_usage`, every chunk
    has `usage: null` but the last, which has no choices and the usage."""

    object: Literal["chat.completion.chunk"]
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class TextChoice(Strict):
    text: str
    index: int
    logprobs: TextLogprobs | None
    finish_reason: FinishReason
    reasoning_content: str | None = Field(None, description=REASONING + "; absent: none written")


class TextCompletion(Reply):
    object: Literal["text_completion"]
    choices: list[TextChoice]
    usage: Usage


class TextChunkChoice(Strict):
    text: str
    index: int
    logprobs: TextLogprobs | None = Field(description="the tokens of this chunk's text")
    finish_reason: FinishReason | None = Field(description="null in every chunk but the last")
    reasoning_content: str | None = Field(None, description=REASONING)


class TextCompletionChunk(Reply):
    """One streamed event (the usage as for chat chunks)."""

    object: Literal["text_completion"]
    choices: list[TextChunkChoice]
    usage: Usage | None = None


# The event that ends every /v1 stream (it is not JSON).
DONE = "[DONE]"
