"""Load a GGUF model with llama.cpp and expose the few operations the engine needs.

This module and the small helpers it uses (sampling, detokenize) are the only
places that touch llama.cpp handles. A `LoadedModel` is not thread-safe: the
engine's worker thread owns it, except for the read-only vocabulary helpers
(`encode`, `token_bytes`, `is_eog`) which llama.cpp allows from any thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import llama_cpp
import llama_cpp._internals
import llama_cpp.llama

from convert.metadata import GGUFInfo, read_gguf_info
from convert.preflight import available_memory, check_memory, largest_context, shape_of
from runtime.engine.sampling import Sampler
from runtime.engine.types import AUTO_CONTEXT, ModelInfo, ModelSpec, SamplingParams
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
            largest_context(shape, available_memory(), n_parallel=max(1, spec.parallel),
                            n_batch=n_batch, n_gpu_layers=n_gpu_layers)
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


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load the model `spec` names (blocking; run it in a thread)."""
    # llama.cpp's own errors for a file that is not GGUF, or cut short, are obscure.
    header = read_gguf_info(Path(spec.path).expanduser())
    spec = resolve_spec(spec, header)
    shape = shape_of(header)
    if shape is not None:
        # Refuse with numbers and fixes before llama.cpp allocates anything.
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
    _load_errors.lines = []
    try:
        llama = llama_cpp.Llama(
            model_path=spec.path,
            n_ctx=spec.n_ctx or MAX_DEFAULT_CONTEXT,
            n_batch=spec.n_batch or DEFAULT_BATCH,
            n_threads=spec.n_threads,
            n_gpu_layers=spec.n_gpu_layers or 0,
            verbose=False,
        )
    except Exception as exc:
        reason = "; ".join(line for line in _load_errors.lines if line) or str(exc)
        raise ModelLoadError(f"llama.cpp cannot load {spec.path}: {reason}") from exc
    finally:
        _load_errors.lines = None
    return LoadedModel(llama, spec, header)


@dataclass(frozen=True)
class SpecialTokens:
    bos_id: int  # -1 when the vocabulary has none
    bos_text: str
    eos_text: str
    adds_bos: bool  # the model expects BOS in front of every prompt


class LoadedModel:
    """One llama.cpp model and context; the engine's worker thread owns it."""

    def __init__(self, llama: llama_cpp.Llama, spec: ModelSpec, header: GGUFInfo) -> None:
        self._llama = llama
        self._vocab = llama_cpp.llama_model_get_vocab(llama.model)
        trained = int(llama_cpp.llama_model_n_ctx_train(llama.model))
        # llama.cpp may round the context up; our token arrays have the requested size.
        context_length = min(llama.n_ctx(), spec.n_ctx or llama.n_ctx())
        self.metadata: dict[str, str] = dict(llama.metadata)
        self.info = ModelInfo(
            path=spec.path,
            name=header.name or Path(spec.path).stem,
            context_length=context_length,
            trained_context_length=trained,
            n_gpu_layers=spec.n_gpu_layers or 0,
            n_threads=llama.n_threads,
            n_batch=llama.n_batch,
            quantization=header.quantization,
        )
        bos_id = llama.token_bos()
        eos_id = llama.token_eos()
        self.special = SpecialTokens(
            bos_id=bos_id,
            bos_text=self._token_text(bos_id),
            eos_text=self._token_text(eos_id),
            adds_bos=bool(llama_cpp.llama_vocab_get_add_bos(self._vocab)),
        )
        self.spec = replace(spec, n_ctx=context_length)

    @property
    def context_length(self) -> int:
        return self.info.context_length

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template")

    # -- vocabulary (read-only, safe from any thread) ---------------------------

    def encode(self, text: str) -> list[int]:
        """Tokenize a prompt; special-token text (e.g. `<|im_start|>`) is parsed.

        BOS is added when the model wants it, unless the text already starts
        with it (chat templates often write `{{ bos_token }}` themselves): a
        prompt never carries two.
        """
        special = self.special
        # llama.cpp's add_special flag would also append EOS for models that
        # declare add_eos (wrong for a generation prompt), so BOS is added here.
        tokens = self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if special.adds_bos and special.bos_id >= 0 and tokens[:1] != [special.bos_id]:
            tokens.insert(0, special.bos_id)
        while len(tokens) >= 2 and tokens[0] == tokens[1] == special.bos_id:
            tokens.pop(0)
        return tokens

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token; control tokens (BOS, EOS…) give b""."""
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, size, 0, False)
            if n >= 0:
                return buffer.raw[:n]
            size = -n  # the buffer was too small; llama.cpp says how big it must be

    def is_eog(self, token: int) -> bool:
        """End of generation: EOS, EOT, `<|im_end|>` and the like."""
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    @property
    def n_vocab(self) -> int:
        return int(llama_cpp.llama_vocab_n_tokens(self._vocab))

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return llama_cpp.llama_vocab_get_text(self._vocab, token).decode("utf-8", errors="replace")

    # -- the context (worker thread only) ----------------------------------------

    def new_sampler(self, params: SamplingParams) -> Sampler:
        return Sampler(params, self.n_vocab)

    def prefill(self, tokens: Sequence[int], is_cancelled: Callable[[], bool] | None = None) -> int:
        """Evaluate a prompt, reusing the KV cache of the longest prefix it shares
        with what the context holds. Returns how many prompt tokens were reused.

        A long prompt takes a while on a CPU, so `is_cancelled` is checked
        between batches; an interrupted prefill leaves a valid (shorter) context.
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
            llama.eval(tokens[start : start + llama.n_batch])
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
        self._llama.close()
