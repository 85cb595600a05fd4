"""The memory preflight: estimates that match llama.cpp's allocations, and a
refusal that gives the numbers and the fixes."""

from __future__ import annotations

from pathlib import Path

import pytest

from convert.metadata import read_gguf_info
from convert.preflight import (
    BUDGET_VARIABLE,
    InsufficientMemoryError,
    ModelShape,
    available_memory,
    check_memory,
    estimate,
    largest_context,
    shape_of,
)
from runtime.engine.llama.backend import Backend
from runtime.engine.spec import micro_batch
from runtime.engine.types import ModelSpec

MiB = 2**20
# SmolLM2-135M-Instruct Q4_1, the embedded model.
SMOLLM2 = ModelShape(
    tensor_bytes=96_576_768,
    n_layers=30,
    n_embd=576,
    n_heads=9,
    n_kv_heads=3,
    head_dim=64,
    n_vocab=49152,
    n_ff=1536,
    trained_context=8192,
)
# SmolLM3-3B Q4_K_M.
SMOLLM3 = ModelShape(
    tensor_bytes=1_907_462_144,
    n_layers=36,
    n_embd=2048,
    n_heads=16,
    n_kv_heads=4,
    head_dim=128,
    n_vocab=128256,
    n_ff=11008,
    trained_context=65536,
)


@pytest.mark.parametrize(
    ("n_ctx", "kv_cache_type", "kv_mib"),
    [
        (512, "f16", 11.25),
        (2048, "f16", 45.0),
        (8192, "f16", 180.0),
        (2048, "q8_0", 23.91),
        (4096, "q4_0", 25.31),
    ],
)
def test_the_kv_cache_estimate_is_what_llama_cpp_allocates(
    n_ctx: int, kv_cache_type: str, kv_mib: float
) -> None:
    # The sizes llama.cpp logs ("CPU KV buffer size") for the embedded model,
    # to the 10 KB its log shows.
    kv_cache = estimate(SMOLLM2, n_ctx, kv_cache_type=kv_cache_type).kv_cache
    assert kv_cache == pytest.approx(kv_mib * MiB, abs=0.01 * MiB)


def test_each_slot_gets_its_context_rounded_up_to_256_cells() -> None:
    assert estimate(SMOLLM2, 64, n_parallel=4).kv_cache == estimate(SMOLLM2, 1024).kv_cache


@pytest.mark.parametrize(
    ("n_ctx", "n_batch", "logged_mib"),
    # llama.cpp's "compute buffer size" plus its "output buffer size" (0.19).
    [(512, 512, 14.01 + 0.19), (4096, 512, 17.51 + 0.19), (2048, 2048, 62.05 + 0.19)],
)
def test_the_compute_estimate_is_llama_cpps_compute_buffer(
    n_ctx: int, n_batch: int, logged_mib: float
) -> None:
    compute = estimate(SMOLLM2, n_ctx, n_batch=n_batch).compute
    assert compute == pytest.approx(logged_mib * MiB, rel=0.01)


def test_the_logits_of_one_row_per_slot_are_the_compute_floor() -> None:
    # With a large vocabulary and a small micro-batch, the output's logits
    # (n_parallel × n_vocab floats, kept twice) outweigh a layer's scratch.
    logits = 8 * SMOLLM3.n_vocab * 4
    assert 2 * logits < estimate(SMOLLM3, 256, n_parallel=8, n_batch=8).compute < 2.1 * logits


def test_parallel_sequences_multiply_the_kv_cache() -> None:
    assert estimate(SMOLLM3, 4096, n_parallel=4).kv_cache == 4 * estimate(SMOLLM3, 4096).kv_cache


def test_offloaded_layers_leave_ram() -> None:
    everything = estimate(SMOLLM3, 4096, n_gpu_layers=-1)
    assert everything.kv_cache == 0
    assert everything.weights < SMOLLM3.tensor_bytes // 2
    assert estimate(SMOLLM3, 4096, n_gpu_layers=18).weights < estimate(SMOLLM3, 4096).weights


def test_a_load_that_does_not_fit_is_refused_with_numbers_and_fixes() -> None:
    with pytest.raises(InsufficientMemoryError) as refused:
        check_memory("SmolLM3-Q4_K_M.gguf", SMOLLM3, 32768, available=2_500_000_000)
    assert str(refused.value) == (
        "not enough memory to load SmolLM3-Q4_K_M.gguf: it needs about 4.5 GB (weights 1.9 GB,"
        " KV cache for 32768 tokens 2.4 GB, compute 118.5 MB) but 2.5 GB is available."
        " Try a smaller quant (e.g. Q4_0 or Q3_K_M instead of Q8_0 or Q4_K_M);"
        " or a smaller context_length (5888 fits; or context_length: auto);"
        " or offloading layers to a GPU (n_gpu_layers)."
    )


def test_a_quantized_kv_cache_is_named_and_lets_a_longer_context_fit() -> None:
    with pytest.raises(InsufficientMemoryError) as refused:
        check_memory(
            "SmolLM3-Q4_K_M.gguf", SMOLLM3, 32768, kv_cache_type="q8_0", available=2_500_000_000
        )
    assert "KV cache (q8_0) for 32768 tokens 1.3 GB" in str(refused.value)
    assert "(11008 fits;" in str(refused.value)


def test_a_quantized_or_shared_kv_cache_is_offered_when_it_alone_would_fit() -> None:
    with pytest.raises(InsufficientMemoryError) as refused:
        check_memory("m.gguf", SMOLLM3, 4096, n_parallel=4, available=3_100_000_000)
    assert "or a quantized KV cache (kv_cache_type: q8_0 fits)" in str(refused.value)
    assert "or slots sharing a smaller KV cache (kv_cache_size: 4096 fits)" in str(refused.value)


def test_a_load_that_fits_returns_its_estimate() -> None:
    assert check_memory("x", SMOLLM2, 4096, available=10**12).total > SMOLLM2.tensor_bytes


def test_auto_context_is_the_largest_that_fits_capped_at_the_trained_context() -> None:
    assert largest_context(SMOLLM2, 10**12) == 8192
    fitted = largest_context(SMOLLM3, 3_000_000_000)
    assert fitted % 256 == 0
    assert estimate(SMOLLM3, fitted).total <= 3_000_000_000
    assert estimate(SMOLLM3, fitted + 256).total > 3_000_000_000


def test_a_memory_budget_overrides_what_the_machine_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(BUDGET_VARIABLE, "512MB")
    assert available_memory() == 512_000_000
    monkeypatch.setenv(BUDGET_VARIABLE, "lots")
    with pytest.raises(Exception, match="MODEL_COMPOSE_MEMORY_BUDGET: expected a size"):
        available_memory()


def test_the_machine_reports_some_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BUDGET_VARIABLE, raising=False)
    assert available_memory() > 0


def test_with_several_slots_fewer_slots_is_one_of_the_fixes() -> None:
    with pytest.raises(InsufficientMemoryError) as refused:
        check_memory("m.gguf", SMOLLM2, 4096, n_parallel=4, available=450_000_000)
    assert "KV cache for 4096 tokens × 4 sequences 377.5 MB" in str(refused.value)
    assert "or fewer parallel slots (parallel: 1 fits);" in str(refused.value)


@pytest.mark.parametrize("model", ["embedded_model_path", "smollm3_model_path"])
@pytest.mark.parametrize(
    ("n_ctx", "parallel", "n_batch", "kv_cache_type", "kv_pool"),
    [
        (4096, 1, 512, "f16", None),
        (1024, 4, 512, "q8_0", None),
        (2048, 2, 128, "q4_0", None),
        (1024, 4, 512, "f16", 2048),  # four slots sharing a pool of two contexts
    ],
)
def test_the_estimate_is_within_ten_percent_of_what_a_real_load_allocates(
    request: pytest.FixtureRequest,
    model: str,
    n_ctx: int,
    parallel: int,
    n_batch: int,
    kv_cache_type: str,
    kv_pool: int | None,
) -> None:
    path: Path = request.getfixturevalue(model)
    spec = ModelSpec(
        str(path),
        n_ctx=n_ctx,
        parallel=parallel,
        n_batch=n_batch,
        kv_cache_type=kv_cache_type,
        kv_cache_size=kv_pool,
    )
    backend = Backend.load(spec)
    try:
        allocated = backend.info.memory
    finally:
        backend.close()
    assert allocated is not None
    shape = shape_of(read_gguf_info(path))
    assert shape is not None
    # The micro-batch the engine gives llama.cpp, as the load's own preflight does.
    need = estimate(
        shape,
        n_ctx,
        n_parallel=parallel,
        n_batch=micro_batch(n_batch, parallel),
        kv_cache_type=kv_cache_type,
        kv_pool=kv_pool,
    )
    for part in ("weights", "kv_cache", "compute"):
        assert getattr(need, part) == pytest.approx(getattr(allocated, part), rel=0.1), part
    parts = need.weights + need.kv_cache + need.compute
    assert parts == pytest.approx(
        allocated.weights + allocated.kv_cache + allocated.compute, rel=0.1
    )
