"""Synthetic models: llama.cpp loads them, prompt and chat requests run, and
the presets have the shapes they claim."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

from convert import synthetic
from convert.presets import write_preset
from convert.smollm3_standin import SMOLLM3_3B
from convert.synthetic import TINY, LlamaDims, write_llama_gguf, write_model
from runtime.engine.batched import BatchedEngine
from runtime.engine.types import (
    ChatMessage,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelSpec,
    SamplingParams,
)
from tests.convert.conftest import TinyModelFactory

GREEDY = SamplingParams(greedy=True)


async def generate(engine: BatchedEngine, request: GenerationRequest) -> GenerationResult:
    generation = engine.submit(request)
    async for _ in generation:
        pass
    return await generation.result()


@pytest.fixture(scope="module")
def tiny_engine(tiny_model: Path) -> Iterator[BatchedEngine]:
    engine = BatchedEngine.load(ModelSpec(str(tiny_model)))
    yield engine
    engine.shutdown()


def test_the_tiny_model_has_every_llama_tensor_with_its_shape(tiny_model: Path) -> None:
    reader = gguf.GGUFReader(tiny_model)
    shapes = {t.name: tuple(int(n) for n in reversed(t.shape.tolist())) for t in reader.tensors}
    assert shapes == dict(TINY.tensor_shapes())
    assert {"token_embd.weight", "output_norm.weight", "output.weight"} <= shapes.keys()
    assert shapes["blk.1.attn_k.weight"] == (2 * 64, 256)  # 2 KV heads of 64
    assert shapes["blk.0.ffn_down.weight"] == (256, 256)
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.F16
    assert types["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32


def test_the_tiny_model_is_a_couple_of_megabytes(tiny_model: Path) -> None:
    assert TINY.parameter_count == 951_552
    assert 1_900_000 < tiny_model.stat().st_size < 2_000_000


async def test_the_tiny_model_loads_and_continues_a_prompt(tiny_engine: BatchedEngine) -> None:
    assert tiny_engine.info.trained_context_length == 256
    assert tiny_engine.info.context_length == 256
    assert tiny_engine.info.name == "tiny"
    result = await generate(
        tiny_engine, GenerationRequest(prompt="Once upon a time", sampling=GREEDY, max_tokens=8)
    )
    assert result.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert 1 <= result.usage.completion_tokens <= 8
    assert result.usage.prompt_tokens > 0


async def test_the_tiny_model_answers_a_chat_request(tiny_engine: BatchedEngine) -> None:
    request = GenerationRequest(
        messages=[ChatMessage("system", "Be brief."), ChatMessage("user", "Hi!")],
        sampling=GREEDY,
        max_tokens=8,
    )
    prompt = tiny_engine.chat_template.render(request.messages or [])
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    result = await generate(tiny_engine, request)
    assert result.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)


def test_the_tokenizer_knows_the_chatml_tokens_and_every_byte(tiny_engine: BatchedEngine) -> None:
    model = tiny_engine.model
    assert model.encode("<|im_start|>") == [synthetic.BOS_ID]
    assert model.is_eog(synthetic.EOS_ID)
    text = "the café\n"
    assert b"".join(model.token_bytes(t) for t in model.encode(text)) == text.encode()
    # The merges apply: " the" is one token.
    assert len(model.encode(" the")) == 1


def test_the_same_seed_writes_the_same_weights(tmp_path: Path) -> None:
    first = write_llama_gguf(tmp_path / "a.gguf", n_layers=1)
    second = write_llama_gguf(tmp_path / "b.gguf", n_layers=1)
    other = write_llama_gguf(tmp_path / "c.gguf", n_layers=1, seed=1)
    assert first.read_bytes() == second.read_bytes() != other.read_bytes()


def test_an_f32_model_stores_its_matrices_in_f32(tmp_path: Path) -> None:
    path = write_llama_gguf(tmp_path / "f32.gguf", file_type="F32")
    reader = gguf.GGUFReader(path)
    assert {t.tensor_type.name for t in reader.tensors} == {"F32"}
    assert int(reader.fields["general.file_type"].contents()) == 0
    embeddings = reader.tensors[0].data
    assert np.isfinite(embeddings).all() and 0.015 < float(embeddings.std()) < 0.025


def test_tied_embeddings_leave_out_the_output_matrix(
    tiny_model_factory: TinyModelFactory,
) -> None:
    path = tiny_model_factory(tied_embeddings=True)
    names = {t.name for t in gguf.GGUFReader(path).tensors}
    assert "output.weight" not in names and "token_embd.weight" in names
    BatchedEngine.load(ModelSpec(str(path))).shutdown()


def test_large_tensors_repeat_one_block_of_random_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The path the 3B preset takes for every matrix, on a small scale.
    monkeypatch.setattr(synthetic, "_RANDOM_BLOCK", 1009)
    path = write_llama_gguf(tmp_path / "tiled.gguf", n_layers=1)
    reader = gguf.GGUFReader(path)
    values = next(t for t in reader.tensors if t.name == "blk.0.ffn_up.weight").data.ravel()
    assert np.array_equal(values[:1009], values[1009:2018])
    BatchedEngine.load(ModelSpec(str(path))).shutdown()


def test_progress_counts_the_bytes_of_tensor_data(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    write_llama_gguf(tmp_path / "m.gguf", n_layers=1, progress=lambda *c: calls.append(c))
    total = calls[-1][1]
    assert calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) == len(list(TINY.tensor_shapes())) - 9  # one layer fewer


def test_the_smollm3_preset_has_smollm3s_shapes() -> None:
    shapes = dict(SMOLLM3_3B.tensor_shapes())
    assert shapes["token_embd.weight"] == (128256, 2048)
    assert shapes["blk.35.attn_q.weight"] == (2048, 2048)
    assert shapes["blk.35.attn_k.weight"] == (512, 2048)  # 4 KV heads of 128
    assert shapes["blk.0.ffn_down.weight"] == (2048, 11008)
    assert "output.weight" not in shapes  # SmolLM3 ties its embeddings
    assert round(SMOLLM3_3B.parameter_count / 1e9, 2) == 3.08


def test_presets_are_written_by_name(tmp_path: Path) -> None:
    path = write_preset(tmp_path / "tiny.gguf", "tiny")
    assert gguf.GGUFReader(path).fields["general.name"].contents() == "synthetic-tiny"
    message = "unknown preset 'huge'; use one of: smollm3-3b, smollm3-tiny, tiny"
    with pytest.raises(ValueError, match=message):
        write_preset(tmp_path / "x.gguf", "huge")


def test_impossible_dimensions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_embd must be a multiple of n_head"):
        write_model(tmp_path / "x.gguf", LlamaDims(1, 100, 64, 3, 1, 300, 64))
    with pytest.raises(ValueError, match="n_vocab must be at least 271"):
        write_llama_gguf(tmp_path / "x.gguf", n_vocab=100)
    with pytest.raises(ValueError, match="file_type must be one of F32, F16, not 'Q8_0'"):
        write_llama_gguf(tmp_path / "x.gguf", file_type="Q8_0")


SCRIPT = Path(__file__).parents[2] / "scripts" / "make-synthetic-model"


def test_the_script_writes_a_preset_and_quantizes_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(SCRIPT), "--preset", "tiny", "--quant", "q8_0", "tiny.gguf"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("wrote tiny.f16.gguf: F16, 1.9 MB, 1.0M parameters, ")
    assert lines[1].startswith("wrote tiny.gguf: Q8_0, 1.0 MB, ")
    assert result.stderr == ""  # no progress meter when stderr is not a terminal
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.gguf"]  # the F16 file is gone


def test_the_script_refuses_an_unknown_type_before_writing_anything(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(SCRIPT), "--quant", "Q9", "big.gguf"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: unknown quantization type 'Q9'; choose one of: F32,")
    assert list(tmp_path.iterdir()) == []
