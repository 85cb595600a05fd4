"""Log-probabilities in OpenAI's shapes: `[{token, logprob, bytes,
top_logprobs}]` for chat completions and the Responses API, and the legacy
completions' parallel lists (`tokens`, `token_logprobs`, `top_logprobs`,
`text_offset`). What they are is engine.logprobs's business.

A token is bytes, maybe part of a character: its `token` string shows such
bytes escaped (`\\xf0\\x9f`), as OpenAI does, and `bytes` has them all.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from typing import Any

from runtime.engine.logprobs import TokenChoice, TokenLogprob


def token_text(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


def choice_json(choice: TokenChoice) -> dict[str, Any]:
    return {
        "token": token_text(choice.bytes),
        "logprob": choice.logprob,
        "bytes": list(choice.bytes),
    }


def entry_json(entry: TokenLogprob) -> dict[str, Any]:
    """One token of the answer, with its most likely alternatives."""
    return {**choice_json(entry), "top_logprobs": [choice_json(top) for top in entry.top]}


def content_logprobs(entries: Iterable[TokenLogprob]) -> list[dict[str, Any]]:
    return [entry_json(entry) for entry in entries]


def chat_logprobs(entries: tuple[TokenLogprob, ...] | None) -> dict[str, Any] | None:
    """A chat choice's `logprobs` (None: not asked for, or a chunk without tokens)."""
    if entries is None:
        return None
    return {"content": content_logprobs(entries), "refusal": None}


class TextLogprobs:
    """A legacy completion's `logprobs`. `text_offset` counts characters of
    the text from its start, across the chunks of a stream: one object per
    choice."""

    def __init__(self) -> None:
        self._offset = 0
        # A character split over tokens counts once, where it starts.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def json(self, entries: tuple[TokenLogprob, ...]) -> dict[str, Any]:
        offsets = []
        for entry in entries:
            offsets.append(self._offset)
            self._offset += len(self._decoder.decode(entry.bytes))
        return {
            "tokens": [token_text(entry.bytes) for entry in entries],
            "token_logprobs": [entry.logprob for entry in entries],
            "top_logprobs": [top_dict(entry) for entry in entries],
            "text_offset": offsets,
        }


def top_dict(entry: TokenLogprob) -> dict[str, float]:
    """The alternatives as `{token: logprob}`, the sampled token always among
    them (OpenAI's "up to logprobs + 1")."""
    top = {token_text(choice.bytes): choice.logprob for choice in entry.top}
    top.setdefault(token_text(entry.bytes), entry.logprob)
    return top
