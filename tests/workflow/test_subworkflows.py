"""Workflow components at run time: a workflow of the file runs in-process
in the same context; any other goes to the runner's RemoteWorkflows; and the
front workflow's input schema and streaming are inferred through them."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from runtime.binding import InputField
from runtime.config import ComposeConfig, load_config, subworkflows
from runtime.config.schema import ControllerConfig
from runtime.errors import InputError, NotFoundError
from runtime.workflow import RunContext, WorkflowRunner, workflow_inputs
from runtime.workflow.inputs import OutputField, workflow_outputs, workflow_streams
from runtime.workflow.runner import ActionResult

EXAMPLES = Path(__file__).parents[2] / "examples"
QUEUE_IN_SCHEMA = "queue" in {f.name for f in msgspec.structs.fields(ControllerConfig)}

LOCAL = """
workflows:
  - id: front
    default: true
    job:
      type: component
      component: relay
      output: {{answer: "${{output.text}}"}}
  - id: back
    job:
      component: writer
      output: {{text: "${{output}}"}}
components:
  - id: relay
    type: workflow
    action:
      workflow: back
      {input}
      {output}
  - id: writer
    type: model
    task: text-generation
    model: ./unused.gguf
    prompt: ${{input.prompt}}
    streaming: {streaming}
"""


INPUT = """input:
        prompt: ${input.question as text}
        shout: ${input.loud as boolean | false}"""


def local(
    output: str = "output: {text: '${output.text}!'}", input: str = INPUT, streaming: bool = False
) -> str:
    """Workflow `front` runs `back` (which runs the model) through `relay`."""
    return LOCAL.format(output=output, input=input, streaming=str(streaming).lower())


@dataclass
class FakeRemote:
    """A RemoteWorkflows double: records each run and answers `answer`."""

    answer: Any = None
    known: set[str] = field(default_factory=lambda: {"echo"})
    runs: list[dict[str, Any]] = field(default_factory=list)

    def has(self, workflow_id: str) -> bool:
        return workflow_id in self.known

    async def run(
        self,
        workflow_id: str,
        input: dict[str, Any],
        context: RunContext,
        job_id: str,
        streams: bool,
    ) -> ActionResult:
        self.runs.append(
            {"workflow": workflow_id, "input": input, "job": job_id, "streams": streams}
        )
        await context.delta(job_id, "remote text", streams)
        return ActionResult(self.answer if self.answer is not None else {"text": input["text"]})


def _answer(value: Any) -> Any:
    async def done() -> Any:
        return value

    return done()


def _front_of(config):
    return config, config.workflow(None)


class _Deltas:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def on_delta(self, job_id, text, streaming, reasoning=False, logprobs=()):
        self.texts.append(text)

    def on_result(self, job_id, result):
        pass


def load_front(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ComposeConfig:
    """examples/queue/<name> as its queue-enabled front loads it: unchanged
    once the schema has `controller.queue`; until then without the queue
    block, and with the check seeing a queue all the same."""
    path = EXAMPLES / "queue" / name / "model-compose.yml"
    if not QUEUE_IN_SCHEMA:
        text = re.sub(r"\n  queue:\n(    .*\n)+", "\n", path.read_text())
        path = tmp_path / "model-compose.yml"
        path.write_text(text)
        monkeypatch.setattr(subworkflows, "dispatches_to_workers", lambda config: True)
    return load_config([path]).config


async def test_a_local_workflow_gets_the_rendered_input_and_the_output_is_rendered(compose, fake):
    config = compose(local())
    fake.handlers["__job__"] = lambda input: _answer(f"about {input['prompt']}")
    output = await WorkflowRunner(config, fake).run(None, {"question": "cats"})
    assert fake.inputs("__job__") == [{"prompt": "cats", "shout": False}]
    assert output == {"answer": "about cats!"}


async def test_without_input_and_output_the_input_and_the_result_pass_through(compose, fake):
    config = compose(local(output="", input=""))
    fake.handlers["__job__"] = lambda input: _answer(input)
    output = await WorkflowRunner(config, fake).run("front", {"prompt": "p", "x": 1})
    assert fake.inputs("__job__") == [{"prompt": "p", "x": 1}]
    assert output == {"answer": {"prompt": "p", "x": 1}}


async def test_a_local_workflow_runs_in_the_callers_context(compose, fake):
    config = compose(local())
    context = RunContext()
    await WorkflowRunner(config, fake).run("front", {"question": "q"}, context)
    assert fake.contexts == [context]


async def test_cancelling_the_front_run_cancels_the_local_workflows_job(compose, fake):
    config = compose(local())
    started = asyncio.Event()

    async def run_forever(input):
        started.set()
        await asyncio.Event().wait()

    fake.handlers["__job__"] = run_forever
    context = RunContext()
    run = asyncio.create_task(WorkflowRunner(config, fake).run("front", {"question": "q"}, context))
    await asyncio.wait_for(started.wait(), 5)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert [call.cancelled for call in fake.calls] == [True]


async def test_a_missing_input_of_the_local_workflow_names_it(compose, fake):
    config = compose(local().replace("prompt: ${input.question as text}", "other: 1"))
    with pytest.raises(InputError, match="workflow 'back': missing required input 'prompt'"):
        await WorkflowRunner(config, fake).run("front", {})


async def test_a_remote_workflow_gets_the_rendered_input_and_its_output_is_rendered(
    tmp_path, monkeypatch, fake
):
    config = load_front("front", tmp_path, monkeypatch)
    remote = FakeRemote()
    events = _Deltas()
    output = await WorkflowRunner(config, fake, remote).run(
        None, {"text": "hi"}, RunContext(listener=events)
    )
    assert output == {"text": "hi"}
    assert remote.runs == [
        {"workflow": "echo", "input": {"text": "hi"}, "job": "__job__", "streams": False}
    ]
    assert events.texts == ["remote text"]
    assert fake.calls == []


async def test_a_remote_stream_output_asks_the_worker_for_deltas(tmp_path, monkeypatch, fake):
    config = load_front("front-stream", tmp_path, monkeypatch)
    remote = FakeRemote(answer="the whole reply", known={"chat"})
    output = await WorkflowRunner(config, fake, remote).run(None, {"prompt": "tell"})
    assert output == "the whole reply"
    assert remote.runs == [
        {"workflow": "chat", "input": {"prompt": "tell"}, "job": "__job__", "streams": True}
    ]


async def test_without_a_remote_hook_a_workflow_the_file_lacks_is_not_found(
    tmp_path, monkeypatch, fake
):
    config = load_front("front", tmp_path, monkeypatch)
    with pytest.raises(NotFoundError, match="unknown workflow 'echo'"):
        await WorkflowRunner(config, fake).run(None, {"text": "hi"})
    with pytest.raises(NotFoundError, match="unknown workflow 'echo'"):
        await WorkflowRunner(config, fake, FakeRemote(known=set())).run(None, {"text": "hi"})


def test_the_front_workflow_asks_for_what_its_action_input_reads(tmp_path, monkeypatch, compose):
    config = load_front("front", tmp_path, monkeypatch)
    assert workflow_inputs(config, config.workflows[0]) == [
        InputField("text", "text", None, None, True)
    ]
    config = compose(local())
    assert [f.name for f in workflow_inputs(config, config.workflow("front"))] == [
        "question",
        "loud",
    ]


def test_without_an_input_mapping_the_local_workflows_inputs_are_the_fronts(compose):
    config = compose(local(input=""))
    assert [f.name for f in workflow_inputs(config, config.workflow("front"))] == ["prompt"]


def test_a_front_streams_when_its_output_is_a_stream_or_its_local_workflow_streams(
    tmp_path, monkeypatch, compose
):
    assert workflow_streams(*_front_of(load_front("front-stream", tmp_path, monkeypatch)))
    assert not workflow_streams(*_front_of(load_front("front", tmp_path, monkeypatch)))
    assert not workflow_streams(*_front_of(compose(local())))
    assert workflow_streams(*_front_of(compose(local(streaming=True))))


def test_the_fronts_output_fields_are_its_actions_or_else_its_local_workflows(
    tmp_path, monkeypatch, compose
):
    config = load_front("front", tmp_path, monkeypatch)
    assert workflow_outputs(config, config.workflow(None)) == [OutputField("text", "text")]
    config = compose(local(output="").replace('      output: {answer: "${output.text}"}\n', ""))
    assert workflow_outputs(config, config.workflow("front")) == [OutputField("text", "text")]
