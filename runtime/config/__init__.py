"""Compose files: the schema (msgspec Structs) and the loader."""

from runtime.config.loader import LoadedConfig, load_config
from runtime.config.schema import (
    ChatCompletionAction,
    ComposeConfig,
    JobConfig,
    ModelComponent,
    TextGenerationAction,
    WorkflowConfig,
)

__all__ = [
    "ChatCompletionAction",
    "ComposeConfig",
    "JobConfig",
    "LoadedConfig",
    "ModelComponent",
    "TextGenerationAction",
    "WorkflowConfig",
    "load_config",
]
