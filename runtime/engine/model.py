"""Load a GGUF model with llama.cpp: the checks every load goes through, and
the serial engine's one-sequence model.

`prepare_load` and `reporting_load_errors` are shared with the batching
engine's `backend`, which owns a multi-sequence context instead. A
`LoadedModel` is not thread-safe: the serial engine's worker thread owns it,
except for the read-only vocabulary helpers (`encode`, `token_bytes`,
`is_eog`, from `vocab.Vocabulary`) which llama.cpp allows from any thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import llama_cpp
import llama_cpp._internals
import llama_cpp.llama

from convert.metadata import GGUFInfo, read_gguf_info
from convert.preflight import available_memory, check_memory, largest_context, shape_of
from runtime.engine import extra_buffers
from runtime.engine.abort import AbortFlag
from runtime.engine.sampling import Sampler
from runtime.engine.threadpool import ThreadPools
from runtime.engine.types import AUTO_CONTEXT, ModelInfo, ModelSpec, SamplingParams
from runtime.engine.vocab import Vocabulary
from runtime.errors import ModelLoadError

logger = logging.getLogger(__name__)
llama_logger = logging.getLogger("runtime.engine.llama_cpp")

# Our default context: the model's trained context, but no more than this.
# llama-cpp-python's own default (512) is too small for chat; a 3B model's full
# trained context (64k) would need gigabytes of KV cache on a small laptop.
MAX_DEFAULT_CONTEXT = 4096
DEFAULT_BATCH = 512
DEVICES = ("auto", "cpu", "cuda", "metal")

_GGML_LOG_ERROR = 4  # ggml.h (llama-cpp-python's _logger comment is outdated)
_GGML_LOG_CONT = 5


class _LoadErrors(threading.local):
    """llama.cpp error lines logged on this thread while a model loads, so the
    `ModelLoadError` can say why instead of llama-cpp-python's bare "Failed to load"."""

    lines: list[str] | None = None
    last_level: int = 0


_load_errors = _LoadErrors()


class _LogListener(threading.local):
    """Who else reads llama.cpp's log lines on this thread (see `listen_to_llama_log`)."""

    listener: Callable[[int, str], None] | None = None


_log_listener = _LogListener()


@llama_cpp.llama_log_callback
def _route_llama_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    message = text.decode("utf-8", errors="replace")
    if level != _GGML_LOG_CONT:
        _load_errors.last_level = level
    if _load_errors.lines is not None and _load_errors.last_level == _GGML_LOG_ERROR:
        _load_errors.lines.append(message.strip())
    if _log_listener.listener is not None:
        try:
            _log_listener.listener(_load_errors.last_level, message)
        except Exception:  # an exception must not unwind through llama.cpp's C frames
            logger.exception("a llama.cpp log listener failed")
    if llama_logger.isEnabledFor(logging.DEBUG):
        llama_logger.debug("%s", message.rstrip("\n"))


@contextlib.contextmanager
def _keep_stdout_stderr(disable: bool = False) -> Iterator[None]:
    yield


def keep_process_output() -> None:
    """Stop llama-cpp-python from pointing the whole process's stdout and
    stderr at /dev/null while it loads a model (what `verbose=False` does).

    In a server that loses every line other threads write meanwhile: uvicorn's
    log, status lines, other requests' output. llama.cpp's own log already
    goes through `route_llama_logs`, so the redirect only ever hides ours.
    """
    for module in (llama_cpp.llama, llama_cpp._internals):
        module.suppress_stdout_stderr = _keep_stdout_stderr  # type: ignore[attr-defined]


def route_llama_logs() -> None:
    """Send llama.cpp's log through Python `logging` (debug level), not stderr.

    llama-cpp-python installs its own callback when imported; ours replaces it.
    Idempotent, so calling it before every load is cheap insurance.
    """
    llama_cpp.llama_log_set(_route_llama_log, ctypes.c_void_p(0))


@contextlib.contextmanager
def listen_to_llama_log(listener: Callable[[int, str], None]) -> Iterator[None]:
    """Also call `listener(level, text)` for every llama.cpp log message this
    thread logs meanwhile; e.g. quantization reports progress only there. A
    continuation piece gets the level of the message it continues."""
    route_llama_logs()
    previous, _log_listener.listener = _log_listener.listener, listener
    try:
        yield
    finally:
        _log_listener.listener = previous


def gpu_offload_supported() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


def default_threads() -> int:
    # Mirrors llama-cpp-python's default so explicit and implicit specs compare equal.
    return max(multiprocessing.cpu_count() // 2, 1)


def resolve_spec(spec: ModelSpec, header: GGUFInfo | None = None) -> ModelSpec:
    """The spec with every default filled in and the path made absolute.

    Two specs that resolve equal load the same model; this is the model pool's key.
    Reads the GGUF header (milliseconds), so call it off the event loop.
    """
    path = Path(spec.path).expanduser().resolve()
    if header is None:
        header = read_gguf_info(path)
    device = (spec.device or "auto").lower()
    if device not in DEVICES:
        raise ModelLoadError(f"unknown device {spec.device!r}; use one of: {', '.join(DEVICES)}")
    n_batch = spec.n_batch if spec.n_batch is not None else DEFAULT_BATCH
    if n_batch <= 0:
        raise ModelLoadError(f"n_batch must be positive, got {n_batch}")
    n_threads = spec.n_threads if spec.n_threads else default_threads()
    n_gpu_layers = spec.n_gpu_layers
    if n_gpu_layers is None:
        if device == "cpu":
            n_gpu_layers = 0
        elif device == "auto":
            n_gpu_layers = -1 if gpu_offload_supported() else 0
        else:
            n_gpu_layers = -1
    n_ctx = spec.n_ctx
    if n_ctx is not None and n_ctx < 0 and n_ctx != AUTO_CONTEXT:
        raise ModelLoadError(f"context length must be positive, got {n_ctx}")
    trained = header.context_length
    if n_ctx is None:
        n_ctx = min(trained, MAX_DEFAULT_CONTEXT) if trained else MAX_DEFAULT_CONTEXT
    elif n_ctx == 0:  # llama.cpp's convention: 0 = the trained context
        n_ctx = trained or MAX_DEFAULT_CONTEXT
    elif n_ctx == AUTO_CONTEXT:
        shape = shape_of(header)
        n_ctx = (
            largest_context(
                shape,
                available_memory(),
                n_parallel=max(1, spec.parallel),
                n_batch=n_batch,
                n_gpu_layers=n_gpu_layers,
            )
            if shape is not None
            else min(trained or MAX_DEFAULT_CONTEXT, MAX_DEFAULT_CONTEXT)
        )
    return ModelSpec(
        path=str(path),
        n_ctx=n_ctx,
        n_batch=min(n_batch, n_ctx),
        n_threads=n_threads,
        n_gpu_layers=n_gpu_layers,
        device=device,
        parallel=max(1, spec.parallel),
        max_queue=spec.max_queue,
    )


def prepare_load(spec: ModelSpec) -> tuple[ModelSpec, GGUFInfo]:
    """Every check before llama.cpp sees the file (blocking; run it in a thread).

    Both engines load through this: the GGUF header (llama.cpp's own errors for
    a file that is not GGUF, or cut short, are obscure), the resolved spec, the
    memory preflight (refuse with numbers and fixes before llama.cpp allocates
    anything, KV cache for every parallel slot included), and log routing.
    """
    header = read_gguf_info(Path(spec.path).expanduser())
    spec = resolve_spec(spec, header)
    shape = shape_of(header)
    if shape is not None:
        check_memory(
            Path(spec.path).name,
            shape,
            spec.n_ctx or MAX_DEFAULT_CONTEXT,
            n_parallel=spec.parallel,
            n_batch=spec.n_batch or DEFAULT_BATCH,
            n_gpu_layers=spec.n_gpu_layers or 0,
        )
    if spec.device in ("cuda", "metal") and not gpu_offload_supported():
        logger.warning(
            "device %r requested, but this llama.cpp build has no GPU offload; running on CPU",
            spec.device,
        )
    route_llama_logs()
    keep_process_output()
    return spec, header


@contextlib.contextmanager
def reporting_load_errors(path: str) -> Iterator[None]:
    """Turn a failed llama.cpp load into a `ModelLoadError` that says why (the
    error lines llama.cpp logged meanwhile), not just "Failed to load"."""
    _load_errors.lines = []
    try:
        yield
    except Exception as exc:
        reason = "; ".join(line for line in _load_errors.lines if line) or str(exc)
        raise ModelLoadError(f"llama.cpp cannot load {path}: {reason}") from exc
    finally:
        _load_errors.lines = None


def model_info(
    spec: ModelSpec, header: GGUFInfo, model: llama_cpp.llama_model_p, n_ctx: int, n_batch: int
) -> ModelInfo:
    """What the engine tells callers about a loaded model. `n_ctx` is the
    context one sequence may fill, whatever the engine allocated for all."""
    return ModelInfo(
        path=spec.path,
        name=header.name or Path(spec.path).stem,
        # llama.cpp may round the context up; our token budgets use the requested size.
        context_length=min(n_ctx, spec.n_ctx or n_ctx),
        trained_context_length=int(llama_cpp.llama_model_n_ctx_train(model)),
        n_gpu_layers=spec.n_gpu_layers or 0,
        n_threads=spec.n_threads or default_threads(),
        n_batch=n_batch,
        quantization=header.quantization,
    )


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load the model `spec` names for the serial engine (blocking; run it in a thread)."""
    spec, header = prepare_load(spec)
    with reporting_load_errors(spec.path), extra_buffers.for_llama():
        llama = llama_cpp.Llama(
            model_path=spec.path,
            n_ctx=spec.n_ctx or MAX_DEFAULT_CONTEXT,
            n_batch=spec.n_batch or DEFAULT_BATCH,
            n_threads=spec.n_threads,
            n_gpu_layers=spec.n_gpu_layers or 0,
            # As the batched engine does, so `parallel: 1` and `parallel: 4`
            # give the same greedy output (attention sums in another order).
            flash_attn=True,
            verbose=False,
        )
    return LoadedModel(llama, spec, header)


class LoadedModel(Vocabulary):
    """One llama.cpp model and a one-sequence context (llama-cpp-python's
    `Llama`); the serial engine's worker thread owns it."""

    def __init__(self, llama: llama_cpp.Llama, spec: ModelSpec, header: GGUFInfo) -> None:
        super().__init__(llama.model)
        self._llama = llama
        self.abort = AbortFlag()
        self.abort.install(llama.ctx)
        params = llama.context_params
        self._threads = ThreadPools(llama.ctx, params.n_threads, params.n_threads_batch)
        self.info = model_info(spec, header, llama.model, llama.n_ctx(), llama.n_batch)
        self.spec = replace(spec, n_ctx=self.info.context_length)

    @property
    def context_length(self) -> int:
        return self.info.context_length

    # -- the context (worker thread only) ----------------------------------------

    def new_sampler(self, params: SamplingParams) -> Sampler:
        return Sampler(params, self.n_vocab)

    def prefill(self, tokens: Sequence[int], is_cancelled: Callable[[], bool] | None = None) -> int:
        """Evaluate a prompt, reusing the KV cache of the longest prefix it shares
        with what the context holds. Returns how many prompt tokens were reused.

        A long prompt takes a while on a CPU, so `is_cancelled` is checked
        between batches, and a batch stops early when `abort` is set (see
        `engine.abort`); an interrupted prefill leaves a valid (shorter) context.
        """
        llama = self._llama
        cached = 0
        for held, wanted in zip(llama.input_ids[: llama.n_tokens].tolist(), tokens, strict=False):
            if held != wanted:
                break
            cached += 1
        if cached == len(tokens):
            # The logits of the last prompt token must come from a live decode.
            cached -= 1
        memory = llama_cpp.llama_get_memory(llama.ctx)
        if cached > 0 and not llama_cpp.llama_memory_seq_rm(memory, 0, cached, -1):
            cached = 0  # recurrent models cannot drop a tail; start over
        if cached == 0:
            llama.reset()
        else:
            llama.n_tokens = cached
        for start in range(cached, len(tokens), llama.n_batch):
            if is_cancelled is not None and is_cancelled():
                break
            try:
                llama.eval(tokens[start : start + llama.n_batch])
            except RuntimeError:
                if not self.abort.is_set:
                    raise
                break  # `Llama` counts only whole batches: the context stays valid
        return cached

    def sample(self, sampler: Sampler) -> int:
        return sampler.sample(self._llama.ctx, -1)

    def decode(self, token: int) -> None:
        """Append one sampled token to the context (so the next one can be sampled)."""
        self._llama.eval([token])

    def reset(self) -> None:
        """Forget the context (after a failure left it in an unknown state)."""
        self._llama.reset()
        memory = llama_cpp.llama_get_memory(self._llama.ctx)
        if memory is not None:
            llama_cpp.llama_memory_clear(memory, True)

    def close(self) -> None:
        self._threads.close()
        self._llama.close()
