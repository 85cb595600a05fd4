"""`model-compose pull`, `models`, `quantize` and the memory preflight, run as
a user runs them, against the local Hub stand-in."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from convert.quantize import quantize
from convert.synthetic import write_llama_gguf
from tests.convert.hub_server import HubStandIn
from tests.test_cli import hub_env, run

COMMAND = str(Path(sys.executable).parent / "model-compose")
SEED = "HuggingFaceTB/SmolLM3-3B"


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Tiny real GGUF files standing in for SmolLM3's quants."""
    folder = tmp_path_factory.mktemp("builds")
    f16 = write_llama_gguf(folder / "f16.gguf", name="tiny")
    files = {"F16": f16.read_bytes()}
    for quant in ("Q8_0", "Q4_0"):
        files[quant] = quantize(f16, folder / f"{quant}.gguf", quant).path.read_bytes()
    return files


@pytest.fixture
def hub(builds: dict[str, bytes]) -> Iterator[HubStandIn]:
    stand_in = HubStandIn().start()
    stand_in.add_repo(SEED, {"config.json": b"{}", "model.safetensors": b"\0" * 64})
    stand_in.add_repo(
        "ggml-org/SmolLM3-3B-GGUF",
        {
            "SmolLM3-Q4_K_M.gguf": builds["Q4_0"],  # the bytes only need to be a real GGUF
            "SmolLM3-Q8_0.gguf": builds["Q8_0"],
            "SmolLM3-f16.gguf": builds["F16"],
        },
        base_model=SEED,
    )
    stand_in.add_repo(
        "bartowski/HuggingFaceTB_SmolLM3-3B-GGUF",
        {
            "HuggingFaceTB_SmolLM3-3B-Q4_K_S.gguf": builds["Q4_0"],
            "HuggingFaceTB_SmolLM3-3B-Q8_0.gguf": builds["Q8_0"],
        },
        base_model=SEED,
    )
    yield stand_in
    stand_in.stop()


def cached(tmp_path: Path, repository: str, filename: str) -> Path:
    folder = tmp_path / "hf-home" / "hub" / f"models--{repository.replace('/', '--')}"
    return next((folder / "snapshots").glob(f"*/{filename}"))


def test_pull_maps_the_seed_model_to_its_gguf_build_with_progress(
    tmp_path: Path, hub: HubStandIn
) -> None:
    result = run("pull", SEED, env=hub_env(tmp_path, hub.url))
    assert result.returncode == 0, result.stderr
    path = cached(tmp_path, "ggml-org/SmolLM3-3B-GGUF", "SmolLM3-Q4_K_M.gguf")
    assert result.stdout.startswith(f"{path} (")
    assert result.stderr.splitlines()[0] == (
        "HuggingFaceTB/SmolLM3-3B is a transformers repository; using its GGUF build "
        "ggml-org/SmolLM3-3B-GGUF (curated), file SmolLM3-Q4_K_M.gguf (Q4_K_M, the default quant)"
    )
    assert "SmolLM3-Q4_K_M.gguf: 100%" in result.stderr


def test_pull_takes_a_quant_after_a_colon(tmp_path: Path, hub: HubStandIn) -> None:
    result = run("pull", f"{SEED}:Q8_0", env=hub_env(tmp_path, hub.url))
    assert result.returncode == 0, result.stderr
    path = cached(tmp_path, "ggml-org/SmolLM3-3B-GGUF", "SmolLM3-Q8_0.gguf")
    assert result.stdout.startswith(f"{path} (") and result.stdout.endswith(", Q8_0)\n")


def test_pull_takes_a_gguf_repository_and_quant(tmp_path: Path, hub: HubStandIn) -> None:
    result = run(
        "pull", "bartowski/HuggingFaceTB_SmolLM3-3B-GGUF:Q4_K_S", env=hub_env(tmp_path, hub.url)
    )
    assert result.returncode == 0, result.stderr
    assert cached(
        tmp_path, "bartowski/HuggingFaceTB_SmolLM3-3B-GGUF", "HuggingFaceTB_SmolLM3-3B-Q4_K_S.gguf"
    ).is_file()


def test_models_lists_the_embedded_model_and_what_was_pulled(
    tmp_path: Path, hub: HubStandIn
) -> None:
    env = hub_env(tmp_path, hub.url)
    assert run("pull", f"{SEED}:Q8_0", env=env).returncode == 0
    result = run("models", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "FILE", "QUANT", "SIZE", "PATH"]
    assert lines[1].startswith("HuggingFaceTB/SmolLM2-135M-Instruct (embedded)")
    assert lines[2].split()[:3] == ["ggml-org/SmolLM3-3B-GGUF", "SmolLM3-Q8_0.gguf", "Q8_0"]
    assert lines[2].endswith(str(cached(tmp_path, "ggml-org/SmolLM3-3B-GGUF", "SmolLM3-Q8_0.gguf")))


def test_pull_of_an_unknown_model_says_what_to_do(tmp_path: Path, hub: HubStandIn) -> None:
    result = run("pull", "someone/nothing-here", env=hub_env(tmp_path, hub.url))
    assert (result.returncode, result.stdout) == (2, "")
    assert len(result.stderr.splitlines()) == 1
    assert "someone/nothing-here" in result.stderr and ".gguf" in result.stderr


def test_quantize_writes_the_requested_type(tmp_path: Path) -> None:
    source = write_llama_gguf(tmp_path / "in.gguf", name="tiny")
    result = run("quantize", str(source), str(tmp_path / "out.gguf"), "q8_0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'out.gguf'} (")
    assert result.stdout.endswith(", Q8_0)\n")


def test_quantize_refuses_to_requantize_without_the_flag(tmp_path: Path) -> None:
    source = write_llama_gguf(tmp_path / "in.gguf", name="tiny")
    quantized = quantize(source, tmp_path / "q8.gguf", "Q8_0").path
    refused = run("quantize", str(quantized), str(tmp_path / "q4.gguf"), "Q4_0")
    assert refused.returncode == 2
    assert len(refused.stderr.splitlines()) == 1
    assert "--allow-requantize" in refused.stderr
    forced = run(
        "quantize", str(quantized), str(tmp_path / "q4.gguf"), "Q4_0", "--allow-requantize"
    )
    assert forced.returncode == 0, forced.stderr


def test_quantize_names_the_valid_types_for_an_unknown_one(tmp_path: Path) -> None:
    source = write_llama_gguf(tmp_path / "in.gguf", name="tiny")
    result = run("quantize", str(source), str(tmp_path / "out.gguf"), "Q9_X")
    assert result.returncode == 2
    assert "Q9_X" in result.stderr and "Q4_K_M" in result.stderr
    assert not (tmp_path / "out.gguf").exists()


def test_a_model_that_would_not_fit_is_refused_before_loading() -> None:
    result = subprocess.run(
        [
            COMMAND,
            "run",
            "-f",
            "examples/quickstart",
            "--input",
            '{"system_prompt": "x", "user_prompt": "hi"}',
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "MODEL_COMPOSE_MEMORY_BUDGET": "200MB"},
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: not enough memory to load SmolLM2-135M-Instruct.Q4_1.gguf: it needs about"
        " 560.5 MB (weights 96.6 MB, KV cache for 4096 tokens × 4 sequences 377.5 MB, compute"
        " 19.3 MB) but 200.0 MB is available. Try a smaller quant (e.g. Q4_0 or Q3_K_M"
        " instead of Q8_0 or Q4_K_M); or fewer parallel slots; or offloading layers to a GPU"
        " (n_gpu_layers).\n"
    )
