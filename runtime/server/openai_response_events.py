"""What POST /v1/responses answers: the response object, or with `stream:
true` the events that build it, in OpenAI's order: `response.created`,
`response.in_progress`; for each output item `response.output_item.added`,
`response.content_part.added`, its text's deltas and `….done`,
`response.content_part.done`, `response.output_item.done` (a function call:
`response.output_item.added`, `response.function_call_arguments.delta` and
`….done`, `response.output_item.done`); then
`response.completed`, or `response.incomplete` when the output was cut
(`max_output_tokens` or the context), or after a failure an `error` event
and `response.failed`. No `[DONE]`: the Responses API has none.

The output is a reasoning item with a reasoning model's thinking (when it
wrote any), then a message with the answer (when there is text, or nothing
else), then a `function_call` item for each tool call the answer made (text
after a call is another message); the last item is `incomplete` when the
output was cut. As on chat, a call is sent once its block has closed (only
then is it known to be a call), so its arguments come in one delta.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sse_starlette import ServerSentEvent

from runtime.engine.logprobs import TokenLogprob
from runtime.engine.tool_calls import ParsedCall, ToolCallSplitter, split_tool_calls
from runtime.engine.types import FinishReason, GenerationResult, Usage
from runtime.server.openai_errors import openai_error
from runtime.server.openai_logprobs import content_logprobs
from runtime.server.openai_stream import BackgroundGeneration, Event, TextEvent, unfinished_error
from runtime.server.openai_tool_calls import call_id
from runtime.server.openai_tools import ToolUse
from runtime.server.streaming import PING

if TYPE_CHECKING:
    from runtime.server.openai_responses import ResponsesBody


def echoed_format(text_format: dict[str, Any] | None) -> dict[str, Any]:
    """The request's `text.format` as a response shows it: a json_schema
    format as it came, the others by their type alone (keys they do not
    have, which a request may carry, are not echoed)."""
    if text_format is None or text_format.get("type") != "json_schema":
        return {"type": (text_format or {}).get("type", "text")}
    return text_format


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def output_text(text: str, logprobs: list[TokenLogprob]) -> dict[str, Any]:
    return {
        "type": "output_text",
        "text": text,
        "annotations": [],
        "logprobs": content_logprobs(logprobs),
    }


def reasoning_text(text: str) -> dict[str, Any]:
    return {"type": "reasoning_text", "text": text}


def function_call_item(call: ParsedCall, call_id: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id.removeprefix('call_')}",
        "call_id": call_id,
        "name": call.name,
        "arguments": call.arguments if status != "in_progress" else "",
        "status": status,
    }


def tools_json(body: ResponsesBody) -> list[dict[str, Any]]:
    """The request's function tools, as the response echoes them."""
    return [
        {
            "type": "function",
            "name": tool["name"],
            "description": tool.get("description"),
            "parameters": tool.get("parameters"),
            "strict": tool.get("strict"),
        }
        for tool in body.tools or []
    ]


def item_status(result: GenerationResult) -> str:
    return "incomplete" if result.finish_reason == FinishReason.LENGTH else "completed"


class ResponseStream:
    """One response: its ids, and as it streams, its output items and the
    events' sequence numbers. `whole` is the answer without a stream."""

    def __init__(self, body: ResponsesBody) -> None:
        self.body = body
        self.id = f"resp_{uuid.uuid4().hex}"
        self.created_at = int(time.time())
        self.reasoning_id = f"rs_{uuid.uuid4().hex}"
        self.message_id = f"msg_{uuid.uuid4().hex}"
        self.output: list[dict[str, Any]] = []
        self._calls: ToolCallSplitter | None = None  # set on the first answer text
        self._sequence = 0
        self._reasoning: list[str] | None = None  # the open reasoning item's text
        self._answer: list[str] | None = None  # the open message's text
        self._logprobs: list[TokenLogprob] = []

    # -- the response object -----------------------------------------------------------

    def response(
        self,
        status: str,
        usage: Usage | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = self.body
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": int(time.time()) if status == "completed" else None,
            "status": status,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "model": body.model,
            "output": list(self.output),
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": None,
            "reasoning": {"effort": body.effort, "summary": None},
            "store": False,
            "temperature": body.temperature,
            "top_p": body.top_p,
            "text": {"format": echoed_format(body.text_format)},
            "tool_choice": body.tool_choice or "auto",
            "tools": tools_json(body),
            "top_logprobs": body.top_logprobs,
            "truncation": "disabled",
            "usage": None if usage is None else usage_json(usage),
            "metadata": body.metadata or {},
        }

    def reasoning_item(self, text: str, status: str) -> dict[str, Any]:
        content = [reasoning_text(text)] if status != "in_progress" else []
        return {
            "type": "reasoning",
            "id": self.reasoning_id,
            "status": status,
            "summary": [],
            "content": content,
        }

    def message_item(self, text: str, logprobs: list[TokenLogprob], status: str) -> dict[str, Any]:
        content = [output_text(text, logprobs)] if status != "in_progress" else []
        return {
            "type": "message",
            "id": self.message_id,
            "status": status,
            "role": "assistant",
            "content": content,
        }

    @cached_property
    def tool_use(self) -> ToolUse:
        # Asked once the generation ran: the request was valid by then.
        return self.body.chat_body().tool_use()

    def whole(self, result: GenerationResult) -> dict[str, Any]:
        """The response to a request without `stream`."""
        last = item_status(result)
        text, calls = result.text, []
        if self.tool_use.callable:
            use = self.tool_use
            text, calls = split_tool_calls(result.text, use.callable, max_calls=use.max_calls)
            text = text or ""
        if result.reasoning:
            status = "completed" if text or calls else last  # the answer follows it
            self.output.append(self.reasoning_item(result.reasoning, status))
        if text or not (result.reasoning or calls):
            status = "completed" if calls else last
            self.output.append(self.message_item(text, list(result.logprobs or ()), status))
        for call in calls:
            self.output.append(function_call_item(call, call_id(), "completed"))
        return self.response(last, result.usage)

    # -- the stream ----------------------------------------------------------------------

    def event(self, type_: str, **fields: Any) -> dict[str, Any]:
        event = {"type": type_, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def started(self) -> list[dict[str, Any]]:
        response = self.response("in_progress")
        return [
            self.event("response.created", response=response),
            self.event("response.in_progress", response=response),
        ]

    def delta(self, event: TextEvent) -> list[dict[str, Any]]:
        events = []
        if event.reasoning:
            if self._reasoning is None:
                events += self._open(self.reasoning_item("", "in_progress"), reasoning_text(""))
                self._reasoning = []
            self._reasoning.append(event.text)
            events.append(self._part_event("response.reasoning_text.delta", delta=event.text))
            return events
        if self._reasoning is not None:
            events += self._close_reasoning("completed")
        if not self.tool_use.callable:
            return events + self._text(event.text, event.logprobs)
        if self._calls is None:
            use = self.tool_use
            self._calls = ToolCallSplitter(use.callable, max_calls=use.max_calls)
        self._logprobs += event.logprobs  # the answer's, whatever part of it they are
        return events + self._parts(self._calls.feed(event.text))

    def _parts(self, parts: list[str | ParsedCall]) -> list[dict[str, Any]]:
        events = []
        for part in parts:
            if isinstance(part, str):
                events += self._text(part, [])
            else:
                events += self._call(part)
        return events

    def _text(self, text: str, logprobs: list[TokenLogprob]) -> list[dict[str, Any]]:
        events = []
        if self._answer is None:
            events += self._open(self.message_item("", [], "in_progress"), output_text("", []))
            self._answer = []
        self._answer.append(text)
        self._logprobs += logprobs
        events.append(
            self._part_event(
                "response.output_text.delta", delta=text, logprobs=content_logprobs(logprobs)
            )
        )
        return events

    def _call(self, call: ParsedCall) -> list[dict[str, Any]]:
        """A whole call: its item, its arguments in one delta, its end."""
        events = self._close_message("completed") if self._answer is not None else []
        id_ = call_id()
        self.output.append(function_call_item(call, id_, "in_progress"))
        index = len(self.output) - 1
        item_id = self.output[-1]["id"]
        where = {"item_id": item_id, "output_index": index}
        done = function_call_item(call, id_, "completed")
        events += [
            self.event("response.output_item.added", output_index=index, item=self.output[-1]),
            self.event("response.function_call_arguments.delta", **where, delta=call.arguments),
            self.event("response.function_call_arguments.done", **where, arguments=call.arguments),
            self.event("response.output_item.done", output_index=index, item=done),
        ]
        self.output[-1] = done
        return events

    def finished(self, result: GenerationResult) -> list[dict[str, Any]]:
        last = item_status(result)
        events = []
        if self._calls is not None:
            events += self._parts(self._calls.flush())
        if self._reasoning is not None:
            events += self._close_reasoning(last)
        elif self._answer is not None or not self.output:
            if self._answer is None:  # no text at all: an empty answer
                events += self._open(self.message_item("", [], "in_progress"), output_text("", []))
                self._answer = []
            events += self._close_message(last)
        kind = "response.completed" if last == "completed" else "response.incomplete"
        return [*events, self.event(kind, response=self.response(last, result.usage))]

    def failed(self, error: BaseException) -> list[dict[str, Any]]:
        detail = openai_error(error)[1]["error"]
        failure = {"code": "server_error", "message": detail["message"]}
        return [
            self.event("error", code=detail["code"], message=detail["message"], param=None),
            self.event("response.failed", response=self.response("failed", error=failure)),
        ]

    def _open(self, item: dict[str, Any], part: dict[str, Any]) -> list[dict[str, Any]]:
        self.output.append(item)
        return [
            self.event("response.output_item.added", output_index=len(self.output) - 1, item=item),
            self._part_event("response.content_part.added", part=part),
        ]

    def _close_reasoning(self, status: str) -> list[dict[str, Any]]:
        text = "".join(self._reasoning or [])
        self._reasoning = None
        item = self.reasoning_item(text, status)
        return self._close(item, reasoning_text(text), "response.reasoning_text.done", text=text)

    def _close_message(self, status: str) -> list[dict[str, Any]]:
        text = "".join(self._answer or [])
        self._answer = None
        item = self.message_item(text, self._logprobs, status)
        part = output_text(text, self._logprobs)
        self._logprobs = []
        # Text after a call is another message, with its own id.
        self.message_id = f"msg_{uuid.uuid4().hex}"
        return self._close(
            item, part, "response.output_text.done", text=text, logprobs=part["logprobs"]
        )

    def _close(
        self, item: dict[str, Any], part: dict[str, Any], done: str, **fields: Any
    ) -> list[dict[str, Any]]:
        self.output[-1] = item
        return [
            self._part_event(done, **fields),
            self._part_event("response.content_part.done", part=part),
            self.event("response.output_item.done", output_index=len(self.output) - 1, item=item),
        ]

    def _part_event(self, type_: str, **fields: Any) -> dict[str, Any]:
        """An event about the text of the item being written (the last one)."""
        item = self.output[-1]
        where = {"item_id": item["id"], "output_index": len(self.output) - 1, "content_index": 0}
        return self.event(type_, **where, **fields)


def sse(event: dict[str, Any]) -> ServerSentEvent:
    """An event named as its type, as OpenAI sends them."""
    return ServerSentEvent(data=json.dumps(event, ensure_ascii=False), event=event["type"])


async def response_events(
    generation: BackgroundGeneration, first: Event, stream: ResponseStream
) -> AsyncIterator[ServerSentEvent]:
    """The stream from the generation's first event on."""
    for event in stream.started():
        yield sse(event)
    current = first
    while isinstance(current, TextEvent) or current is PING:
        if current is PING:
            yield PING
        else:
            for event in stream.delta(current):  # type: ignore[arg-type]
                yield sse(event)
        current = await generation.next_or_ping()
    if isinstance(current, GenerationResult):
        current = unfinished_error(current) or current
    if isinstance(current, GenerationResult):
        events = stream.finished(current)
    else:
        events = stream.failed(current)
    for event in events:
        yield sse(event)
