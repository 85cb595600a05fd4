"""A workflow's form, its Run and Cancel buttons, its output, and the API
panel with the same run as a `curl` command."""

from __future__ import annotations

import asyncio
import logging

from nicegui import ui

from runtime.config.schema import WorkflowConfig
from runtime.engine.logprobs import TokenLogprob
from runtime.engine.types import GenerationResult
from runtime.errors import InputError, ModelComposeError
from runtime.service import Service
from runtime.webui.curl import curl_command
from runtime.webui.form import InputForm
from runtime.webui.output import OutputView, names_its_output
from runtime.webui.stats import run_stats
from runtime.workflow.inputs import workflow_inputs
from runtime.workflow.tasks import Task, TaskStatus

logger = logging.getLogger(__name__)

# After Cancel, how long the run gets to stop at its next token (keeping the
# stats of what it generated) before its asyncio task is cancelled outright
# (a run still waiting for a free slot has no next token).
GRACEFUL_CANCEL_S = 1.0


async def cancel_gracefully(task: Task | None) -> None:
    """Ask a run to stop, so that it ends with the stats of what it generated;
    cancel it outright if it has not ended within GRACEFUL_CANCEL_S."""
    if task is None or task.is_finished:
        return
    task.context.cancel.cancel()
    try:
        await asyncio.wait_for(asyncio.shield(task.wait()), GRACEFUL_CANCEL_S)
    except TimeoutError:
        task.cancel()


def stop_now(task: Task | None) -> None:
    if task is not None and not task.is_finished:
        task.cancel()


class _StreamListener:
    """Shows a run's text as it is generated, each job's text apart: its
    answer, and its reasoning in the fold above."""

    def __init__(self, output: OutputView) -> None:
        self.output = output
        self.answers: dict[str, str] = {}
        self.reasonings: dict[str, str] = {}

    def on_delta(
        self,
        job_id: str,
        text: str,
        streaming: bool,
        reasoning: bool = False,
        logprobs: tuple[TokenLogprob, ...] = (),
    ) -> None:
        # Always live, whatever the action's `streaming`: a page has nothing
        # better to show meanwhile.
        self.answers.setdefault(job_id, "")
        self.reasonings.setdefault(job_id, "")
        texts = self.reasonings if reasoning else self.answers
        texts[job_id] += text
        self.output.stream(_by_job(self.answers), _by_job(self.reasonings))

    def on_result(self, job_id: str, result: GenerationResult) -> None:
        pass


def _by_job(texts: dict[str, str]) -> str:
    """One job's text as it is; several jobs' texts each under its job's name."""
    if len(texts) == 1:
        return next(iter(texts.values()))
    return "\n\n".join(f"**{job}**\n\n{text}" for job, text in texts.items() if text)


class RunPanel:
    """Markers: `run`, `cancel`, `curl`, and those of InputForm and OutputView."""

    def __init__(self, service: Service, workflow: WorkflowConfig, api_url: str) -> None:
        self.service = service
        self.workflow = workflow
        self.api_url = api_url
        self.task: Task | None = None
        with ui.column().classes("w-full gap-3") as self.root:
            self.form = InputForm(workflow_inputs(service.config, workflow), self._form_changed)
            with ui.row().classes("gap-2"):
                self.run_button = (
                    ui.button("Run Workflow", on_click=self.run).props("color=primary").mark("run")
                )
                self.cancel_button = (
                    ui.button("Cancel", on_click=self.cancel).props("outline").mark("cancel")
                )
                self.cancel_button.disable()
                self.spinner = ui.spinner(size="sm")
                self.spinner.set_visibility(False)
            self.output = OutputView()
            with ui.expansion("API").classes("w-full").mark("api"):
                ui.label("The same run through the REST API:").classes("text-caption")
                self.curl = ui.code(self._curl(), language="bash").classes("w-full").mark("curl")

    @property
    def is_running(self) -> bool:
        return self.task is not None and not self.task.is_finished

    def _curl(self) -> str:
        reading = self.form.read()
        api_key = bool(self.service.config.controller.api_key)
        return curl_command(self.api_url, self.workflow.id, reading.values, api_key)

    def _form_changed(self) -> None:
        self.curl.set_content(self._curl())

    async def run(self) -> None:
        if self.is_running:
            return
        reading = self.form.read()
        self.form.show_errors(reading.errors)
        if not reading.is_valid:
            names = ", ".join(reading.errors)
            ui.notify(f"Check the inputs first: {names}", type="warning")
            return
        self.output.reset()
        try:
            run = self.service.prepare(self.workflow.id, reading.values)
            self.task = self.service.start_run(run, _StreamListener(self.output))
        except ModelComposeError as error:
            self._show_failure(error)
            return
        self._set_running(True)
        try:
            await self.task.wait()
            self._show_result(self.task)
        except Exception as error:  # a bug in the page: say so, keep the page alive
            logger.exception("the Web UI failed to show a run")
            self.output.show_error(f"internal error: {error}")
        finally:
            self._set_running(False)

    async def cancel(self) -> None:
        if self.is_running:
            self.cancel_button.disable()
            await cancel_gracefully(self.task)

    def stop(self) -> None:
        """The page is gone: stop its run now."""
        stop_now(self.task)

    def _set_running(self, running: bool) -> None:
        self.run_button.set_enabled(not running)
        self.cancel_button.set_enabled(running)
        self.spinner.set_visibility(running)

    def _show_result(self, task: Task) -> None:
        self.output.end_stream()
        if task.status == TaskStatus.COMPLETED:
            self.output.show_output(task.output, fields=names_its_output(self.workflow))
        elif task.status == TaskStatus.FAILED and task.error is not None:
            self._show_failure(task.error)
        if task.status != TaskStatus.FAILED or task.context.results:
            self.output.show_stats(run_stats(task.context.results, task.finish_reason))

    def _show_failure(self, error: ModelComposeError) -> None:
        self.output.show_error(str(error))
        if isinstance(error, InputError) and error.name:
            name = self.form.field_named(error.name)
            if name is not None:
                self.form.show_errors({name: str(error)})
