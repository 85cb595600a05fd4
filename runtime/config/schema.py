"""msgspec Structs for every section of a compose file.

These describe the *normalised* file: the loader has already expanded the
singular shorthands (`component` → `components`, ...), so every entity list is
plural here. Fields that a binding may fill at run time (`${input.n}`) accept
`str` alongside their real type; the runtime casts them after rendering.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Every config section rejects keys it does not know."""


# -- controller ---------------------------------------------------------------


class HttpServerAdapter(Base):
    type: Literal["http-server"] = "http-server"
    host: str = "127.0.0.1"
    port: int = 8080
    base_path: str = ""
    # Web pages (by origin) that may call the API; None: pages on this
    # machine only (runtime.server.cors).
    origins: str | list[str] | None = None
    # Host header names answered besides loopback and `host`
    # (runtime.server.hosts); on a non-loopback host, none: any.
    allowed_hosts: list[str] = msgspec.field(default_factory=list)


class WebUIConfig(Base):
    # `gradio` is what existing model-compose files say; it means our NiceGUI UI.
    driver: Literal["gradio", "nicegui"] = "nicegui"
    host: str = "127.0.0.1"
    port: int = 8081
    allowed_hosts: list[str] = msgspec.field(default_factory=list)


class ControllerConfig(Base):
    name: str | None = None
    adapters: list[HttpServerAdapter] = msgspec.field(default_factory=list)
    webui: WebUIConfig | None = None
    max_concurrent_count: int = 0
    shutdown_timeout: str | int | float = "30s"
    # Required as `Authorization: Bearer <key>` on every route but /health.
    api_key: str | None = None
    # How long a finished task can still be polled, and how many tasks are kept.
    task_retention: str | int | float = "10m"
    max_tasks: int = 1000
    max_request_size: str | int = "1MB"
    # A stream whose client reads nothing for this long is dropped and its
    # run cancelled (0: never).
    write_timeout: str | int | float = "30s"


# -- components -----------------------------------------------------------------


class ModelSource(Base):
    provider: Literal["huggingface", "local"] = "huggingface"
    repository: str | None = None
    filename: str | None = None
    revision: str | None = None
    path: str | None = None
    format: Literal["gguf"] | None = None


# `context_length: auto`: the largest context that fits in memory, at most the
# model's trained context (see convert.preflight).
ContextLength = int | Literal["auto"] | None

# How long a model stays loaded without requests, as Ollama's `keep_alive`:
# a duration ("30s", "5m", "1h") or seconds; null or -1: for ever (the
# default); 0: unloaded as soon as it is idle (see config.units.parse_keep_alive).
KeepAlive = str | int | float | None

# The KV cache's element type (engine.spec.KV_CACHE_TYPES, llama-server's list).
KVCacheType = Literal["f16", "f32", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"] | None


class MemoryOptions(Base):
    """How a model uses memory (engine.llama.residency, engine.placement):
    on the component, or under `options:`; the component's key wins."""

    # The KV cache's type: f16 (default), q8_0 halves it, q4_0 quarters it.
    kv_cache_type: KVCacheType = None
    # Tokens of KV cache all slots share (fewer than parallel x context).
    kv_cache_size: int | None = None
    # Memory-map the file (None: decided from the file's filesystem).
    use_mmap: bool | None = None
    # Lock the weights in RAM (never swapped out).
    use_mlock: bool | None = None


class LlamaCppOptions(MemoryOptions):
    """llama.cpp load settings, as MC's schema writes them under `options:`."""

    n_ctx: ContextLength = None
    context_length: ContextLength = None
    n_batch: int | None = None
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    verbose: bool = False
    keep_alive: KeepAlive = None


class ChatCompletionAction(Base):
    id: str = "__default__"
    messages: list[Any] | str | None = None
    tools: Any = None
    max_output_length: int | str | None = None
    streaming: bool | str = False
    stop_sequences: list[str] | str | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    # Reasoning models: these override the component's (see ModelComponent).
    thinking: bool | str | None = None
    reasoning_budget: int | str | None = None
    chat_template_kwargs: dict[str, Any] | str | None = None
    # A JSON schema the answer follows (grammar-constrained); the result is
    # the parsed JSON. A mapping, or a `${...}` binding that gives one.
    output_schema: dict[str, Any] | str | None = None


class TextGenerationAction(Base):
    id: str = "__default__"
    prompt: Any = None
    # MC's current release rejects `text`, but both seed documents write it.
    text: Any = None
    max_output_length: int | str | None = None
    stop_sequences: list[str] | str | None = None
    num_return_sequences: int | str = 1
    return_full_text: bool | str = True
    streaming: bool | str = False
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    reasoning_budget: int | str | None = None
    # As on chat-completion; the result is the parsed JSON of the continuation.
    output_schema: dict[str, Any] | str | None = None


Device = Literal["auto", "cpu", "cuda", "metal"]


class ModelComponent(MemoryOptions, kw_only=True, tag_field="task"):
    """What every model component has; `task` (the tag) picks the Struct, and
    with it the type of its actions."""

    id: str = "__component__"
    type: Literal["model"] = "model"
    title: str | None = None
    description: str | None = None
    model: str | ModelSource
    driver: Literal["huggingface", "llamacpp"] = "huggingface"
    device: Device = "auto"
    max_concurrent_count: int = 0
    preload: bool = True
    context_length: ContextLength = None
    n_ctx: ContextLength = None
    n_batch: int | None = None
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    # Sequences decoded together in one batch (continuous batching); 1 runs
    # requests one at a time. Default: 4 on CPU.
    parallel: int | None = None
    # Requests that may wait for a free slot; more are refused (HTTP 503).
    max_queue: int = 64
    # Unload the model after this long without requests; the next one loads it again.
    keep_alive: KeepAlive = None
    options: LlamaCppOptions | None = None
    # Reasoning models (SmolLM3, Qwen3...), for every action of the component
    # and every /v1 request on it; an action or a request may say otherwise.
    # `thinking` is the chat template's `enable_thinking` (None: the
    # template's default); `chat_template_kwargs` are any other template
    # variables; `reasoning_budget` caps the tokens of a reasoning block.
    thinking: bool | None = None
    reasoning_budget: int | None = None
    chat_template_kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    # Each task's Struct narrows the type of its actions.
    actions: list[Any] = msgspec.field(default_factory=list)

    @property
    def task(self) -> str:
        return str(self.__struct_config__.tag)

    @property
    def model_name(self) -> str:
        """The model as users name it (the CLI, /v1/models, the Web UI): the
        string the file gives, or what a mapping's provider loads (a local
        path, else a Hub repository: convert.reference's own rule), so the
        name is always the model the component actually runs."""
        model = self.model
        if isinstance(model, str):
            return model
        first, second = (
            (model.path, model.repository)
            if model.provider == "local"
            else (model.repository, model.path)
        )
        return first or second or model.provider

    def action(self, action_id: str | None) -> Action:
        """The named action, or the only/first one when no id is given."""
        if action_id is None or action_id == "__default__":
            return self.actions[0]
        for action in self.actions:
            if action.id == action_id:
                return action
        raise KeyError(action_id)


Action = ChatCompletionAction | TextGenerationAction


class ChatCompletionComponent(ModelComponent, tag="chat-completion"):
    actions: list[ChatCompletionAction] = msgspec.field(default_factory=list)


class TextGenerationComponent(ModelComponent, tag="text-generation"):
    actions: list[TextGenerationAction] = msgspec.field(default_factory=list)


# A component's `task` picks its Struct (the loader reports a missing or
# unknown task itself, with the file's line).
Component = ChatCompletionComponent | TextGenerationComponent


# -- workflows -----------------------------------------------------------------


class JobConfig(Base):
    id: str = "__job__"
    type: Literal["action"] = "action"
    # An inline component mapping is lifted into `components` by the loader.
    component: str | None = None
    action: str | None = None
    input: Any = None
    output: Any = None
    depends_on: list[str] = msgspec.field(default_factory=list)
    # None (not written) runs once and gives the output itself; a number gives a list.
    repeat_count: int | str | None = None


class WorkflowConfig(Base):
    id: str = "__workflow__"
    title: str | None = None
    description: str | None = None
    default: bool = False
    # The seeds' role-based workflows write an input mapping on the workflow:
    # it is rendered against the run's input before the jobs run.
    input: Any = None
    output: Any = None
    jobs: list[JobConfig] = msgspec.field(default_factory=list)


class ComposeConfig(Base):
    controller: ControllerConfig = msgspec.field(default_factory=ControllerConfig)
    components: list[Component] = msgspec.field(default_factory=list)
    workflows: list[WorkflowConfig] = msgspec.field(default_factory=list)
    # Where relative model paths are resolved from: the first compose file's folder.
    base_dir: str = "."

    def workflow(self, workflow_id: str | None) -> WorkflowConfig:
        """The named workflow; `None`/`__default__` is the only or default one."""
        if workflow_id in (None, "__default__"):
            defaults = [w for w in self.workflows if w.default]
            if defaults:
                return defaults[0]
            return self.workflows[0]
        for workflow in self.workflows:
            if workflow.id == workflow_id:
                return workflow
        raise KeyError(workflow_id)

    def component(self, component_id: str) -> Component:
        for component in self.components:
            if component.id == component_id:
                return component
        raise KeyError(component_id)

    def job_component(self, job: JobConfig) -> str | None:
        """The id of the component a job runs: its own, or the first one
        (a file with one component need not name it)."""
        if job.component is not None:
            return job.component
        return self.components[0].id if self.components else None
