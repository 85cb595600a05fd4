"""The tool-call format: a function call written as a JSON object between
`<tool_call>` and `</tool_call>`, the format of SmolLM3, Qwen2.5/Qwen3 and
the Hermes models (and the one this project asks of templates that have no
format of their own: `engine.tool_prompt`):

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

`ToolCallSplitter` splits an answer as it streams into its text and its
calls. A block counts as a call only when it holds a JSON object naming one
of the request's functions with an object of arguments; anything else (bad
JSON, an unknown function, a block cut short) stays text, tags and all, so
nothing the model wrote is lost.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

OPEN = "<tool_call>"
CLOSE = "</tool_call>"


@dataclass(frozen=True)
class ParsedCall:
    """A call found in the answer; `arguments`: a JSON object as text."""

    name: str
    arguments: str


# What the splitter hands out: answer text, or a call.
Part = str | ParsedCall


def call_block(name: str, arguments: Mapping[str, Any] | str) -> str:
    """A call written the way the model writes one (for the history of
    templates that do not render calls themselves). `arguments`: an object,
    or its JSON text (written as it is when it is not valid JSON)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            body = f'{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {arguments}}}'
            return f"{OPEN}\n{body}\n{CLOSE}"
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{OPEN}\n{body}\n{CLOSE}"


def parse_call(block: str, names: Collection[str]) -> ParsedCall | None:
    """The call a block's text holds, or None when it is not a call to one of
    `names`. Arguments may also come as `parameters` (Llama 3's word) or as
    a JSON string holding the object; none at all means no arguments."""
    try:
        value = json.loads(block)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ParsedCall(value["name"], json.dumps(arguments, ensure_ascii=False))


class ToolCallSplitter:
    """Splits streamed answer text into text and calls.

    Text that may be the start of `<tool_call>` is held back until it is
    decided, and a block is held until it closes, so the parts come out in
    order however the text was cut into pieces. Whitespace at the start of
    the text, and around calls, is dropped: an answer that is only calls has
    no text at all. With `max_calls`, later calls are dropped (a request that
    asked for one call at most).
    """

    def __init__(self, names: Collection[str], *, max_calls: int | None = None) -> None:
        self.names = names
        self.max_calls = max_calls
        self.num_calls = 0
        self._buffer = ""  # undecided text: a tag arriving, or a block not yet closed
        self._inside = False
        self._space = ""  # whitespace kept until text follows it
        self._wrote_text = False

    def feed(self, text: str) -> list[Part]:
        parts: list[Part] = []
        buffer = self._buffer + text
        self._buffer = ""
        while buffer:
            if self._inside:
                end = buffer.find(CLOSE)
                if end == -1:
                    self._buffer = buffer
                    break
                self._block(buffer[:end], parts)
                self._inside = False
                buffer = buffer[end + len(CLOSE) :]
                continue
            start = buffer.find(OPEN)
            if start != -1:
                self._text(buffer[:start], parts)
                self._inside = True
                buffer = buffer[start + len(OPEN) :]
                continue
            keep = _partial_open(buffer)
            self._text(buffer[: len(buffer) - keep], parts)
            self._buffer = buffer[len(buffer) - keep :]
            break
        return parts

    def flush(self) -> list[Part]:
        """The answer ended: what was held back is text (a block that never
        closed included)."""
        parts: list[Part] = []
        held, self._buffer = self._buffer, ""
        self._text(OPEN + held if self._inside else held, parts)
        self._inside = False
        return parts

    def _block(self, block: str, parts: list[Part]) -> None:
        call = parse_call(block.strip(), self.names)
        if call is None:
            self._text(OPEN + block + CLOSE, parts)
            return
        if self.max_calls is None or self.num_calls < self.max_calls:
            parts.append(call)
            self.num_calls += 1
        self._space = ""  # whitespace before a call goes with it

    def _text(self, text: str, parts: list[Part]) -> None:
        text = self._space + text
        if not self._wrote_text:
            text = text.lstrip()
        body = text.rstrip()
        self._space = text[len(body) :]
        if body:
            parts.append(body)
            self._wrote_text = True


def split_tool_calls(
    text: str, names: Collection[str], *, max_calls: int | None = None
) -> tuple[str | None, list[ParsedCall]]:
    """A whole answer's text (None when there is none) and its calls."""
    splitter = ToolCallSplitter(names, max_calls=max_calls)
    parts = splitter.feed(text) + splitter.flush()
    texts = [part for part in parts if isinstance(part, str)]
    calls = [part for part in parts if isinstance(part, ParsedCall)]
    return ("".join(texts) or None), calls


def _partial_open(text: str) -> int:
    """Length of the end of `text` that may be the start of `<tool_call>`."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if text.endswith(OPEN[:size]):
            return size
    return 0
