"""Generated text on the page: markdown with a copy button, and `<think>`
reasoning folded into a "Reasoning" expansion apart from the answer."""

from __future__ import annotations

from nicegui import ui

from runtime.webui.reasoning import split_reasoning


class AnswerView:
    """Create it inside the container it belongs to; `set_text` as text streams in."""

    def __init__(self, marker: str = "answer") -> None:
        self.text = ""
        with ui.column().classes("w-full gap-1") as self.root:
            self.reasoning = (
                ui.expansion("Reasoning")
                .classes("w-full text-grey-8")
                .props("dense")
                .mark("reasoning")
            )
            with self.reasoning:
                self.reasoning_text = ui.markdown().classes("text-sm").mark("reasoning-text")
            with ui.row().classes("w-full items-start no-wrap gap-1"):
                self.markdown = ui.markdown().classes("grow min-w-0").mark(marker)
                self.copy_button = (
                    ui.button(icon="content_copy", on_click=self.copy)
                    .props('flat round dense size=sm aria-label="Copy the answer"')
                    .tooltip("Copy the answer")
                    .mark("copy")
                )
        self.set_text("")

    @property
    def answer(self) -> str:
        return split_reasoning(self.text).answer

    def set_text(self, text: str) -> None:
        self.text = text
        parts = split_reasoning(text)
        self.reasoning.set_visibility(parts.has_reasoning)
        self.reasoning.text = "Reasoning…" if parts.is_thinking else "Reasoning"
        self.reasoning_text.set_content(parts.reasoning or "")
        self.markdown.set_content(parts.answer)
        self.copy_button.set_visibility(bool(parts.answer))

    def copy(self) -> None:
        ui.clipboard.write(self.answer)
        ui.notify("Copied", timeout=1000)
