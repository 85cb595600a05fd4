"""Quantizing through llama.cpp: round trips that load and generate, progress,
and refusals with messages that say what to do."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from convert import quantize as quantize_module
from convert.metadata import GGUFInfo, read_gguf_info
from convert.quantize import quantization_targets, quantize, target_type
from runtime.engine.batched import BatchedEngine
from runtime.engine.types import FinishReason, GenerationRequest, ModelSpec, SamplingParams
from runtime.errors import ModelLoadError, RuntimeFailure, UserError
from tests.convert.conftest import TinyModelFactory


async def generates(path: Path) -> None:
    engine = BatchedEngine.load(ModelSpec(str(path)))
    try:
        request = GenerationRequest(
            prompt="Once upon a time", sampling=SamplingParams(greedy=True), max_tokens=8
        )
        generation = engine.submit(request)
        async for _ in generation:
            pass
        result = await generation.result()
    finally:
        engine.shutdown()
    assert result.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert result.usage.completion_tokens >= 1


@pytest.mark.parametrize(
    ("file_type", "target", "tensor_types"),
    [
        ("F16", "Q8_0", {"Q8_0", "F32"}),
        ("F32", "Q8_0", {"Q8_0", "F32"}),
        # Rows of 256: real K-quants, with llama.cpp's Q6_K for the sensitive tensors.
        ("F16", "Q4_K_M", {"Q4_K", "Q6_K", "F32"}),
        ("F32", "q4_k", {"Q4_K", "Q6_K", "F32"}),
    ],
)
async def test_a_quantized_tiny_model_says_its_new_type_and_generates(
    tiny_model_factory: TinyModelFactory,
    tmp_path: Path,
    file_type: str,
    target: str,
    tensor_types: set[str],
) -> None:
    source = tiny_model_factory(file_type=file_type)
    info = quantize(source, tmp_path / "out.gguf", target)
    assert info == read_gguf_info(tmp_path / "out.gguf")
    assert info.quantization == target_type(target)
    assert info.tensor_types.keys() == tensor_types
    assert info.parameter_count == read_gguf_info(source).parameter_count
    assert info.file_size < source.stat().st_size * {"F16": 0.6, "F32": 0.3}[file_type]
    assert [p.name for p in tmp_path.iterdir()] == ["out.gguf"]  # no leftover .part
    await generates(info.path)


def test_progress_counts_tensors_from_none_to_all(tiny_model: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    quantize(tiny_model, tmp_path / "q.gguf", "Q8_0", progress=lambda *c: calls.append(c))
    assert calls == [(done, 21) for done in range(22)]


def test_rows_too_short_for_k_quants_fall_back_with_a_warning(
    tiny_model_factory: TinyModelFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tiny_model_factory("narrow.gguf", n_embd=64, n_ff=128)
    with caplog.at_level(logging.WARNING, logger="convert.quantize"):
        info = quantize(source, tmp_path / "q.gguf", "Q4_K_M")
    # The file still says Q4_K_M, as llama.cpp's own tool writes it.
    assert info.quantization == "Q4_K_M"
    assert "Q4_K" not in info.tensor_types and "Q5_0" in info.tensor_types
    assert caplog.messages == [
        "15 tensors of narrow.gguf could not take Q4_K_M's types and use another type instead"
    ]


def test_an_already_quantized_model_is_not_quantized_again(
    tiny_model: Path, tmp_path: Path
) -> None:
    q8 = quantize(tiny_model, tmp_path / "q8.gguf", "Q8_0").path
    with pytest.raises(UserError) as caught:
        quantize(q8, tmp_path / "q4.gguf", "Q4_K_M")
    assert str(caught.value) == (
        f"{q8} is already quantized (Q8_0); quantizing it again loses more quality than "
        "quantizing its F16 or F32 original. To do it anyway, pass --allow-requantize"
    )
    assert not (tmp_path / "q4.gguf").exists()


async def test_allow_requantize_quantizes_a_quantized_model(
    tiny_model: Path, tmp_path: Path
) -> None:
    q8 = quantize(tiny_model, tmp_path / "q8.gguf", "Q8_0").path
    info = quantize(q8, tmp_path / "q4.gguf", "Q4_0", allow_requantize=True, threads=1)
    assert info.quantization == "Q4_0"
    await generates(info.path)


def test_an_unknown_type_lists_the_valid_ones(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        quantize(tiny_model, tmp_path / "q.gguf", "Q7_X")
    assert str(caught.value) == (
        f"unknown quantization type 'Q7_X'; choose one of: {', '.join(quantization_targets())}"
    )
    assert {"Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1", "Q5_K_M", "Q5_0", "Q6_K", "Q8_0", "F16"} <= set(
        quantization_targets()
    )


def test_types_that_need_an_importance_matrix_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^IQ2_XS needs an importance matrix, which model-compose"):
        quantize(tiny_model, tmp_path / "q.gguf", "iq2_xs")
    assert "IQ2_XS" not in quantization_targets()


def test_the_output_must_be_another_file(tiny_model: Path) -> None:
    with pytest.raises(UserError) as caught:
        quantize(tiny_model, tiny_model, "F16")
    assert str(caught.value) == f"the output file must not be the input file: {tiny_model}"


def test_a_source_that_is_not_gguf_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(ModelLoadError, match=r"^not a GGUF model file"):
        quantize(path, tmp_path / "q.gguf", "Q8_0")


def test_llama_cpps_reason_for_a_failure_is_in_the_error_and_no_file_is_left(
    tmp_path: Path,
) -> None:
    import gguf
    import numpy as np

    source = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(source, "no-such-arch")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tensor("token_embd.weight", np.zeros((4, 256), np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError) as caught:
        quantize(source, tmp_path / "q.gguf", "Q8_0")
    assert str(caught.value) == (
        f"llama.cpp cannot quantize {source} to Q8_0: llama_model_quantize: failed to "
        "quantize: unknown model architecture: 'no-such-arch'"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alien.gguf"]


def test_an_output_of_the_wrong_type_is_a_runtime_failure(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_as_q8_0(path: Path) -> GGUFInfo:
        info = read_gguf_info(path)
        if path.suffix != ".part":  # the source
            return info
        return dataclasses.replace(info, file_type=7, quantization="Q8_0")

    monkeypatch.setattr(quantize_module, "read_gguf_info", read_as_q8_0)
    with pytest.raises(RuntimeFailure) as caught:
        quantize(tiny_model, tmp_path / "q.gguf", "Q4_0")
    assert str(caught.value) == f"llama.cpp wrote Q8_0 instead of Q4_0 when quantizing {tiny_model}"
    assert list(tmp_path.iterdir()) == []
