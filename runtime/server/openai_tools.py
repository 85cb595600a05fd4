"""Tool calling on /v1/chat/completions, the request's side: `tools`,
`tool_choice`, `parallel_tool_calls`, and the calls in a conversation's
history; and what they make of the engine request (`ToolUse`).

- `tool_choice` "auto" (the default with tools): the template lists the
  tools and the model may answer or call; "none": the tools are left out of
  the prompt altogether and the answer is never parsed for calls (a model
  that is shown tools tends to call them whatever it is told); "required"
  or a named function: the answer is constrained by a grammar to calls (to
  that function), so that it always parses (`engine.llama.tool_grammar`).
- `parallel_tool_calls` false: at most one call (a forced one is one call;
  in an answer with several, the first counts and the others are dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runtime.engine.llama.tool_grammar import ToolSchemaError, tool_call_grammar
from runtime.engine.types import ToolCall
from runtime.server.openai_errors import OpenAIRequestError

# OpenAI's rule for function names.
FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
CHOICES = ("none", "auto", "required")
NAMED_CHOICE = {
    "type": "object",
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
    },
    "required": ["type", "function"],
}
TOOL_CHOICE = {"anyOf": [{"enum": list(CHOICES)}, NAMED_CHOICE, {"type": "null"}]}
# A body whose tool_choice requires a call has tools.
FORCED_CALL_NEEDS_TOOLS = {
    "if": {
        "properties": {"tool_choice": {"anyOf": [{"const": "required"}, {"type": "object"}]}},
        "required": ["tool_choice"],
    },
    "then": {
        "properties": {"tools": {"type": "array", "minItems": 1}},
        "required": ["tools"],
    },
}
# The codes of refusals the OpenAPI document cannot express (a JSON schema
# llama.cpp's converter cannot read; a named function missing from `tools`).
INVALID_PARAMETERS = "invalid_function_parameters"
UNKNOWN_FUNCTION = "unknown_function"


class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class FunctionDefinition(Strict):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    # A JSON schema of the arguments: an object (its `type`, when given, says so).
    parameters: dict[str, Any] | None = Field(
        None,
        json_schema_extra={"properties": {"type": {"const": "object"}}},
    )
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _an_object(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type", "object") != "object":
            raise ValueError('must be the JSON schema of an object ("type": "object")')
        return value

    def listed(self) -> dict[str, Any]:
        """The function object a chat template lists (unset fields left out)."""
        return self.model_dump(include={"name", "description", "parameters"}, exclude_none=True)


class ToolDefinition(Strict):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(Strict):
    name: str


class NamedToolChoice(Strict):
    type: Literal["function"]
    function: NamedFunction


class CalledFunction(Strict):
    name: str
    arguments: str  # a JSON object, as text


class HistoryToolCall(Strict):
    """A call in an assistant message of the history, as the API returned it."""

    id: str
    type: Literal["function"]
    function: CalledFunction

    def call(self) -> ToolCall:
        return ToolCall(self.function.name, self.function.arguments, id=self.id)


def tool_choice(value: Any) -> str | NamedToolChoice | None:
    """A request's `tool_choice` (validated here, for one message naming the
    field rather than pydantic's one per member of the union)."""
    if value is None or value in CHOICES:
        return value
    if isinstance(value, dict):
        return NamedToolChoice.model_validate(value)
    raise ValueError(
        f"must be one of {', '.join(CHOICES)}, or "
        '{"type": "function", "function": {"name": ...}}'
    )


@dataclass(frozen=True)
class ToolUse:
    """What one request's tool settings mean for its generation and its answer."""

    listed: list[dict[str, Any]]  # the functions the prompt lists
    callable: frozenset[str]  # the calls the answer is parsed for (empty: none)
    forced: list[tuple[int, dict[str, Any]]]  # (index in `tools`, function) a call must be to
    parallel: bool

    @property
    def max_calls(self) -> int | None:
        return None if self.parallel else 1

    def grammar(self) -> str | None:
        """The GBNF that forces a call, if one is forced."""
        if not self.forced:
            return None
        try:
            return tool_call_grammar([f for _, f in self.forced], parallel=self.parallel)
        except ToolSchemaError as error:
            index = self.forced[error.index][0]
            raise OpenAIRequestError(
                f"Invalid 'tools[{index}].function.parameters': {error}.",
                f"tools[{index}].function.parameters",
                INVALID_PARAMETERS,
            ) from error


def tool_use(
    tools: list[ToolDefinition] | None,
    choice: str | NamedToolChoice | None,
    parallel: bool | None,
) -> ToolUse:
    """The meaning of a request's `tools`, `tool_choice` and `parallel_tool_calls`."""
    functions = [tool.function.listed() for tool in tools or []]
    parallel = parallel is not False
    if (choice == "required" or isinstance(choice, NamedToolChoice)) and not functions:
        raise OpenAIRequestError(
            "Invalid value for 'tool_choice': a call cannot be required without 'tools'.",
            "tool_choice",
        )
    if isinstance(choice, NamedToolChoice):
        name = choice.function.name
        forced = [(i, f) for i, f in enumerate(functions) if f["name"] == name][:1]
        if not forced:
            raise OpenAIRequestError(
                f"Invalid value for 'tool_choice': no function named '{name}' in 'tools'.",
                "tool_choice",
                UNKNOWN_FUNCTION,
            )
        return ToolUse(functions, frozenset({name}), forced, parallel=False)
    if choice == "none" or not functions:
        return ToolUse([], frozenset(), [], parallel)
    names = frozenset(f["name"] for f in functions)
    forced = list(enumerate(functions)) if choice == "required" else []
    return ToolUse(functions, names, forced, parallel)
