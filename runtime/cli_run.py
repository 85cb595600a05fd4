"""`model-compose run`: one workflow run in this process, its output on stdout."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import click

from runtime.cli_options import ComposeFiles, file_options
from runtime.config import LoadedConfig
from runtime.engine.logprobs import TokenLogprob
from runtime.engine.types import FinishReason, GenerationResult
from runtime.errors import UserError
from runtime.workflow import RunContext


def parse_input(value: str | None) -> Any:
    if value is None:
        return {}
    source = "--input"
    if value.startswith("@"):
        path = Path(value[1:])
        source = str(path)
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as error:
            raise UserError(f"cannot read the input file {path}: {error.strerror}") from None
    try:
        data = json.loads(value)
    except json.JSONDecodeError as error:
        raise UserError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise UserError(f"{source} must be a JSON object, got {type(data).__name__}")
    return data


def format_output(output: Any) -> str:
    if isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, indent=2)


class TerminalStream:
    """Prints streamed text as it comes, when the action streams and stdout is
    a terminal (piped output stays clean, machine-readable). The answer goes
    to stdout; a reasoning model's reasoning goes to stderr, dimmed when that
    is a terminal: the user watches the model think, and stdout holds the
    answer only."""

    def __init__(self, enabled: bool, dim: bool = False) -> None:
        self.enabled = enabled
        self.dim = dim
        self.text = ""  # the answer shown so far
        self._reasoning_line = False  # reasoning was shown last: its line is open

    def on_delta(
        self,
        job_id: str,
        text: str,
        streaming: bool,
        reasoning: bool = False,
        logprobs: tuple[TokenLogprob, ...] = (),
    ) -> None:
        if not (self.enabled and streaming):
            return
        if reasoning:
            if not self._reasoning_line and self.text and not self.text.endswith("\n"):
                _write(sys.stderr, "\n")  # another job thinks after an answer's last line
            self._reasoning_line = True
            _write(sys.stderr, click.style(text, dim=True) if self.dim else text)
            return
        self._end_reasoning()
        self.text += text
        _write(sys.stdout, text)

    def on_result(self, job_id: str, result: GenerationResult) -> None:
        self._end_reasoning()
        # Say why an answer was cut short, when the limit was not the user's own.
        if result.finish_reason == FinishReason.LENGTH and result.detail:
            click.echo(f"{chr(10) if self.text else ''}note: {result.detail}", err=True)

    def _end_reasoning(self) -> None:
        """The answer starts on a line of its own, not after the reasoning."""
        if self._reasoning_line:
            _write(sys.stderr, "\n")
            self._reasoning_line = False


def _write(stream: TextIO, text: str) -> None:
    stream.write(text)
    stream.flush()


async def _run(
    loaded: LoadedConfig, workflow_id: str | None, input: Any, stream: TerminalStream
) -> Any:
    from runtime.engine import ModelPool
    from runtime.tasks.components import ModelComponents
    from runtime.workflow import WorkflowRunner

    pool = ModelPool()
    show_status = sys.stderr.isatty()

    def status(message: str) -> None:
        if show_status:
            click.echo(f"{message}…", err=True)

    queue = loaded.config.controller.queue
    front = None
    try:
        components = ModelComponents(loaded.config, pool, status)
        runner = WorkflowRunner(loaded.config, components)
        if queue is not None:
            from runtime.queue.front import QueueFront

            # A front's `type: workflow` components run on its queue's workers.
            front = runner.remote = QueueFront(queue)
        # An unknown workflow or a missing input fails before any model loads:
        # components load their model when a job first runs on them.
        return await runner.run(workflow_id, input, RunContext(listener=stream))
    finally:
        if front is not None:
            await front.close()
        await pool.close()


@click.command()
@click.argument("workflow_id", required=False)
@click.option(
    "-i",
    "--input",
    "input_",
    metavar="JSON|@FILE",
    help="The workflow input: a JSON object, or @file.json.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the output to FILE.")
@file_options
def run(
    workflow_id: str | None, input_: str | None, output: str | None, compose: ComposeFiles
) -> None:
    """Run a workflow once, in this process, and print its output."""
    loaded = compose.load()
    data = parse_input(input_)
    stream = TerminalStream(sys.stdout.isatty() and output is None, dim=sys.stderr.isatty())
    result = asyncio.run(_run(loaded, workflow_id, data, stream))
    text = format_output(result)
    if output is not None:
        Path(output).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    elif stream.text and stream.text.strip() in _strings(result):
        click.echo()  # the answer is already on screen
    else:
        click.echo(text)


def _strings(value: Any) -> list[str]:
    """The string values of an output, to tell whether streaming showed it all."""
    if isinstance(value, str):
        return [value.strip()]
    if isinstance(value, dict) and len(value) == 1:
        return _strings(next(iter(value.values())))
    return []
