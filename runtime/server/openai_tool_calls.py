"""Tool calling on /v1/chat/completions, the answer's side: the `<tool_call>`
blocks of an answer become OpenAI's `tool_calls`, whole or streamed.

A reply with calls has `finish_reason: "tool_calls"` and `content` null, or
the text the model wrote outside its calls. Streamed, a call comes as
OpenAI's do: a `delta.tool_calls` entry with its `index`, `id`, `type` and
`function.name` (arguments ""), then one with the arguments. A call is sent
once its block has closed (only then is it known to be a call), so its
arguments come in one piece. Reasoning comes first, as `reasoning_content`,
whatever follows it (the reasoning is never parsed for calls).
"""

from __future__ import annotations

import uuid
from typing import Any

from runtime.engine.tool_calls import ParsedCall, ToolCallSplitter, split_tool_calls
from runtime.engine.types import FinishReason, GenerationResult
from runtime.server.openai_tools import ToolUse

TOOL_CALLS = "tool_calls"


def call_id() -> str:
    """A call's id, in OpenAI's form."""
    return f"call_{uuid.uuid4().hex[:24]}"


def finish_reason(result: GenerationResult, num_calls: int) -> str:
    """`tool_calls` for an answer that called and ended by itself; a cut one
    keeps `length`."""
    if num_calls and result.finish_reason == FinishReason.STOP:
        return TOOL_CALLS
    return str(result.finish_reason)


def answer(use: ToolUse, result: GenerationResult) -> tuple[dict[str, Any], str]:
    """The assistant message of a whole answer, and its finish reason."""
    content, calls = split_tool_calls(result.text, use.callable, max_calls=use.max_calls)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message[TOOL_CALLS] = [
            {"id": call_id(), "type": "function", "function": _function(call)} for call in calls
        ]
    return message, finish_reason(result, len(calls))


class ToolCallDeltas:
    """The deltas of a streamed answer's text, with its calls split out."""

    def __init__(self, use: ToolUse) -> None:
        self._splitter = ToolCallSplitter(use.callable, max_calls=use.max_calls)

    @property
    def num_calls(self) -> int:
        return self._splitter.num_calls

    def feed(self, text: str) -> list[dict[str, Any]]:
        return self._deltas(self._splitter.feed(text))

    def flush(self) -> list[dict[str, Any]]:
        """The answer ended: what the splitter held back."""
        return self._deltas(self._splitter.flush())

    def _deltas(self, parts: list[str | ParsedCall]) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = []
        index = self.num_calls - sum(isinstance(part, ParsedCall) for part in parts)
        for part in parts:
            if isinstance(part, str):
                deltas.append({"content": part})
                continue
            head = {"index": index, "id": call_id(), "type": "function"}
            deltas.append(
                {TOOL_CALLS: [{**head, "function": {"name": part.name, "arguments": ""}}]}
            )
            deltas.append(
                {TOOL_CALLS: [{"index": index, "function": {"arguments": part.arguments}}]}
            )
            index += 1
        return deltas


def _function(call: ParsedCall) -> dict[str, str]:
    return {"name": call.name, "arguments": call.arguments}
