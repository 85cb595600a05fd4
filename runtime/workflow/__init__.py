"""Running workflows: jobs, dependencies, repeats, input schema."""

from runtime.workflow.context import RunContext, RunListener
from runtime.workflow.inputs import check_required_inputs, workflow_inputs
from runtime.workflow.prepared import PreparedRun
from runtime.workflow.remote import RemoteWorkflows
from runtime.workflow.runner import ComponentRunner, WorkflowRunner

__all__ = [
    "ComponentRunner",
    "PreparedRun",
    "RemoteWorkflows",
    "RunContext",
    "RunListener",
    "WorkflowRunner",
    "check_required_inputs",
    "workflow_inputs",
]
