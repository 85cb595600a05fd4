"""A model's load settings with every default filled in: the model pool's key.

Two specs that resolve equal load the same model.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from convert.metadata import GGUFInfo, read_gguf_info
from convert.preflight import DEFAULT_KV_CACHE_TYPE, available_memory, largest_context, shape_of
from runtime.engine.llama import gpu_offload_supported
from runtime.engine.types import AUTO_CONTEXT, ModelSpec
from runtime.errors import ModelLoadError

# Our default context: the model's trained context, but no more than this.
# llama-cpp-python's own default (512) is too small for chat; a 3B model's full
# trained context (64k) would need gigabytes of KV cache on a small laptop.
MAX_DEFAULT_CONTEXT = 4096
DEFAULT_BATCH = 512
DEVICES = ("auto", "cpu", "cuda", "metal")
# The KV cache types llama.cpp's server accepts (common/arg.cpp); quantized
# V needs flash attention, which llama.cpp turns on for CPUs by itself.
# (bf16 too, but llama-cpp-python 0.3.36 has no GGML_TYPE_BF16 to name it.)
KV_CACHE_TYPES = ("f16", "f32", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")


def micro_batch(n_batch: int, parallel: int) -> int:
    """The tokens llama.cpp evaluates at once (`n_ubatch`), what its compute
    buffer is sized for: the engine's batch, at least a token per slot, plus
    a filler per other slot (see `Backend.decode`)."""
    return max(n_batch, parallel) + parallel - 1


def default_threads() -> int:
    # Mirrors llama-cpp-python's default so explicit and implicit specs compare equal.
    return max(multiprocessing.cpu_count() // 2, 1)


def resolve_spec(spec: ModelSpec, header: GGUFInfo | None = None) -> ModelSpec:
    """The spec with every default filled in and the path made absolute.

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
    kv_cache_type = (spec.kv_cache_type or DEFAULT_KV_CACHE_TYPE).lower()
    if kv_cache_type not in KV_CACHE_TYPES:
        raise ModelLoadError(
            f"unknown kv_cache_type {spec.kv_cache_type!r}; use one of: {', '.join(KV_CACHE_TYPES)}"
        )
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
                n_batch=micro_batch(n_batch, max(1, spec.parallel)),
                n_gpu_layers=n_gpu_layers,
                kv_cache_type=kv_cache_type,
            )
            if shape is not None
            else min(trained or MAX_DEFAULT_CONTEXT, MAX_DEFAULT_CONTEXT)
        )
    parallel = max(1, spec.parallel)
    pool = spec.kv_cache_size
    if pool is not None:
        if pool < n_ctx:
            raise ModelLoadError(
                f"kv_cache_size ({pool} tokens) is smaller than the context ({n_ctx} tokens): "
                "one conversation could not fill its context; raise kv_cache_size or lower "
                "context_length"
            )
        if pool >= n_ctx * parallel:
            pool = None  # room for every slot's full context: no sharing needed
    return ModelSpec(
        path=str(path),
        n_ctx=n_ctx,
        n_batch=min(n_batch, n_ctx),
        n_threads=n_threads,
        n_gpu_layers=n_gpu_layers,
        device=device,
        parallel=parallel,
        max_queue=spec.max_queue,
        kv_cache_type=kv_cache_type,
        use_mmap=spec.use_mmap,
        use_mlock=spec.use_mlock,
        kv_cache_size=pool,
    )
