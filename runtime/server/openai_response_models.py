"""What POST /v1/responses answers, as pydantic models: its part of the
OpenAPI document. openai_response_events.py builds these objects as dicts;
the schema fuzz test holds the two together."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runtime.server.openai_models import Logprob, Strict

ItemStatus = Literal["in_progress", "completed", "incomplete"]


class InputTokensDetails(Strict):
    cached_tokens: int


class OutputTokensDetails(Strict):
    reasoning_tokens: int = Field(description="of the output tokens, the reasoning block's")


class ResponseUsage(Strict):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class OutputText(Strict):
    type: Literal["output_text"]
    text: str
    annotations: list[Any] = Field(max_length=0)
    logprobs: list[Logprob] = Field(
        description="the answer's tokens, when `include` or `top_logprobs` asks; else empty"
    )


class ReasoningText(Strict):
    type: Literal["reasoning_text"]
    text: str


class MessageItem(Strict):
    """The answer."""

    type: Literal["message"]
    id: str
    status: ItemStatus
    role: Literal["assistant"]
    content: list[OutputText]


class ReasoningItem(Strict):
    """A reasoning model's thinking, in full (never a summary)."""

    type: Literal["reasoning"]
    id: str
    status: ItemStatus
    summary: list[Any] = Field(max_length=0)
    content: list[ReasoningText]


class FunctionCallItem(Strict):
    """A call of one of the request's function tools; its output comes back
    as a `function_call_output` input item with the same `call_id`."""

    type: Literal["function_call"]
    id: str
    call_id: str
    name: str
    arguments: str = Field(description="a JSON object, as text; empty while in progress")
    status: ItemStatus


OutputItem = Annotated[MessageItem | ReasoningItem | FunctionCallItem, Field(discriminator="type")]


class IncompleteDetails(Strict):
    reason: Literal["max_output_tokens"]


class ResponseErrorDetail(Strict):
    code: Literal["server_error"]
    message: str


class ReasoningSettingsEcho(Strict):
    effort: str | None
    summary: None = None


class TextFormat(Strict):
    type: Literal["text"]


class JsonObjectFormat(Strict):
    type: Literal["json_object"]


class JsonSchemaFormat(BaseModel):
    """The request's format, echoed as it came."""

    model_config = ConfigDict(extra="allow")

    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class TextSettings(Strict):
    format: Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


class FunctionTool(Strict):
    type: Literal["function"]
    name: str
    description: str | None
    parameters: dict[str, Any] | None
    strict: bool | None


class NamedFunctionChoice(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    name: str


class ResponseObject(Strict):
    """A response (also the `response` of the stream's lifecycle events)."""

    id: str
    object: Literal["response"]
    created_at: int
    completed_at: int | None = Field(description="set once it completed")
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    error: ResponseErrorDetail | None
    incomplete_details: IncompleteDetails | None
    instructions: str | None
    max_output_tokens: int | None
    model: str = Field(description="the model name as the request gave it")
    output: list[OutputItem]
    parallel_tool_calls: bool
    previous_response_id: None
    reasoning: ReasoningSettingsEcho
    store: Literal[False] = Field(description="responses are never stored")
    temperature: float | None
    top_p: float | None
    text: TextSettings
    tool_choice: Literal["none", "auto", "required"] | NamedFunctionChoice
    tools: list[FunctionTool]
    top_logprobs: int | None
    truncation: Literal["disabled"]
    usage: ResponseUsage | None = Field(description="null until the response ends")
    metadata: dict[str, Any]


class Lifecycle(Strict):
    sequence_number: int
    response: ResponseObject


class ResponseCreated(Lifecycle):
    type: Literal["response.created"]


class ResponseInProgress(Lifecycle):
    type: Literal["response.in_progress"]


class ResponseCompleted(Lifecycle):
    type: Literal["response.completed"]


class ResponseIncomplete(Lifecycle):
    type: Literal["response.incomplete"]


class ResponseFailed(Lifecycle):
    type: Literal["response.failed"]


class ItemEvent(Strict):
    sequence_number: int
    output_index: int
    item: OutputItem


class OutputItemAdded(ItemEvent):
    type: Literal["response.output_item.added"]


class OutputItemDone(ItemEvent):
    type: Literal["response.output_item.done"]


class PartEvent(Strict):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int


class ContentPartAdded(PartEvent):
    type: Literal["response.content_part.added"]
    part: Annotated[OutputText | ReasoningText, Field(discriminator="type")]


class ContentPartDone(PartEvent):
    type: Literal["response.content_part.done"]
    part: Annotated[OutputText | ReasoningText, Field(discriminator="type")]


class OutputTextDelta(PartEvent):
    type: Literal["response.output_text.delta"]
    delta: str
    logprobs: list[Logprob]


class OutputTextDone(PartEvent):
    type: Literal["response.output_text.done"]
    text: str
    logprobs: list[Logprob]


class FunctionCallEvent(Strict):
    sequence_number: int
    item_id: str
    output_index: int


class FunctionCallArgumentsDelta(FunctionCallEvent):
    type: Literal["response.function_call_arguments.delta"]
    delta: str


class FunctionCallArgumentsDone(FunctionCallEvent):
    type: Literal["response.function_call_arguments.done"]
    arguments: str


class ReasoningTextDelta(PartEvent):
    type: Literal["response.reasoning_text.delta"]
    delta: str


class ReasoningTextDone(PartEvent):
    type: Literal["response.reasoning_text.done"]
    text: str


class StreamError(Strict):
    """A failure after the stream started (then `response.failed`)."""

    type: Literal["error"]
    sequence_number: int
    code: str | None
    message: str
    param: str | None


ResponseStreamEvent = Annotated[
    ResponseCreated
    | ResponseInProgress
    | OutputItemAdded
    | ContentPartAdded
    | ReasoningTextDelta
    | ReasoningTextDone
    | OutputTextDelta
    | OutputTextDone
    | FunctionCallArgumentsDelta
    | FunctionCallArgumentsDone
    | ContentPartDone
    | OutputItemDone
    | ResponseCompleted
    | ResponseIncomplete
    | StreamError
    | ResponseFailed,
    Field(discriminator="type"),
]
