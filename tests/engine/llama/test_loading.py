"""Loading models: defaults, offload settings, and clear errors for bad files."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from convert.synthetic import write_llama_gguf
from runtime.engine import spec as spec_module
from runtime.engine.batched import BatchedEngine
from runtime.engine.llama.backend import Backend
from runtime.engine.spec import MAX_DEFAULT_CONTEXT, resolve_spec
from runtime.engine.types import ModelSpec
from runtime.errors import ModelLoadError


def test_the_default_context_is_the_trained_context_capped_at_4096(
    engine: BatchedEngine,
) -> None:
    info = engine.info
    assert info.trained_context_length == 8192
    assert info.context_length == MAX_DEFAULT_CONTEXT == 4096
    assert info.n_batch == 512
    assert info.n_gpu_layers == 0  # this llama.cpp build has no GPU offload
    assert info.name and Path(info.path).is_absolute()


def test_a_smaller_trained_context_is_used_whole(tmp_path: Path) -> None:
    path = write_llama_gguf(tmp_path / "m.gguf", n_layers=1, n_ctx_train=2048)
    spec = resolve_spec(ModelSpec(str(path)))
    assert spec.n_ctx == 2048
    assert resolve_spec(ModelSpec(str(path), n_ctx=0)).n_ctx == 2048


def test_explicit_settings_win_and_the_batch_fits_the_context(embedded_model_path: Path) -> None:
    spec = resolve_spec(ModelSpec(str(embedded_model_path), n_ctx=256, n_batch=1024, n_threads=2))
    assert (spec.n_ctx, spec.n_batch, spec.n_threads) == (256, 256, 2)


def test_the_device_decides_the_gpu_layers_unless_they_are_given(
    embedded_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(embedded_model_path)

    def layers(**kwargs: object) -> int | None:
        return resolve_spec(ModelSpec(path, **kwargs)).n_gpu_layers  # type: ignore[arg-type]

    assert layers(device="cpu") == 0
    assert layers(device="cuda") == -1
    assert layers(device="metal") == -1
    assert layers(device="cpu", n_gpu_layers=7) == 7
    monkeypatch.setattr(spec_module, "gpu_offload_supported", lambda: True)
    assert layers(device="auto") == -1
    monkeypatch.setattr(spec_module, "gpu_offload_supported", lambda: False)
    assert layers(device="auto") == 0


def test_an_unknown_device_is_a_load_error(embedded_model_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="unknown device 'tpu'"):
        resolve_spec(ModelSpec(str(embedded_model_path), device="tpu"))


def test_asking_for_a_gpu_on_a_cpu_build_warns_and_runs(
    embedded_model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if spec_module.gpu_offload_supported():
        pytest.skip("this llama.cpp build can offload to a GPU")
    with caplog.at_level(logging.WARNING, logger="runtime.engine.llama.loading"):
        model = Backend.load(ModelSpec(str(embedded_model_path), device="cuda", n_ctx=128))
    model.close()
    assert "no GPU offload" in caplog.text


def test_a_missing_file_is_a_load_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.gguf"
    with pytest.raises(ModelLoadError, match=re.escape(f"not found: {path}")):
        Backend.load(ModelSpec(str(path)))


def test_a_file_that_is_not_gguf_is_a_load_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 1000)
    with pytest.raises(ModelLoadError, match="not a GGUF model file") as caught:
        Backend.load(ModelSpec(str(path)))
    assert str(path) in str(caught.value)


def test_a_truncated_file_is_a_load_error_naming_the_path(
    embedded_model_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "half.gguf"
    with embedded_model_path.open("rb") as source, path.open("wb") as target:
        shutil.copyfileobj(source, target, length=1 << 20)
        target.truncate(embedded_model_path.stat().st_size // 2)
    with pytest.raises(ModelLoadError) as caught:
        Backend.load(ModelSpec(str(path)))
    assert str(caught.value) == f"model file is truncated (incomplete download?): {path}"


def test_a_file_llama_cpp_refuses_is_a_load_error_with_its_reason(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(path, "no-such-arch")
    writer.add_tensor("token_embd.weight", np.zeros((4, 64), np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError) as caught:
        Backend.load(ModelSpec(str(path)))
    message = str(caught.value)
    assert message.startswith(f"llama.cpp cannot load {path}: ")
    assert "unknown model architecture: 'no-such-arch'" in message
    # llama.cpp's own log went to Python logging, not to the terminal.
    assert capfd.readouterr().err == ""


def test_loading_a_model_does_not_swallow_other_threads_output(
    embedded_model_path: Path, tmp_path: Path
) -> None:
    # llama-cpp-python points fds 1 and 2 at /dev/null during a load; in a
    # server that would eat every log line written meanwhile.
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys, threading\n"
        "from runtime.engine.llama.backend import Backend\n"
        "from runtime.engine.types import ModelSpec\n"
        "done = threading.Event()\n"
        "count = 0\n"
        "def tick():\n"
        "    global count\n"
        "    while not done.is_set():\n"
        "        count += 1\n"
        "        print('tick', flush=True)\n"
        "        done.wait(0.001)\n"
        "thread = threading.Thread(target=tick)\n"
        "thread.start()\n"
        f"Backend.load(ModelSpec(path={str(embedded_model_path)!r}, n_ctx=256)).close()\n"
        "done.set(); thread.join()\n"
        "print('count', count, flush=True)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[3],
    )
    lines = result.stdout.splitlines()
    assert lines[-1] == f"count {lines.count('tick')}"


def test_the_quantization_is_named_from_the_gguf_file_type(engine: BatchedEngine) -> None:
    assert engine.info.quantization == "Q4_1"  # general.file_type 3
