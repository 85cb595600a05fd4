"""Compose files: the schema (msgspec Structs) and the loader."""

from runtime.config.loader import LoadedConfig, load_config
from runtime.config.schema import (
    ChatCompletionAction,
    ChatCompletionComponent,
    Component,
    ComposeConfig,
    JobConfig,
    ModelComponent,
    TextGenerationAction,
    TextGenerationComponent,
    WorkflowAction,
    WorkflowComponent,
    WorkflowConfig,
)

__all__ = [
    "ChatCompletionAction",
    "ChatCompletionComponent",
    "Component",
    "ComposeConfig",
    "JobConfig",
    "LoadedConfig",
    "ModelComponent",
    "TextGenerationAction",
    "TextGenerationComponent",
    "WorkflowAction",
    "WorkflowComponent",
    "WorkflowConfig",
    "load_config",
]
