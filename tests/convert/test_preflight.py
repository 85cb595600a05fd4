"""The memory preflight: estimates that match llama.cpp's allocations, and a
refusal that gives the numbers and the fixes."""

from __future__ import annotations

import pytest

from convert.preflight import (
    BUDGET_VARIABLE,
    InsufficientMemoryError,
    ModelShape,
    available_memory,
    check_memory,
    estimate,
    largest_context,
)

MiB = 2**20
# SmolLM2-135M-Instruct Q4_1, the embedded model.
SMOLLM2 = ModelShape(
    file_size=98_362_432,
    n_layers=30,
    n_embd=576,
    n_heads=9,
    n_kv_heads=3,
    head_dim=64,
    n_vocab=49152,
    trained_context=8192,
)
# SmolLM3-3B Q4_K_M.
SMOLLM3 = ModelShape(
    file_size=1_920_000_000,
    n_layers=36,
    n_embd=2048,
    n_heads=16,
    n_kv_heads=4,
    head_dim=128,
    n_vocab=128256,
    trained_context=65536,
)


@pytest.mark.parametrize(
    ("n_ctx", "kv_mib"), [(512, 11.25), (2048, 45.0), (4096, 90.0), (8192, 180.0)]
)
def test_the_kv_cache_estimate_is_what_llama_cpp_allocates(n_ctx: int, kv_mib: float) -> None:
    # The sizes llama.cpp logs ("CPU KV buffer size") for the embedded model.
    assert estimate(SMOLLM2, n_ctx).kv_cache == kv_mib * MiB


@pytest.mark.parametrize(("n_ctx", "logged_mib"), [(512, 98.25), (4096, 99.38), (8192, 166.38)])
def test_the_compute_estimate_covers_llama_cpps_compute_buffer(
    n_ctx: int, logged_mib: float
) -> None:
    compute = estimate(SMOLLM2, n_ctx).compute
    assert logged_mib * MiB <= compute <= logged_mib * MiB * 1.25


def test_parallel_sequences_multiply_the_kv_cache() -> None:
    assert estimate(SMOLLM3, 4096, n_parallel=4).kv_cache == 4 * estimate(SMOLLM3, 4096).kv_cache


def test_offloaded_layers_leave_ram() -> None:
    everything = estimate(SMOLLM3, 4096, n_gpu_layers=-1)
    assert everything.kv_cache == 0
    assert everything.weights < SMOLLM3.file_size // 2
    assert estimate(SMOLLM3, 4096, n_gpu_layers=18).weights < estimate(SMOLLM3, 4096).weights


def test_a_load_that_does_not_fit_is_refused_with_numbers_and_fixes() -> None:
    with pytest.raises(InsufficientMemoryError) as refused:
        check_memory("SmolLM3-Q4_K_M.gguf", SMOLLM3, 32768, available=2_500_000_000)
    assert str(refused.value) == (
        "not enough memory to load SmolLM3-Q4_K_M.gguf: it needs about 5.6 GB (weights 1.9 GB,"
        " KV cache for 32768 tokens 2.4 GB, compute 1.2 GB) but 2.5 GB is available."
        " Try a smaller quant (e.g. Q4_0 or Q3_K_M instead of Q8_0 or Q4_K_M);"
        " or a smaller context_length (2304 fits; or context_length: auto);"
        " or offloading layers to a GPU (n_gpu_layers)."
    )


def test_a_load_that_fits_returns_its_estimate() -> None:
    assert check_memory("x", SMOLLM2, 4096, available=10**12).total > SMOLLM2.file_size


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
