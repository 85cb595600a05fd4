"""Generated text on the page: markdown with a copy button, and a reasoning
model's reasoning folded into a "Reasoning" expansion above the answer.

The engine splits the reasoning from the answer (runtime/engine/reasoning.py);
the page only shows the two parts it is given."""

from __future__ import annotations

from nicegui import ui


class AnswerView:
    """Create it inside the container it belongs to; `set_text` as text streams in."""

    def __init__(self, marker: str = "answer") -> None:
        self.answer = ""
        self.reasoning: str | None = None
        with ui.column().classes("w-full gap-1") as self.root:
            self.fold = (
                ui.expansion("Reasoning")
                .classes("w-full text-grey-8")
                .props("dense")
                .mark("reasoning")
            )
            with self.fold:
                self.fold_text = ui.markdown().classes("text-sm").mark("reasoning-text")
            with ui.row().classes("w-full items-start no-wrap gap-1"):
                self.markdown = ui.markdown().classes("grow min-w-0").mark(marker)
                self.copy_button = (
                    ui.button(icon="content_copy", on_click=self.copy)
                    .props('flat round dense size=sm aria-label="Copy the answer"')
                    .tooltip("Copy the answer")
                    .mark("copy")
                )
        self.set_text("")

    def set_text(self, answer: str, reasoning: str | None = None, *, live: bool = False) -> None:
        """`live`: the generation is still going, so reasoning with no answer
        yet means the model is still thinking."""
        self.answer, self.reasoning = answer, reasoning or None
        # SmolLM3 writes an empty block when thinking is off: nothing to show.
        self.fold.set_visibility(self.reasoning is not None)
        thinking = live and self.reasoning is not None and not answer
        self.fold.text = "Reasoning…" if thinking else "Reasoning"
        self.fold_text.set_content(self.reasoning or "")
        self.markdown.set_content(answer)
        self.copy_button.set_visibility(bool(answer))

    def copy(self) -> None:
        ui.clipboard.write(self.answer)
        ui.notify("Copied", timeout=1000)
