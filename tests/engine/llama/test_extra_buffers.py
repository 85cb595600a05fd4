"""The runtime guard against llama.cpp's crashing AMX kernel: extra CPU buffer
types stay on unless the library reports AMX in a version not known fixed (or
the user turns them off), decided from what the library reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import llama_cpp
import pytest

from convert.quantize import quantize
from convert.synthetic import write_llama_gguf
from runtime.engine.llama import extra_buffers
from runtime.errors import ModelLoadError

# What llama_print_system_info() says on an AMX machine (llama-cpp-python 0.3.36).
AMX_BUILD = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
    "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | "
    "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
)
NO_AMX_BUILD = AMX_BUILD.replace("AMX_INT8 = 1 | ", "")


def test_system_info_reads_as_features() -> None:
    features = extra_buffers.system_features(AMX_BUILD)
    assert features["AMX_INT8"] == "1" and features["REPACK"] == "1"


def test_an_amx_build_of_a_broken_version_loads_without_extra_buffers() -> None:
    made = extra_buffers.decide(extra_buffers.system_features(AMX_BUILD), "0.3.36", None)
    assert not made.allowed
    assert made.reason is not None
    assert "AMX_INT8 = 1" in made.reason and "-mno-amx-int8" in made.reason


def test_a_build_without_amx_keeps_extra_buffers() -> None:
    made = extra_buffers.decide(extra_buffers.system_features(NO_AMX_BUILD), "0.3.36", None)
    assert made.allowed


def test_an_amx_build_of_a_fixed_version_keeps_extra_buffers() -> None:
    features = extra_buffers.system_features(AMX_BUILD)
    assert extra_buffers.decide(features, "0.3.41", None, fixed_in=(0, 3, 40)).allowed
    assert not extra_buffers.decide(features, "0.3.39", None, fixed_in=(0, 3, 40)).allowed


def test_the_setting_overrides_the_decision_both_ways() -> None:
    amx, plain = (extra_buffers.system_features(text) for text in (AMX_BUILD, NO_AMX_BUILD))
    assert extra_buffers.decide(amx, "0.3.36", "1").allowed
    assert not extra_buffers.decide(plain, "0.3.36", "0").allowed
    with pytest.raises(ModelLoadError, match="MODEL_COMPOSE_EXTRA_BUFFERS must be 0 or 1"):
        extra_buffers.decide(plain, "0.3.36", "yes")


def test_this_build_reports_no_amx_and_keeps_extra_buffers() -> None:
    """scripts/setup's build: fails on an AMX machine with llama.cpp's default build."""
    info = llama_cpp.llama_print_system_info().decode()
    assert "AMX_INT8 = 1" not in info
    if "MODEL_COMPOSE_EXTRA_BUFFERS" not in os.environ:
        assert extra_buffers.decision().allowed


# A fresh process: load and decode with both engines, print the llama.cpp
# buffer lines and the llama.cpp libraries mapped into the process.
_CHILD = """
import asyncio, json, logging, sys
from runtime.engine import GenerationRequest, ModelPool, ModelSpec, SamplingParams

buffers = []
class Buffers(logging.Handler):
    def emit(self, record):
        if "model buffer size" in record.getMessage():
            buffers.append(record.getMessage().strip())
llama_log = logging.getLogger("runtime.engine.llama_cpp")
llama_log.setLevel(logging.DEBUG)
llama_log.addHandler(Buffers())

async def main():
    pool = ModelPool()
    texts = []
    for parallel in (1, 2):
        engine = await pool.acquire(ModelSpec(sys.argv[1], n_ctx=256, parallel=parallel))
        request = GenerationRequest(
            prompt="The capital of France is", sampling=SamplingParams(greedy=True), max_tokens=4
        )
        texts.append((await engine.submit(request).result()).text)
    await pool.close()
    return texts

texts = asyncio.run(main())
maps = sorted({line.split()[-1] for line in open("/proc/self/maps") if "llama_cpp" in line})
print(json.dumps({"texts": texts, "buffers": buffers, "maps": maps}))
"""


def _run_child(model: Path, **env: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(model)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_each_llama_cpp_library_is_mapped_once_after_loading_and_decoding(
    embedded_model_path: Path,
) -> None:
    found = _run_child(embedded_model_path)
    libraries = [Path(path).name for path in found["maps"]]  # type: ignore[union-attr]
    stems = [name.split(".so")[0] for name in libraries]
    for wanted in ("libllama", "libggml-base", "libggml-cpu"):
        assert stems.count(wanted) == 1, libraries
    assert len(stems) == len(set(stems)), libraries


@pytest.fixture(scope="module")
def repacked_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Q4_0 model: llama.cpp's CPU backend repacks Q4_0 weights."""
    folder = tmp_path_factory.mktemp("repack")
    source = write_llama_gguf(folder / "tiny-f16.gguf")
    quantize(source, folder / "tiny-q4_0.gguf", "Q4_0")
    return folder / "tiny-q4_0.gguf"


def test_the_fallback_setting_loads_and_decodes_without_extra_buffers(
    repacked_model: Path,
) -> None:
    normal = _run_child(repacked_model)
    fallback = _run_child(repacked_model, MODEL_COMPOSE_EXTRA_BUFFERS="0")
    assert any("CPU_REPACK" in line for line in normal["buffers"])  # type: ignore[union-attr]
    assert not any("CPU_REPACK" in line for line in fallback["buffers"])  # type: ignore[union-attr]
    assert fallback["texts"] == normal["texts"]
