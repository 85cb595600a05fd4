"""Workflows that run somewhere else: what a workflow component's action asks
of the code that dispatches them (the queue, `controller.queue`), which sets
it on the runner (`WorkflowRunner.remote`; a server's is `service.runner`).
The runner asks it only for workflows the file does not define."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from runtime.workflow.context import RunContext

if TYPE_CHECKING:
    from runtime.workflow.runner import ActionResult


class RemoteWorkflows(Protocol):
    def has(self, workflow_id: str) -> bool:
        """Whether the workflow can be run remotely (the queue: any workflow,
        since only a worker knows which it runs)."""

    async def run(
        self,
        workflow_id: str,
        input: dict[str, Any],
        context: RunContext,
        job_id: str,
        streams: bool,
    ) -> ActionResult:
        """Run the workflow elsewhere and give its output. Text deltas go to
        `context.delta(job_id, ...)` as they arrive; `streams` says the caller
        wants them (the action's output is `as stream`). Generation results
        the worker reports may go to `context.finished` (the run's usage).
        Cancelling `context.cancel`, or the awaiting task, should cancel the
        remote run."""
        ...
