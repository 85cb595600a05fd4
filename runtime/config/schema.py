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


class HttpServerAdapter(Base, tag_field="type", tag="http-server"):
    host: str = "127.0.0.1"
    port: int = 8080
    base_path: str = ""
    # Web pages (by origin) that may call the API; None: pages on this
    # machine only (runtime.server.cors).
    origins: str | list[str] | None = None
    # Host header names answered besides loopback and `host`
    # (runtime.server.hosts); on a non-loopback host, none: any.
    allowed_hosts: list[str] = msgspec.field(default_factory=list)


class RedisConnection(Base):
    """Where Redis is, as model-compose writes it: a `url`, or host/port/..."""

    driver: Literal["redis"] = "redis"
    # The prefix of every key, list and channel; front and workers must agree.
    name: str = "controller-queue"
    url: str | None = None
    host: str = "localhost"
    port: int = 6379
    secure: bool = False
    database: int = 0
    password: str | None = None


class QueueConfig(RedisConnection):
    """`controller.queue`: this file's server is a front controller; runs of
    workflows it does not define go to workers through Redis."""

    # How long to wait for a result (0: for ever).
    timeout: str | int | float = "0s"
    # Binary inputs are not carried (text only); kept so model-compose files load.
    max_blob_size: str | int | None = "50M"
    blob_ttl: str | int | float | None = None
    # Ours: runs waiting in Redis beyond this are refused (HTTP 503, Retry-After).
    max_queue: int = 64


class QueueSubscriberAdapter(RedisConnection, tag_field="type", tag="queue-subscriber"):
    """A worker: takes runs of its workflows from Redis and answers there."""

    # How long a result stays readable in Redis (0s: until deleted).
    result_ttl: str | int | float = "1h"
    # Runs taken at once (None: the slots of the file's models, see runtime.queue.worker).
    max_concurrent_count: int | None = None
    worker_id: str | None = None
    # The workflows served (None: every workflow of the file).
    workflows: list[str] | None = None
    workflow: str | None = None
    # How long one wait for a run blocks before looking again.
    pop_timeout: str | int | float = "1s"
    # Ours (runtime.queue.worker): a worker that stops renewing its lease for
    # this long is presumed dead, and another worker puts its runs back in the
    # queue, each at most `max_attempts` times in all, then fails it.
    visibility_timeout: str | int | float = "30s"
    max_attempts: int = 3
    # Ours: a port for GET /metrics (none when not set); loopback unless metrics_host says.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"


Adapter = HttpServerAdapter | QueueSubscriberAdapter


class WebUIConfig(Base):
    # `gradio` is what existing model-compose files say; it means our NiceGUI UI.
    driver: Literal["gradio", "nicegui"] = "nicegui"
    host: str = "127.0.0.1"
    port: int = 8081
    allowed_hosts: list[str] = msgspec.field(default_factory=list)


class ControllerConfig(Base):
    name: str | None = None
    adapters: list[Adapter] = msgspec.field(default_factory=list)
    queue: QueueConfig | None = None
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

    @property
    def http(self) -> HttpServerAdapter | None:
        """The HTTP server's adapter (the first one), if the file has one."""
        return next((a for a in self.adapters if isinstance(a, HttpServerAdapter)), None)

    @property
    def subscriber(self) -> QueueSubscriberAdapter | None:
        """The queue-subscriber adapter: this process is a queue worker."""
        return next((a for a in self.adapters if isinstance(a, QueueSubscriberAdapter)), None)


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
        return find_action(self.actions, action_id)


def find_action(actions: list[Any], action_id: str | None) -> Any:
    """The action of `actions` named `action_id`, or the first one when no id
    is given; KeyError when none has that id."""
    if action_id is None or action_id == "__default__":
        return actions[0]
    for action in actions:
        if action.id == action_id:
            return action
    raise KeyError(action_id)


Action = ChatCompletionAction | TextGenerationAction


class ChatCompletionComponent(ModelComponent, tag="chat-completion"):
    actions: list[ChatCompletionAction] = msgspec.field(default_factory=list)


class TextGenerationComponent(ModelComponent, tag="text-generation"):
    actions: list[TextGenerationAction] = msgspec.field(default_factory=list)


# A model component's `task` picks its Struct (the loader reports a missing
# or unknown task itself, with the file's line).
TaskComponent = ChatCompletionComponent | TextGenerationComponent


class WorkflowAction(Base, kw_only=True):
    id: str = "__default__"
    # The workflow it runs: one of this file's (in-process), else, with
    # `controller.queue` set, one a queue worker runs.
    workflow: str
    # The sub-workflow's input, rendered against the job's input (`${input}`);
    # not written: the job's input as it is.
    input: Any = None
    # The action's result, rendered with `${output}` (and `${result}`) the
    # sub-workflow's output; not written: that output as it is.
    output: Any = None


class WorkflowComponent(Base, kw_only=True):
    """Runs another workflow by id (model-compose's `type: workflow`); it has
    no model, so nothing that loads or lists models sees it."""

    id: str = "__component__"
    type: Literal["workflow"]
    title: str | None = None
    description: str | None = None
    actions: list[WorkflowAction] = msgspec.field(default_factory=list)

    def action(self, action_id: str | None) -> WorkflowAction:
        """The named action, or the only/first one when no id is given."""
        action: WorkflowAction = find_action(self.actions, action_id)
        return action


# `type` tells a workflow component from a model one (the loader picks the
# Struct: msgspec cannot tag one union on both `type` and `task`).
Component = ChatCompletionComponent | TextGenerationComponent | WorkflowComponent


# -- workflows -----------------------------------------------------------------


class JobConfig(Base):
    id: str = "__job__"
    # `component` is model-compose's newer name for the same job.
    type: Literal["action", "component"] = "action"
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

    @property
    def model_components(self) -> list[ModelComponent]:
        """The components that run a model: what loads, preloads and lists
        models looks at these (a workflow component has none)."""
        return [c for c in self.components if isinstance(c, ModelComponent)]

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
