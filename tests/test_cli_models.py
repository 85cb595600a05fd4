"""`model-compose pull`, `models`, `quantize` and the memory preflight, run as
a user runs them, against the local Hub stand-in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from convert.quantize import quantize
from convert.synthetic import write_llama_gguf
from tests.convert.hub_server import HubStandIn
from tests.server.conftest import free_port
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


SERVED = """
controller:
  adapter:
    port: {port}
    base_path: /api
  api_key: {key}
component:
  id: writer
  type: model
  task: text-generation
  model: HuggingFaceTB/SmolLM2-135M-Instruct
  parallel: 2
  context_length: 1024
  text: ${{input.prompt}}
  max_output_length: 8
  params:
    do_sample: false
"""


def test_models_shows_what_a_running_server_has_loaded_and_its_memory(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "model-compose.yml").write_text(SERVED.format(port=port, key="secret"))
    env = {"HF_HOME": str(tmp_path / "hf-home"), "MODEL_COMPOSE_API_KEY": ""}
    api = f"http://127.0.0.1:{port}/api"
    started = run("up", "-d", cwd=tmp_path, env=env)
    assert started.returncode == 0, started.stderr
    try:
        answered = httpx.post(
            f"{api}/workflows/runs",
            json={"input": {"prompt": "Once upon a time"}},
            headers={"Authorization": "Bearer secret"},
            timeout=60,
        )
        assert answered.json()["status"] == "completed"

        # ./model-compose.yml says where the server is, and its API key.
        shown = run("models", cwd=tmp_path, env=env)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[0].split() == ["REPOSITORY", "FILE", "QUANT", "SIZE", "PATH"]
        assert lines[1].startswith("HuggingFaceTB/SmolLM2-135M-Instruct (embedded)")
        assert lines[2] == ""
        assert re.fullmatch(
            rf"model-compose at {api}: RSS [\d.]+ MB "
            r"\([\d.]+ MB anonymous, [\d.]+ MB file-backed\)",
            lines[3],
        )
        assert lines[4].split() == [
            *("NAME", "COMPONENTS", "CONTEXT", "SLOTS", "BUSY"),
            *("WEIGHTS", "KV", "CACHE", "COMPUTE"),
        ]
        cells = re.split(r"\s{2,}", lines[5])
        assert cells[1:5] == ["writer", "1024", "0/2", "96.6 MB"]
        # KV held: the run's tokens; allocated: 2 slots × 1024 cells × 30
        # layers × K and V × 192 values × 2 bytes.
        assert re.fullmatch(r"[\d.]+ KB of 47\.2 MB", cells[5]), cells
        assert re.fullmatch(r"[\d.]+ MB", cells[6]), cells

        # --url and the key from the environment; --json holds both lists.
        as_json = run(
            "models", "--url", api, "--json", env={**env, "MODEL_COMPOSE_API_KEY": "secret"}
        )
        assert as_json.returncode == 0, as_json.stderr
        listing = json.loads(as_json.stdout)
        assert listing["cached"][0]["quant"] == "Q4_1"
        server = listing["server"]
        assert (server["url"], server["running"], server["running_tasks"]) == (api, True, 0)
        (model,) = server["models"]
        memory = model["memory"]
        assert memory["kv_cache"] == 2 * 1024 * 30 * 2 * 192 * 2
        # The prompt and the answer's tokens, each a cell of 30 × 2 × 192 f16 values.
        assert 0 < memory["kv_cache_used"] < memory["kv_cache"]
        assert memory["kv_cache_used"] % (30 * 2 * 192 * 2) == 0
        resident = server["process_memory"]
        assert resident["rss"] >= resident["rss_anon"] + resident["rss_file"] > 0

        refused = run("models", "--url", api, env=env)
        assert (refused.returncode, refused.stdout) == (2, "")
        assert refused.stderr == (
            f"error: the server at {api} needs its API key: pass --api-key, set"
            " MODEL_COMPOSE_API_KEY, or name its compose file with -f\n"
        )
    finally:
        assert run("down", cwd=tmp_path, env=env).returncode == 0

    stopped = run("models", "-f", str(tmp_path), env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.splitlines()[-1] == (
        f"no model-compose server is running at {api} (start one with `model-compose up -d`)"
    )
