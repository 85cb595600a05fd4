"""The compose file both runs serve: one chat-completion component on the
model, reachable as a workflow (`/api/workflows/runs`) and as an OpenAI model
(`/v1/chat/completions`), greedy, with the answer length as an input."""

from __future__ import annotations

import json
from dataclasses import dataclass

COMPONENT = "chat"
WORKFLOW = "chat"
BASE_PATH = "/api"


@dataclass(frozen=True)
class ServerSettings:
    model: str
    # What a user gets without saying: 4 slots, 64 requests may wait for one.
    parallel: int = 4
    max_queue: int = 64
    n_ctx: int = 1024  # per slot
    n_threads: int | None = None


@dataclass
class RunSettings:
    """What the load and the soak both take: the model, the server's knobs and
    a time limit; each script's own settings extend it."""

    model: str
    parallel: int = 4
    max_queue: int = 64
    n_ctx: int = 1024
    n_threads: int | None = None
    timeout_s: float = 7200.0

    def server(self) -> ServerSettings:
        return ServerSettings(
            model=self.model,
            parallel=self.parallel,
            max_queue=self.max_queue,
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
        )


def compose_file(settings: ServerSettings, port: int) -> str:
    threads = [f"    n_threads: {settings.n_threads}"] if settings.n_threads else []
    lines = [
        "controller:",
        "  adapter:",
        "    type: http-server",
        "    host: 127.0.0.1",
        f"    port: {port}",
        f"    base_path: {BASE_PATH}",
        "workflow:",
        f"  id: {WORKFLOW}",
        "  job:",
        f"    component: {COMPONENT}",
        "    output: ${output}",
        "component:",
        f"  id: {COMPONENT}",
        "  type: model",
        "  task: chat-completion",
        f"  model: {json.dumps(settings.model)}",
        "  device: cpu",
        f"  parallel: {settings.parallel}",
        f"  max_queue: {settings.max_queue}",
        "  options:",
        f"    n_ctx: {settings.n_ctx}",
        *threads,
        "  action:",
        "    messages:",
        "      - role: user",
        "        content: ${input.prompt}",
        "    max_output_length: ${input.max_tokens as integer | 32}",
        "    streaming: true",
        "    params:",
        "      do_sample: false",
    ]
    return "\n".join(lines) + "\n"


def default_model() -> str:
    """The embedded SmolLM2-135M-Instruct GGUF (SystemExit when not installed)."""
    from convert.embedded import embedded_model_path

    path = embedded_model_path()
    if path is None:
        raise SystemExit(
            "the embedded model is not installed (scripts/setup installs it); "
            "or pass --model FILE.gguf"
        )
    return str(path)
