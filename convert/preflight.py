"""Will this model fit? An estimate of the memory a load needs, checked
against what the machine has, before llama.cpp allocates anything — so a
laptop gets a message with numbers and fixes instead of the OOM killer.

The formulas follow llama.cpp's own allocations (checked against the sizes it
logs for SmolLM2-135M at 512–8192 tokens of context):
- weights: the file, minus the share of layers offloaded to a GPU;
- KV cache: K and V, per layer, per position: n_kv_heads × head_dim f16 values;
- compute: the larger of the logits (n_ubatch × n_vocab floats) and the
  attention scores (n_ctx × n_ubatch × n_heads floats), plus a little.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.errors import UserError

if TYPE_CHECKING:
    from convert.metadata import GGUFInfo

# Runtime, Python and llama.cpp bookkeeping not covered by the formulas.
OVERHEAD = 64 * 2**20
BUDGET_VARIABLE = "MODEL_COMPOSE_MEMORY_BUDGET"
MIN_CONTEXT = 256


class InsufficientMemoryError(UserError):
    error_type = "insufficient_memory"


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a GGUF file."""

    file_size: int
    n_layers: int
    n_embd: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    n_vocab: int
    trained_context: int | None = None


def shape_of(info: GGUFInfo) -> ModelShape | None:
    """The estimate's inputs from a file's metadata; None when the file lacks
    them (an architecture we cannot size: then there is no preflight)."""
    needed = (info.n_layers, info.n_embd, info.n_heads, info.head_dim, info.n_vocab)
    if any(value is None or value <= 0 for value in needed):
        return None
    return ModelShape(
        file_size=info.file_size,
        n_layers=info.n_layers or 0,
        n_embd=info.n_embd or 0,
        n_heads=info.n_heads or 0,
        n_kv_heads=info.n_kv_heads or info.n_heads or 0,
        head_dim=info.head_dim or 0,
        n_vocab=info.n_vocab or 0,
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
    shape: ModelShape, n_ctx: int, *, n_parallel: int = 1, n_batch: int = 512, n_gpu_layers: int = 0
) -> MemoryEstimate:
    """Bytes of RAM a load with these settings needs (GPU memory not counted)."""
    offloaded = shape.n_layers if n_gpu_layers < 0 else min(n_gpu_layers, shape.n_layers)
    on_cpu = (shape.n_layers - offloaded) / max(shape.n_layers, 1)
    # Embeddings and the output head stay in RAM even when every layer is offloaded.
    head = 2 * shape.n_vocab * shape.n_embd // 2 if offloaded else 0
    weights = int(shape.file_size * on_cpu) + min(head, shape.file_size)
    kv_cpu_layers = shape.n_layers - offloaded
    kv_cache = 2 * kv_cpu_layers * n_ctx * n_parallel * shape.n_kv_heads * shape.head_dim * 2
    ubatch = min(n_batch, 512, n_ctx)
    logits = ubatch * shape.n_vocab * 4
    scores = n_ctx * ubatch * shape.n_heads * 4
    # 5% for the graph's other tensors, which grow with the larger of the two.
    compute = int(max(logits, scores) * 1.05) + ubatch * shape.n_embd * 4 * 16
    return MemoryEstimate(weights, kv_cache, compute)


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
) -> int:
    """`context_length: auto`: the largest context (a multiple of 256) that
    fits, at most the trained context; MIN_CONTEXT if even that does not."""
    cap = shape.trained_context or 4096
    low, high = MIN_CONTEXT, max(cap, MIN_CONTEXT)
    if (
        estimate(
            shape, high, n_parallel=n_parallel, n_batch=n_batch, n_gpu_layers=n_gpu_layers
        ).total
        <= available
    ):
        return high
    while high - low > 256:
        middle = (low + high) // 2 // 256 * 256
        fits = (
            estimate(
                shape, middle, n_parallel=n_parallel, n_batch=n_batch, n_gpu_layers=n_gpu_layers
            ).total
            <= available
        )
        low, high = (middle, high) if fits else (low, middle)
    return low


def check_memory(
    name: str,
    shape: ModelShape,
    n_ctx: int,
    *,
    n_parallel: int = 1,
    n_batch: int = 512,
    n_gpu_layers: int = 0,
    available: int | None = None,
) -> MemoryEstimate:
    """Raise InsufficientMemoryError with the numbers and the fixes when the
    load would not fit; the estimate otherwise."""
    available = available_memory() if available is None else available
    need = estimate(shape, n_ctx, n_parallel=n_parallel, n_batch=n_batch, n_gpu_layers=n_gpu_layers)
    if need.total <= available:
        return need
    fixes = ["a smaller quant (e.g. Q4_0 or Q3_K_M instead of Q8_0 or Q4_K_M)"]
    fitting = largest_context(
        shape, available, n_parallel=n_parallel, n_batch=n_batch, n_gpu_layers=n_gpu_layers
    )
    if (
        fitting < n_ctx
        and estimate(
            shape, fitting, n_parallel=n_parallel, n_batch=n_batch, n_gpu_layers=n_gpu_layers
        ).total
        <= available
    ):
        fixes.append(f"a smaller context_length ({fitting} fits; or context_length: auto)")
    if n_parallel > 1:
        single = estimate(shape, n_ctx, n_batch=n_batch, n_gpu_layers=n_gpu_layers).total
        fits = " (parallel: 1 fits)" if single <= available else ""
        fixes.append(f"fewer parallel slots{fits}")
    if n_gpu_layers >= 0 and n_gpu_layers < shape.n_layers:
        fixes.append("offloading layers to a GPU (n_gpu_layers)")
    sequences = f" × {n_parallel} sequences" if n_parallel > 1 else ""
    raise InsufficientMemoryError(
        f"not enough memory to load {name}: it needs about {human(need.total)} (weights "
        f"{human(need.weights)}, KV cache for {n_ctx} tokens{sequences} {human(need.kv_cache)}, "
        f"compute {human(need.compute)}) but {human(available)} is available. "
        f"Try {'; or '.join(fixes)}."
    )
