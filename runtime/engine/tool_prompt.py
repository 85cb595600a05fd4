"""How a request's tools and a conversation's tool history reach a chat
template. Templates differ, so `ToolStyle.of` reads what a template's code
(its `{{ }}` and `{% %}` blocks, string literals left out) uses:

- The tool list. SmolLM3's template reads `xml_tools` (a standard `tools`
  variable is ignored) and writes each entry with `(tool | string)`: it gets
  the function objects, `{"name", "description", "parameters"}`, as
  SmolLM3's model card passes them. Templates that read `tools` (Qwen2.5,
  Qwen3, Hermes, Llama 3.1) get OpenAI's `{"type": "function", "function":
  {...}}`, as transformers passes them. A template that reads neither (such
  as SmolLM2's) gets the tools described at the end of the system message,
  in SmolLM3's words and the `<tool_call>` format (`engine.tool_calls`).
- An assistant message's calls. Templates whose code reads `tool_calls` get
  them as transformers passes them (arguments as an object); the others,
  SmolLM3's among them, get them written into the message's text as
  `<tool_call>` blocks, as the model wrote them.
- A tool message (a function's result). Templates that name the `tool` role
  get it as it is (SmolLM3's renders it as a user turn); the others get a
  user message with the result between `<tool_response>` tags (Hermes' and
  Qwen's way), rather than a role the model never saw.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.engine.tool_calls import call_block
from runtime.engine.types import ChatMessage, ToolCall

# A template's code: what is between {{ }} or {% %}; and a string literal in it.
_CODE = re.compile(r"\{[{%](.*?)[%}]\}", re.DOTALL)
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'", re.DOTALL)

# SmolLM3's own words for its tool list (its template writes them around `xml_tools`).
TOOLS_INTRO = (
    "You may call one or more functions to assist with the user query.\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n\n<tools>\n"
)
TOOLS_OUTRO = (
    "</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


@dataclass(frozen=True)
class ToolStyle:
    """What a template does with tools; see the module docstring."""

    tools_variable: str | None  # "xml_tools", "tools", or None: described in the system message
    renders_calls: bool  # reads an assistant message's `tool_calls`
    knows_tool_role: bool  # renders `tool` messages itself

    @classmethod
    def of(cls, source: str) -> ToolStyle:
        code = "\n".join(_CODE.findall(source))
        names = set(re.findall(r"\w+", _STRING.sub(" ", code)))
        literals = {literal[1:-1] for literal in _STRING.findall(code)}
        variable = "xml_tools" if "xml_tools" in names else "tools" if "tools" in names else None
        return cls(variable, "tool_calls" in names, "tool" in literals)

    def prompt(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, Any]] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The messages as the template reads them, and the template
        variables that list `tools` (None or empty: no tools)."""
        messages = list(messages)
        variables: dict[str, Any] = {}
        if tools and self.tools_variable == "xml_tools":
            variables["xml_tools"] = [dict(tool) for tool in tools]
        elif tools and self.tools_variable == "tools":
            variables["tools"] = [{"type": "function", "function": dict(t)} for t in tools]
        elif tools:
            messages = with_tools_described(messages, tools)
        return [self.message(m) for m in messages], variables

    def message(self, message: ChatMessage) -> dict[str, Any]:
        if message.role == "tool" and not self.knows_tool_role:
            content = f"<tool_response>\n{message.content}\n</tool_response>"
            return {"role": "user", "content": content}
        payload: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_call_id is not None:
            payload["tool_call_id"] = message.tool_call_id
        if not message.tool_calls:
            return payload
        if self.renders_calls:
            payload["tool_calls"] = [_call_payload(call) for call in message.tool_calls]
            return payload
        blocks = "\n".join(call_block(call.name, call.arguments) for call in message.tool_calls)
        payload["content"] = f"{message.content}\n{blocks}" if message.content else blocks
        return payload


def tools_description(tools: Sequence[Mapping[str, Any]]) -> str:
    """The tool list and the call format, for a template with neither."""
    listed = "".join(
        json.dumps({"type": "function", "function": dict(tool)}, ensure_ascii=False) + "\n"
        for tool in tools
    )
    return TOOLS_INTRO + listed + TOOLS_OUTRO


def with_tools_described(
    messages: list[ChatMessage], tools: Sequence[Mapping[str, Any]]
) -> list[ChatMessage]:
    """The messages with the tools described at the end of the system
    message (a new one first when there is none)."""
    description = tools_description(tools)
    if messages and messages[0].role == "system":
        first = messages[0]
        text = f"{first.content}\n\n{description}" if first.content else description
        return [ChatMessage("system", text), *messages[1:]]
    return [ChatMessage("system", description), *messages]


def _call_payload(call: ToolCall) -> dict[str, Any]:
    """A call as transformers passes it to templates: arguments as an object
    (kept as text when they are not JSON)."""
    try:
        arguments: Any = json.loads(call.arguments)
    except json.JSONDecodeError:
        arguments = call.arguments
    function = {"name": call.name, "arguments": arguments}
    return {"id": call.id, "type": "function", "function": function}
