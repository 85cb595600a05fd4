"""Will this model fit? An estimate of the memory a load needs, checked
against what the machine has, before llama.cpp allocates anything — so a
laptop gets a message with numbers and fixes instead of the OOM killer.

The estimate follows what llama.cpp allocates with the engine's settings,
part by part as it logs them while loading (`engine.llama.buffers`, reported
as `ModelInfo.memory`; a test loads the embedded model and the SmolLM3
stand-in at several settings and checks each part within 10%):
- weights: resident once (`engine.llama.residency`): the file's tensor data,
  less the layers offloaded to a GPU;
- KV cache: K and V, per layer, per cell: n_kv_heads × head_dim values of the
  cache type (f16: 2 bytes each; q8_0: 34 bytes per 32, from gguf's table).
  llama.cpp gives each slot its context rounded up to 256 cells;
- compute: the logits llama.cpp keeps for the engine, one row of n_vocab
  floats per slot, plus the graph's scratch for one micro-batch, the larger
  of what a layer needs and what the output needs. A layer: per token, the
  flash-attention mask (an f16 per cell of a slot) and the activations,
  3 × n_ff + 4 × n_embd floats (3 × n_embd with a quantized or f32 cache).
  That is fitted, not derived (ggml's allocator reuses memory along the
  graph): it gives llama.cpp's sizes for SmolLM2-135M and SmolLM3-3B to 0.5%,
  and within 6% for the tiny SmolLM3 stand-in (4 layers, n_ff 512). The
  output: the logit rows again, and the last hidden state (n_embd floats per
  token) — the larger only for a large vocabulary with a small micro-batch.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from convert.gguf_header import nbytes
from runtime.errors import UserError

if TYPE_CHECKING:
    from convert.metadata import GGUFInfo

# Runtime, Python and llama.cpp bookkeeping not covered by the formulas.
OVERHEAD = 64 * 2**20
BUDGET_VARIABLE = "MODEL_COMPOSE_MEMORY_BUDGET"
MIN_CONTEXT = 256
# The engine's KV cache type unless the spec says (`engine.spec.KV_CACHE_TYPES`).
DEFAULT_KV_CACHE_TYPE = "f16"
# llama.cpp rounds each slot's share of the KV cache up to a multiple of this.
CELL_PADDING = 256
FLOAT = 4


class InsufficientMemoryError(UserError):
    error_type = "insufficient_memory"


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a GGUF file."""

    tensor_bytes: int  # the tensors' data: the file less its metadata
    n_layers: int
    n_embd: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    n_vocab: int
    n_ff: int  # the feed-forward width
    trained_context: int | None = None


def shape_of(info: GGUFInfo) -> ModelShape | None:
    """The estimate's inputs from a file's metadata; None when the file lacks
    them (an architecture we cannot size: then there is no preflight)."""
    needed = (info.n_layers, info.n_embd, info.n_heads, info.head_dim, info.n_vocab)
    if any(value is None or value <= 0 for value in needed):
        return None
    n_embd = info.n_embd or 0
    return ModelShape(
        tensor_bytes=info.tensor_bytes or info.file_size,
        n_layers=info.n_layers or 0,
        n_embd=n_embd,
        n_heads=info.n_heads or 0,
        n_kv_heads=info.n_kv_heads or info.n_heads or 0,
        head_dim=info.head_dim or 0,
        n_vocab=info.n_vocab or 0,
        # Llama-style models are 2.7 to 5.4 times as wide in their FFN.
        n_ff=info.n_ff or 4 * n_embd,
        trained_context=info.context_length,
    )


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    kv_cache: int
    compute: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + OVERHEAD


def estimate(
    shape: ModelShape,
    n_ctx: int,
    *,
    n_parallel: int = 1,
    n_batch: int = 512,
    n_gpu_layers: int = 0,
    kv_cache_type: str = DEFAULT_KV_CACHE_TYPE,
    kv_pool: int | None = None,
) -> MemoryEstimate:
    """Bytes of RAM a load with these settings needs (GPU memory not counted).
    `n_ctx` is one slot's context; `n_batch` the micro-batch llama.cpp
    reserves its graph for (`engine.spec.micro_batch`); `kv_pool` the cells
    all slots share instead (`kv_cache_size`: one stream)."""
    offloaded = shape.n_layers if n_gpu_layers < 0 else min(n_gpu_layers, shape.n_layers)
    on_cpu = (shape.n_layers - offloaded) / max(shape.n_layers, 1)
    # Embeddings and the output head stay in RAM even when every layer is offloaded.
    head = 2 * shape.n_vocab * shape.n_embd // 2 if offloaded else 0
    weights = int(shape.tensor_bytes * on_cpu) + min(head, shape.tensor_bytes)
    streams = 1 if kv_pool else n_parallel
    cells = -(-(kv_pool or n_ctx) // CELL_PADDING) * CELL_PADDING
    kv_cache = (
        2
        * (shape.n_layers - offloaded)
        * cells
        * streams
        * kv_bytes(kv_cache_type, shape.n_kv_heads * shape.head_dim)
    )
    return MemoryEstimate(
        weights, kv_cache, compute(shape, cells, n_parallel, n_batch, kv_cache_type, streams)
    )


def kv_bytes(kv_cache_type: str, values: int) -> int:
    """Bytes of `values` K (or V) values in a cache of this type."""
    size = nbytes(kv_cache_type, values)
    if size is None:
        raise UserError(f"unknown KV cache type {kv_cache_type!r}")
    return size


def compute(
    shape: ModelShape,
    cells: int,
    n_parallel: int,
    n_batch: int,
    kv_cache_type: str,
    streams: int | None = None,
) -> int:
    """llama.cpp's compute and output buffers (see the module's docstring);
    `cells` per KV stream, a stream per slot unless `streams` says otherwise."""
    streams = n_parallel if streams is None else streams
    # llama.cpp reserves the graph for a micro-batch split evenly over the streams.
    tokens = min(n_batch, cells * streams)
    tokens = -(-tokens // streams) * streams
    logits = n_parallel * shape.n_vocab * FLOAT
    # Measured: an f16 cache keeps one more n_embd row per token live at the peak.
    embd_rows = 4 if kv_cache_type == "f16" else 3
    layer = tokens * (2 * cells + FLOAT * (3 * shape.n_ff + embd_rows * shape.n_embd))
    output = logits + tokens * shape.n_embd * FLOAT
    return logits + max(layer, output)


def available_memory() -> int:
    """Bytes this process may still use: MEMORY_BUDGET when set, else the
    smaller of the system's MemAvailable and the cgroup's remaining limit."""
    budget = os.environ.get(BUDGET_VARIABLE)
    if budget:
        from runtime.config.units import parse_size

        try:
            return parse_size(budget)
        except ValueError as error:
            raise UserError(f"{BUDGET_VARIABLE}: {error}") from None
    candidates = []
    meminfo = _read("/proc/meminfo")
    if meminfo and (match := re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.M)):
        candidates.append(int(match[1]) * 1024)
    limit, used = _read("/sys/fs/cgroup/memory.max"), _read("/sys/fs/cgroup/memory.current")
    if limit and used and limit.strip().isdigit() and used.strip().isdigit():
        candidates.append(int(limit) - int(used))
    return min(candidates) if candidates else 1 << 62  # unknown: do not refuse


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def largest_context(
    shape: ModelShape,
    available: int,
    *,
    n_parallel: int = 1,
    n_batch: int = 512,
    n_gpu_layers: int = 0,
    kv_cache_type: str = DEFAULT_KV_CACHE_TYPE,
) -> int:
    """`context_length: auto`: the largest context (a multiple of 256) that
    fits, at most the trained context; MIN_CONTEXT if even that does not."""

    def fits(n_ctx: int) -> bool:
        need = estimate(
            shape,
            n_ctx,
            n_parallel=n_parallel,
            n_batch=n_batch,
            n_gpu_layers=n_gpu_layers,
            kv_cache_type=kv_cache_type,
        )
        return need.total <= available

    cap = shape.trained_context or 4096
    low, high = MIN_CONTEXT, max(cap, MIN_CONTEXT)
    if fits(high):
        return high
    while high - low > 256:
        middle = (low + high) // 2 // 256 * 256
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def check_memory(
    name: str,
    shape: ModelShape,
    n_ctx: int,
    *,
    n_parallel: int = 1,
    n_batch: int = 512,
    n_gpu_layers: int = 0,
    kv_cache_type: str = DEFAULT_KV_CACHE_TYPE,
    kv_pool: int | None = None,
    available: int | None = None,
) -> MemoryEstimate:
    """Raise InsufficientMemoryError with the numbers and the fixes when the
    load would not fit; the estimate otherwise."""
    available = available_memory() if available is None else available
    need_for = functools.partial(
        estimate, shape, n_batch=n_batch, n_gpu_layers=n_gpu_layers, kv_cache_type=kv_cache_type
    )
    need = need_for(n_ctx, n_parallel=n_parallel, kv_pool=kv_pool)
    if need.total <= available:
        return need
    fixes = ["a smaller quant (e.g. Q4_0 or Q3_K_M instead of Q8_0 or Q4_K_M)"]
    fitting = largest_context(
        shape,
        available,
        n_parallel=n_parallel,
        n_batch=n_batch,
        n_gpu_layers=n_gpu_layers,
        kv_cache_type=kv_cache_type,
    )
    if fitting < n_ctx and need_for(fitting, n_parallel=n_parallel).total <= available:
        fixes.append(f"a smaller context_length ({fitting} fits; or context_length: auto)")
    if n_parallel > 1:
        fits = " (parallel: 1 fits)" if need_for(n_ctx).total <= available else ""
        fixes.append(f"fewer parallel slots{fits}")
    # Offered only when they alone would make it fit.
    quantized = functools.partial(estimate, shape, n_batch=n_batch, n_gpu_layers=n_gpu_layers)
    if kv_cache_type in ("f16", "f32") and (
        quantized(n_ctx, n_parallel=n_parallel, kv_pool=kv_pool, kv_cache_type="q8_0").total
        <= available
    ):
        fixes.append("a quantized KV cache (kv_cache_type: q8_0 fits)")
    if (
        n_parallel > 1
        and not kv_pool
        and (need_for(n_ctx, n_parallel=n_parallel, kv_pool=n_ctx).total <= available)
    ):
        fixes.append(f"slots sharing a smaller KV cache (kv_cache_size: {n_ctx} fits)")
    if n_gpu_layers >= 0 and n_gpu_layers < shape.n_layers:
        fixes.append("offloading layers to a GPU (n_gpu_layers)")
    sequences = f" × {n_parallel} sequences" if n_parallel > 1 else ""
    if kv_pool:
        sequences = f" in a pool of {kv_pool} shared by {n_parallel} slots"
    cache = f" ({kv_cache_type})" if kv_cache_type != DEFAULT_KV_CACHE_TYPE else ""
    raise InsufficientMemoryError(
        f"not enough memory to load {name}: it needs about {human(need.total)} (weights "
        f"{human(need.weights)}, KV cache{cache} for {n_ctx} tokens{sequences} "
        f"{human(need.kv_cache)}, compute {human(need.compute)}) but {human(available)} is "
        f"available. Try {'; or '.join(fixes)}."
    )
