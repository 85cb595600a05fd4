"""The engine contract: what goes in (a request), what comes out (deltas, then a
result). Every entry point talks to an engine only through these types."""

from __future__ import annotations

import enum
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runtime.engine.logprobs import TokenLogprob


class FinishReason(enum.StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(frozen=True)
class SamplingParams:
    """llama.cpp sampling settings. `greedy` wins over everything else.

    None is "unset": the engine fills it with its model's defaults
    (`engine.sampling_defaults`), so what the compose file or the request
    leaves out follows the model's recommendation while what it sets wins.
    """

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    seed: int | None = None  # None: a random seed each time (never filled in)
    greedy: bool = False
    # llama.cpp's Mirostat: 0 off, 1 or 2 its version. It replaces top-k,
    # top-p and min-p, aiming at surprise `mirostat_tau` at rate `mirostat_eta`.
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1


# What an unset sampler means on a model that recommends nothing (llama.cpp's
# own defaults for temperature, top-k, top-p and min-p; no repeat penalty).
DEFAULT_SAMPLING = SamplingParams(
    temperature=0.8, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0
)


@dataclass(frozen=True)
class ToolCall:
    """A function call: in a model's answer, or in an assistant message of
    the history. `arguments` is a JSON object as text (OpenAI's
    `function.arguments`)."""

    name: str
    arguments: str
    id: str = ""


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system, user, assistant, or tool (a function's result)
    content: str
    # An assistant message's function calls (`engine.tool_prompt` renders them).
    tool_calls: tuple[ToolCall, ...] = ()
    # A tool message: the call it answers.
    tool_call_id: str | None = None


class CancelToken:
    """Set from any thread; the engine checks it between tokens, and a
    callback lets it interrupt a long llama_decode (see `engine.llama.abort`)."""

    def __init__(self) -> None:
        self._cancelled = False
        # Why, for people to read (e.g. "the server is shutting down"); None: the client left.
        self.reason: str | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def cancel(self, reason: str | None = None) -> None:
        """Cancel (once: a later call changes nothing) and run the callbacks."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled, self.reason = True, reason
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    @property
    def is_cancelled(self) -> bool:
        return self._cancelled

    def add_callback(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the cancelling thread) when cancelled; at once if already."""
        with self._lock:
            if not self._cancelled:
                self._callbacks.append(callback)
                return
        callback()

    def remove_callback(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


@dataclass
class GenerationRequest:
    """One generation. Exactly one of `prompt` and `messages` is set.

    `max_tokens` None means "as many as fit the context". `max_length` caps
    prompt + output tokens (transformers' `max_length`).

    `chat_template_kwargs` are extra variables for the chat template (e.g.
    SmolLM3's and Qwen3's `enable_thinking`). `reasoning_budget` caps the
    tokens of a reasoning block: past it, the engine closes the block and
    the model goes on to answer (None: no cap; 0: close it at once).
    """

    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    max_length: int | None = None
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    reasoning_budget: int | None = None
    # A GBNF grammar (llama.cpp's format) the answer must follow; None: free text.
    grammar: str | None = None
    # Functions the model may call, as the chat template lists them: OpenAI's
    # function objects ({"name", "description", "parameters"}).
    tools: list[dict[str, Any]] | None = None
    # The answer tokens' log-probabilities, each with this many of the most
    # likely alternatives (0 to 20, see engine.logprobs); None: not computed.
    logprobs: int | None = None
    cancel: CancelToken = field(default_factory=CancelToken)


@dataclass(frozen=True)
class Delta:
    """A piece of generated text, always whole UTF-8 characters."""

    text: str
    num_tokens: int  # completion tokens generated so far
    reasoning: bool = False  # a piece of the reasoning, not of the answer
    # With `GenerationRequest.logprobs`: the entries of the tokens that made this text.
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    # Of the completion tokens, those of the reasoning block (its tags included).
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of(cls, usages: Iterable[Usage]) -> Usage:
        """The usage of several generations together (a run's)."""
        usages = list(usages)
        return cls(
            prompt_tokens=sum(u.prompt_tokens for u in usages),
            cached_tokens=sum(u.cached_tokens for u in usages),
            completion_tokens=sum(u.completion_tokens for u in usages),
            reasoning_tokens=sum(u.reasoning_tokens for u in usages),
        )


@dataclass(frozen=True)
class Timings:
    ttft_s: float = 0.0  # request submitted → first delta
    total_s: float = 0.0
    tokens_per_s: float = 0.0  # completion tokens / decode time


@dataclass(frozen=True)
class GenerationResult:
    text: str  # the answer: never the reasoning
    finish_reason: FinishReason
    usage: Usage = Usage()
    timings: Timings = Timings()
    # Why the generation ended early or was clamped, for people to read,
    # e.g. "max_output_length 32768 clamped to the 3940 tokens left in the context".
    detail: str | None = None
    # The reasoning block's text; None when the model wrote no block.
    reasoning: str | None = None
    # With `GenerationRequest.logprobs`: one entry per answer token (None: not asked).
    logprobs: tuple[TokenLogprob, ...] | None = None


class Generation(Protocol):
    """A running generation: iterate it for deltas, then await `result()`."""

    def __aiter__(self) -> AsyncIterator[Delta]: ...

    async def result(self) -> GenerationResult: ...

    def cancel(self) -> None: ...


class Engine(Protocol):
    """One loaded model serving many requests."""

    # Requests that may wait for a slot before submit() raises QueueFullError.
    max_queue: int

    @property
    def info(self) -> ModelInfo: ...

    def submit(self, request: GenerationRequest) -> Generation: ...

    def stats(self) -> EngineStats: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of an engine's load, read from any thread (it may be a step
    behind the worker): what `GET {base_path}/models` reports."""

    slots: int  # sequences it can decode together (`parallel`)
    busy: int  # slots holding an unfinished request
    waiting: int  # requests queued for a slot
    # KV cells the slots' sequences hold, running or kept for prefix reuse.
    kv_cells_used: int = 0


@dataclass(frozen=True)
class ModelInfo:
    path: str
    name: str
    context_length: int
    trained_context_length: int
    n_gpu_layers: int
    n_threads: int
    n_batch: int
    # The GGUF file's quantization (`general.file_type`), e.g. "Q4_K_M"; None
    # when the file does not say.
    quantization: str | None = None
    # What an unset sampler means on this model, every field but `seed` set
    # (`engine.sampling_defaults.model_sampling`).
    sampling: SamplingParams = DEFAULT_SAMPLING
    # What llama.cpp allocated for it (None for engines that cannot say).
    memory: ModelMemory | None = None


@dataclass(frozen=True)
class ModelMemory:
    """A loaded model's memory, as llama.cpp reports its allocations."""

    weights: int  # bytes of weights in RAM (copies plus tensors served in place)
    weights_on_device: int  # bytes of weights in GPU memory
    kv_cache: int  # bytes of KV cache allocated, every slot's cells
    compute: int  # bytes of compute and output buffers
    kv_cache_type: str  # "f16", "q8_0", ...
    load_mode: str  # "mmap", "read" (no mmap), "+mlock"
    load_reason: str  # why that mode
    kv_cells: int = 0  # cells of KV cache allocated, every slot's (llama.cpp's n_ctx)

    def kv_bytes(self, cells: int) -> int:
        """Bytes of KV cache that `cells` cells take (each cell holds one
        token's K and V in every layer)."""
        return self.kv_cache * cells // self.kv_cells if self.kv_cells else 0


# `ModelSpec.n_ctx` for `context_length: auto`: the largest context that fits
# in memory, at most the trained one (resolved by engine.spec.resolve_spec).
AUTO_CONTEXT = -1


@dataclass(frozen=True)
class ModelSpec:
    """What identifies one loaded model: the file and its load settings.
    None means "choose the default" (see engine.pool)."""

    path: str
    n_ctx: int | None = None
    n_batch: int | None = None
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    device: str = "auto"
    # Sequences decoded together (continuous batching); 1 = one at a time.
    parallel: int = 1
    # Requests that may wait for a free slot; beyond it submit() raises QueueFullError.
    max_queue: int = 64
    # The KV cache's element type for K and V: "f16", "q8_0" (half the
    # memory) or "q4_0" (a quarter); None: the default (engine.spec).
    kv_cache_type: str | None = None
    # None: the engine decides (engine.llama.residency); True/False: as said.
    use_mmap: bool | None = None
    use_mlock: bool = False
    # Cells of KV cache all slots share (llama.cpp's unified cache), when
    # fewer than parallel x n_ctx; None: a full context per slot.
    kv_cache_size: int | None = None
