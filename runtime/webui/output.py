"""Where a workflow run's output appears: streamed text while it runs, then
the output itself, the stats line under it, or a readable error. A reasoning
model's reasoning, as it streamed, stays folded above the output (which is
the answer only)."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from runtime.config.schema import WorkflowConfig
from runtime.webui.answer import AnswerView
from runtime.webui.stats import RunStats, format_stats


class OutputView:
    """Markers: `output` (the answer's markdown), `output-json`,
    `output-field-<name>`, `stats`, `error`."""

    def __init__(self) -> None:
        with ui.column().classes("w-full gap-2") as self.root:
            self.caption = ui.label().classes("text-caption text-grey-7").mark("output-caption")
            self.answer = AnswerView(marker="output")
            self.fields = ui.column().classes("w-full gap-2")
            self.json = ui.code("", language="json").classes("w-full").mark("output-json")
            self.error = ui.label().classes("text-negative whitespace-pre-wrap").mark("error")
            self.stats = ui.label().classes("text-caption text-grey-7").mark("stats")
        self.reset()

    def reset(self) -> None:
        """Empty, as before a run."""
        self.caption.set_visibility(False)
        self.answer.set_text("")
        self.answer.root.set_visibility(True)
        self.fields.clear()
        self.json.set_visibility(False)
        self.error.set_text("")
        self.error.set_visibility(False)
        self.stats.set_text("")
        self.stats.set_visibility(False)

    def stream(self, answer: str, reasoning: str | None = None) -> None:
        self.answer.set_text(answer, reasoning, live=True)

    def end_stream(self) -> None:
        """The run is over (answered, failed or cancelled): no longer thinking."""
        self.answer.set_text(self.answer.answer, self.answer.reasoning)

    def show_output(self, output: Any, *, fields: bool = True) -> None:
        """The run's final output: text as markdown; a mapping of `fields` (a
        workflow's `output:`, see `names_its_output`): its text fields as
        markdown (the first one where the streamed text was) and its other
        fields as JSON; anything else (an `output_schema`'s JSON) as JSON."""
        reasoning = self.answer.reasoning
        if isinstance(output, str):
            self.answer.set_text(output, reasoning)
            return
        named = fields and isinstance(output, dict)
        if named and any(isinstance(v, str) for v in output.values()):
            first = next(k for k, v in output.items() if isinstance(v, str))
            self.caption.set_text(str(first))
            self.caption.set_visibility(True)
            self.answer.set_text(output[first], reasoning)
            with self.fields:
                for name, value in output.items():
                    if name == first:
                        continue
                    ui.label(str(name)).classes("text-caption text-grey-7")
                    if isinstance(value, str):
                        AnswerView(marker=f"output-field-{name}").set_text(value)
                    else:
                        ui.code(_json(value), language="json").classes("w-full").mark(
                            f"output-field-{name}"
                        )
            return
        self.answer.set_text("", reasoning)
        self.answer.root.set_visibility(reasoning is not None)
        self.json.set_content(_json(output))
        self.json.set_visibility(True)

    def show_error(self, message: str) -> None:
        self.error.set_text(message)
        self.error.set_visibility(True)

    def show_stats(self, stats: RunStats) -> None:
        self.stats.set_text(format_stats(stats))
        self.stats.set_visibility(True)


def names_its_output(workflow: WorkflowConfig) -> bool:
    """Whether a workflow's output is a mapping of fields its file names (an
    `output:` on the workflow or its final job, or several final jobs by id),
    rather than an action's own result: text, or the parsed JSON of an
    `output_schema` (shown whole, as JSON)."""
    if workflow.output is not None:
        return True
    if not workflow.jobs:  # its one implicit job gives the action's result
        return False
    needed = {d for job in workflow.jobs for d in job.depends_on}
    final = [job for job in workflow.jobs if job.id not in needed]
    return len(final) != 1 or final[0].output is not None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)
