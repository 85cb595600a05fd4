"""Reasoning models (SmolLM3, Qwen3, DeepSeek-R1...) think aloud between
`<think>` and `</think>` before they answer. The engine splits what a model
writes into its reasoning and its answer as the text streams, so that no
entry point ever hands the reasoning out as part of the answer.

A block counts only at the start of the output (a model that writes the tag
later on is answering, not thinking), or when the prompt itself ends inside
an open block (templates that open it for the model, or a client that
prefills it): then the output starts as reasoning.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

OPEN = "<think>"
CLOSE = "</think>"
# What the engine writes to end a block that ran past its budget: the model
# then answers, as after a block it closed itself.
FORCED_CLOSE = "\n" + CLOSE + "\n\n"


class Phase(enum.Enum):
    START = "start"  # nothing but whitespace yet: a block may still open
    THINKING = "thinking"  # inside the block
    ANSWER = "answer"  # after the block, or no block at all


@dataclass(frozen=True)
class Piece:
    text: str
    reasoning: bool


def ends_inside_block(prompt: str) -> bool:
    """Whether a prompt leaves a block open, so that the output starts inside it."""
    opened = prompt.rfind(OPEN)
    return opened != -1 and prompt.find(CLOSE, opened) == -1


class ReasoningSplitter:
    """Splits streamed text into reasoning and answer pieces.

    The tags themselves are never part of either; whitespace right after a
    tag, and at the end of the reasoning, is dropped. Text that may be the
    start of a tag is held back until it is decided, so the pieces of each
    kind concatenate to exactly the final reasoning and answer.
    """

    def __init__(self, *, thinking: bool = False, answering: bool = False) -> None:
        """`thinking`: the output starts inside a block; `answering`: it is
        all answer, no block may open (a grammar rules it from the start)."""
        self.phase = Phase.THINKING if thinking else Phase.ANSWER if answering else Phase.START
        self.opened = thinking  # a block was seen (possibly empty)
        self._held = ""
        self._skip_space = thinking  # at the start of the reasoning or the answer

    @property
    def is_thinking(self) -> bool:
        return self.phase is Phase.THINKING

    @property
    def held(self) -> str:
        """Text held back until it is decided (a tag arriving, trailing space)."""
        return self._held

    def feed(self, text: str) -> list[Piece]:
        pieces: list[Piece] = []
        buffer = self._held + text
        self._held = ""
        while buffer:
            if self._skip_space:
                buffer = buffer.lstrip()
                if not buffer:
                    break
                self._skip_space = False
            if self.phase is Phase.START:
                stripped = buffer.lstrip()
                if stripped.startswith(OPEN):
                    self.phase, self.opened, self._skip_space = Phase.THINKING, True, True
                    buffer = stripped[len(OPEN) :]
                elif OPEN.startswith(stripped):  # whitespace, or the tag arriving
                    self._held = buffer
                    break
                else:
                    self.phase = Phase.ANSWER
            elif self.phase is Phase.THINKING:
                end = buffer.find(CLOSE)
                if end != -1:
                    _add(pieces, buffer[:end].rstrip(), reasoning=True)
                    self.phase, self._skip_space = Phase.ANSWER, True
                    buffer = buffer[end + len(CLOSE) :]
                    continue
                keep = _undecided_tail(buffer)
                _add(pieces, buffer[: len(buffer) - keep], reasoning=True)
                self._held = buffer[len(buffer) - keep :]
                break
            else:
                _add(pieces, buffer, reasoning=False)
                break
        return pieces

    def flush(self) -> list[Piece]:
        """The output ended: release what was held back."""
        held, self._held = self._held, ""
        if self.phase is Phase.THINKING:
            return _add([], held.rstrip(), reasoning=True)
        if self.phase is Phase.START and held.strip():
            return _add([], held, reasoning=False)  # e.g. "<thi", then the end
        return []


def _add(pieces: list[Piece], text: str, *, reasoning: bool) -> list[Piece]:
    if text:
        pieces.append(Piece(text, reasoning))
    return pieces


def _undecided_tail(text: str) -> int:
    """Length of the tail of reasoning text to hold back: trailing whitespace
    (it is dropped if the block ends there) and a partial closing tag."""
    for size in range(min(len(CLOSE) - 1, len(text)), 0, -1):
        if text.endswith(CLOSE[:size]):
            partial = size
            break
    else:
        partial = 0
    body = text[: len(text) - partial]
    return partial + (len(body) - len(body.rstrip()))
