"""Reasoning models (SmolLM3, Qwen3...) think aloud between `<think>` and
`</think>` before they answer. The UI folds that part away from the answer,
also while it is still streaming in."""

from __future__ import annotations

from dataclasses import dataclass

OPEN = "<think>"
CLOSE = "</think>"


@dataclass(frozen=True)
class Reasoned:
    answer: str
    reasoning: str | None = None  # None: the text has no reasoning block
    is_thinking: bool = False  # the block is open: the model is still reasoning

    @property
    def has_reasoning(self) -> bool:
        """Worth showing: SmolLM3 writes an empty block when thinking is off."""
        return bool(self.reasoning) or self.is_thinking


def split_reasoning(text: str) -> Reasoned:
    """Split generated text into its reasoning and its answer.

    A block counts only at the start of the text (a model writing about the
    tag later on is answering, not thinking). A `</think>` with no opening tag
    closes a block the chat template opened in the prompt, as some templates do.
    """
    stripped = text.lstrip()
    if stripped.startswith(OPEN):
        inside = stripped[len(OPEN) :]
        end = inside.find(CLOSE)
        if end == -1:
            return Reasoned("", _trim_partial_close(inside).strip(), is_thinking=True)
        return Reasoned(inside[end + len(CLOSE) :].lstrip(), inside[:end].strip())
    if stripped and OPEN.startswith(stripped):
        return Reasoned("", is_thinking=False)  # the opening tag is still arriving
    end = text.find(CLOSE)
    if end != -1 and OPEN not in text[:end]:
        return Reasoned(text[end + len(CLOSE) :].lstrip(), text[:end].strip())
    return Reasoned(text)


def _trim_partial_close(text: str) -> str:
    """While streaming, `</thi` at the end is the closing tag arriving."""
    for size in range(len(CLOSE) - 1, 0, -1):
        if text.endswith(CLOSE[:size]):
            return text[:-size]
    return text
