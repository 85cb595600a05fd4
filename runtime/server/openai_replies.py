"""What /v1 answers: a completion's JSON, or the chunks of its stream, in
OpenAI's shapes (chat completions and legacy text completions)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from runtime.engine.types import GenerationResult, Usage
from runtime.server.openai_logprobs import TextLogprobs, chat_logprobs
from runtime.server.openai_requests import ChatCompletionBody, CompletionBody
from runtime.server.openai_stream import ChunkFormat, TextEvent
from runtime.server.openai_tool_calls import ToolCallDeltas, answer, finish_reason


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def chat_delta(event: TextEvent) -> dict[str, Any]:
    """A streamed piece of the reply: reasoning goes in `reasoning_content`
    (llama-server's and vLLM's field, which the openai client passes through)."""
    return {"reasoning_content": event.text} if event.reasoning else {"content": event.text}


class Reply:
    """What every object of one response shares: id, object, created, model."""

    def __init__(self, id_prefix: str, object_: str, model: str) -> None:
        self.head = {
            "id": f"{id_prefix}-{uuid.uuid4().hex}",
            "object": object_,
            "created": int(time.time()),
            "model": model,
        }

    def json(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**self.head, "choices": choices, **extra}


def chat_chunks(body: ChatCompletionBody) -> ChunkFormat:
    reply = Reply("chatcmpl", "chat.completion.chunk", body.model)
    extra: dict[str, Any] = {"usage": None} if body.include_usage else {}

    def choice(
        delta: dict[str, Any], finish_reason: str | None = None, logprobs: Any = None
    ) -> dict[str, Any]:
        return reply.json(
            [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}],
            **extra,
        )

    use = body.tool_use()
    calls = ToolCallDeltas(use) if use.callable else None

    def delta(event: TextEvent) -> list[dict[str, Any]]:
        logprobs = chat_logprobs(event.logprobs or None)
        if calls is None or event.reasoning:
            return [choice(chat_delta(event), logprobs=logprobs)]
        pieces = calls.feed(event.text)
        # The tokens' entries go with the first chunk their text produced.
        return [
            choice(piece, logprobs=logprobs if i == 0 else None) for i, piece in enumerate(pieces)
        ]

    def finish(result: GenerationResult) -> list[dict[str, Any]]:
        if calls is None:
            return [choice({}, str(result.finish_reason))]
        last = choice({}, finish_reason(result, calls.num_calls))
        return [*(choice(piece) for piece in calls.flush()), last]

    return ChunkFormat(
        head=[choice({"role": "assistant", "content": ""})],
        delta=delta,
        finish=finish,
        usage=(lambda usage: reply.json([], usage=usage_json(usage)))
        if body.include_usage
        else None,
    )


def chat_completion(body: ChatCompletionBody, result: GenerationResult) -> dict[str, Any]:
    use = body.tool_use()
    if use.callable:
        message, finish = answer(use, result)
    else:
        message, finish = {"role": "assistant", "content": result.text}, str(result.finish_reason)
    if result.reasoning is not None:
        message["reasoning_content"] = result.reasoning
    choice = {
        "index": 0,
        "message": message,
        "logprobs": chat_logprobs(result.logprobs),
        "finish_reason": finish,
    }
    return Reply("chatcmpl", "chat.completion", body.model).json(
        [choice], usage=usage_json(result.usage)
    )


def text_chunks(body: CompletionBody) -> ChunkFormat:
    reply = Reply("cmpl", "text_completion", body.model)
    extra: dict[str, Any] = {"usage": None} if body.include_usage else {}
    logprobs = TextLogprobs()

    def choice(
        text: str, finish_reason: str | None = None, logprobs: Any = None, **more: Any
    ) -> dict[str, Any]:
        return reply.json(
            [
                {
                    "text": text,
                    "index": 0,
                    "logprobs": logprobs,
                    "finish_reason": finish_reason,
                    **more,
                }
            ],
            **extra,
        )

    def delta(event: TextEvent) -> dict[str, Any]:
        if event.reasoning:
            return choice("", reasoning_content=event.text)
        return choice(
            event.text, logprobs=logprobs.json(event.logprobs) if event.logprobs else None
        )

    return ChunkFormat(
        head=[choice(body.prompt)] if body.echo and body.prompt else [],
        delta=lambda event: [delta(event)],
        finish=lambda result: [choice("", str(result.finish_reason))],
        usage=(lambda usage: reply.json([], usage=usage_json(usage)))
        if body.include_usage
        else None,
    )


def text_completion(body: CompletionBody, result: GenerationResult) -> dict[str, Any]:
    text = body.prompt + result.text if body.echo else result.text
    logprobs = None if result.logprobs is None else TextLogprobs().json(result.logprobs)
    choice = {
        "text": text,
        "index": 0,
        "logprobs": logprobs,
        "finish_reason": str(result.finish_reason),
    }
    if result.reasoning is not None:
        choice["reasoning_content"] = result.reasoning
    return Reply("cmpl", "text_completion", body.model).json(
        [choice], usage=usage_json(result.usage)
    )
