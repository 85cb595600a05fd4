"""Runs a workflow: renders inputs, runs its jobs in `depends_on` order
(independent jobs and repeats concurrently), renders outputs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.binding import render
from runtime.config.schema import ComposeConfig, JobConfig, WorkflowComponent, WorkflowConfig
from runtime.config.subworkflows import is_local
from runtime.errors import InputError, NotFoundError
from runtime.workflow.context import RunContext
from runtime.workflow.inputs import output_streams, workflow_jobs
from runtime.workflow.prepared import PreparedRun, find_workflow, job_input, prepare_run, run_scope
from runtime.workflow.remote import RemoteWorkflows


@dataclass(frozen=True)
class ActionResult:
    """What an action gives: its output (`${output}`: a reasoning model's
    answer), and its reasoning (`${reasoning}`: None when the model wrote
    none; a list, like the output, for several sequences)."""

    output: Any
    reasoning: Any = None


class ComponentRunner(Protocol):
    """What the runner needs from the component layer (runtime.tasks)."""

    async def run_action(
        self, component_id: str, action_id: str | None, input: Any, context: RunContext, job_id: str
    ) -> ActionResult: ...


class WorkflowRunner:
    def __init__(
        self,
        config: ComposeConfig,
        components: ComponentRunner,
        remote: RemoteWorkflows | None = None,
    ) -> None:
        self.config = config
        self.components = components
        # Runs the workflows a workflow component names that this file does
        # not define (the queue sets it when `controller.queue` is set).
        self.remote = remote

    def workflow(self, workflow_id: str | None) -> WorkflowConfig:
        return find_workflow(self.config, workflow_id)

    async def run(
        self, workflow_id: str | None, input: Any, context: RunContext | None = None
    ) -> Any:
        """Prepare and execute in one call (the CLI, tests)."""
        return await self.execute(prepare_run(self.config, workflow_id, input), context)

    async def execute(self, run: PreparedRun, context: RunContext | None = None) -> Any:
        """Run a prepared run's jobs and render its output."""
        context = context or RunContext()
        if run.remote:
            return (await self._run_remote(run.workflow.id, run.input, context, run.streams)).output
        if run.conversation is not None:
            context.messages = run.conversation
        workflow = run.workflow
        scope = run_scope(workflow, run.input)
        last = await self._run_jobs(workflow, scope, context)
        if workflow.output is not None:
            return render(
                workflow.output, {**scope, "output": last.output, "reasoning": last.reasoning}
            )
        return last.output

    async def _run_jobs(
        self, workflow: WorkflowConfig, scope: dict[str, Any], context: RunContext
    ) -> ActionResult:
        """Run the jobs; the result of the last (a mapping by job id of each
        output and reasoning when several jobs end the workflow)."""
        jobs = workflow_jobs(self.config, workflow)
        done: dict[str, asyncio.Future[Any]] = {}
        for job in jobs:
            # These futures only tell dependents that a job ended; its error
            # travels through its task. Marking it retrieved here keeps a run
            # cancelled mid-cleanup (twice, say) from logging "Future exception
            # was never retrieved" for a future nobody depends on.
            done[job.id] = asyncio.get_running_loop().create_future()
            done[job.id].add_done_callback(_retrieve)

        async def run_when_ready(job: JobConfig) -> None:
            for dependency in job.depends_on:
                await done[dependency]
            try:
                output = await self._run_job(job, scope, context)
            except BaseException as error:
                # A failing sibling may already have cancelled this future.
                if not done[job.id].done():
                    done[job.id].set_exception(error)
                raise
            scope["jobs"][job.id] = {"output": output.output, "reasoning": output.reasoning}
            done[job.id].set_result(output)

        tasks = [asyncio.create_task(run_when_ready(job), name=f"job:{job.id}") for job in jobs]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            context.cancel.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        # The workflow's result is its last job that nothing depends on; with
        # several such jobs, a mapping of their outputs by job id.
        needed = {d for job in jobs for d in job.depends_on}
        terminal = [job.id for job in jobs if job.id not in needed]
        ends = [done[job_id].result() for job_id in terminal]
        if len(ends) == 1:
            return ends[0]
        return ActionResult(
            {job_id: end.output for job_id, end in zip(terminal, ends, strict=True)},
            {job_id: end.reasoning for job_id, end in zip(terminal, ends, strict=True)},
        )

    async def _run_job(
        self, job: JobConfig, scope: dict[str, Any], context: RunContext
    ) -> ActionResult:
        if job.repeat_count is None:
            return await self._run_once(job, scope, context, index=None)
        count = render(job.repeat_count, scope)
        if isinstance(count, str) and count.strip().lstrip("-").isdigit():
            count = int(count)
        if isinstance(count, float) and count.is_integer():
            count = int(count)  # `${input.n as number}` renders 3.0
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InputError(
                f"job '{job.id}': repeat_count must be a whole number of 0 or more, got {count!r}"
            )
        repeats = [
            asyncio.ensure_future(self._run_once(job, scope, context, index=i))
            for i in range(count)
        ]
        try:
            results = list(await asyncio.gather(*repeats))
            return ActionResult([r.output for r in results], [r.reasoning for r in results])
        except BaseException:
            # gather does not cancel the other repeats when one fails: they
            # would run on, unobserved, after the run has already failed.
            for repeat in repeats:
                repeat.cancel()
            await asyncio.gather(*repeats, return_exceptions=True)
            raise

    async def _run_once(
        self, job: JobConfig, scope: dict[str, Any], context: RunContext, index: int | None
    ) -> ActionResult:
        job_scope = dict(scope) if index is None else {**scope, "index": index}
        component_id = self.config.job_component(job)
        if component_id is None:
            raise InputError(f"job '{job.id}' has no component to run")
        try:
            component = self.config.component(component_id)
        except KeyError:
            component = None  # the component layer reports an unknown id
        if isinstance(component, WorkflowComponent):
            result = await self._run_workflow_action(
                component, job.action, job_input(job, job_scope), context, job.id
            )
        else:
            result = await self.components.run_action(
                component_id, job.action, job_input(job, job_scope), context, job.id
            )
        if job.output is None:
            return result
        output = render(
            job.output,
            {
                **job_scope,
                "output": result.output,
                "result": result.output,
                "reasoning": result.reasoning,
            },
        )
        return ActionResult(output, result.reasoning)

    async def _run_workflow_action(
        self,
        component: WorkflowComponent,
        action_id: str | None,
        input: Any,
        context: RunContext,
        job_id: str,
    ) -> ActionResult:
        """A workflow component's action: its `input` rendered against the
        job's input (as a model action's fields are), the workflow run (here,
        in the same context, so its deltas stream and a cancel reaches it; or
        remotely), and its `output` rendered with `${output}` that result."""
        action = component.action(action_id)
        scope: dict[str, Any] = {"input": input}
        sub_input = input if action.input is None else render(action.input, scope)
        if is_local(self.config, action.workflow):
            try:
                run = prepare_run(self.config, action.workflow, sub_input)
            except InputError as error:
                raise InputError(f"workflow '{action.workflow}': {error}", error.name) from None
            result = ActionResult(await self.execute(run, context))
        elif self.remote is not None and self.remote.has(action.workflow):
            if not isinstance(sub_input, dict):
                raise InputError(
                    f"the input of workflow '{action.workflow}' must be a mapping, "
                    f"got {type(sub_input).__name__}"
                )
            streams = output_streams(action.output)
            result = await self._run_remote(action.workflow, sub_input, context, streams, job_id)
        else:
            known = ", ".join(f"'{w.id}'" for w in self.config.workflows)
            raise NotFoundError(
                f"component '{component.id}' runs unknown workflow '{action.workflow}' "
                f"(known: {known}), and no queue dispatches it to a worker"
            )
        if action.output is None:
            return result
        results = {"output": result.output, "result": result.output, "reasoning": result.reasoning}
        output = render(action.output, {**scope, **results})
        return ActionResult(output, result.reasoning)

    async def _run_remote(
        self,
        workflow_id: str,
        input: dict[str, Any],
        context: RunContext,
        streams: bool,
        job_id: str | None = None,
    ) -> ActionResult:
        """A workflow this file does not define, on `remote` (a queue's
        workers); its deltas come under `job_id` (default: the workflow's id)."""
        if self.remote is None:
            raise NotFoundError(f"unknown workflow '{workflow_id}', and no queue to send it to")
        return await self.remote.run(workflow_id, input, context, job_id or workflow_id, streams)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
