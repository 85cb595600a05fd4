"""The SmolLM3 stand-in's file: SmolLM3's architecture, hyperparameters,
tokenizer metadata and chat template around random weights (the facts and
their sources are in convert/smollm3_standin.py); and where its Llama-3
vocabulary comes from."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from convert.llama3_vocab import VocabularyMissing, llama3_vocab_path, read_llama3_vocab
from convert.metadata import read_gguf_info
from convert.smollm3_standin import (
    SMOLLM3_3B,
    SMOLLM3_TINY,
    TEMPLATE_FILE,
    USER_DEFINED_IDS,
    chat_template,
    special_token,
    write_smollm3_standin,
)
from convert.synthetic import LlamaDims

# What the real file embeds (ggml-org/SmolLM3-3B-GGUF, SmolLM3-Q8_0.gguf at
# revision 4965cb60, as karan68/Camelid's inspection receipts record it).
TEMPLATE_BYTES = 5493
TEMPLATE_SHA256 = "b9b66f04c64fbb8695cf5b35c37780efd0b8e0829fbfe3e30fafb9f469b7d30e"


def test_the_chat_template_is_the_ggml_org_ggufs_byte_for_byte() -> None:
    data = (Path(__file__).parents[2] / "convert" / TEMPLATE_FILE).read_bytes()
    assert len(data) == TEMPLATE_BYTES
    assert hashlib.sha256(data).hexdigest() == TEMPLATE_SHA256
    assert chat_template().encode() == data


def test_the_stand_in_has_smollm3s_metadata(smollm3_model_path: Path) -> None:
    info = read_gguf_info(smollm3_model_path)
    meta = info.metadata
    assert info.architecture == "smollm3"
    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["tokenizer.ggml.pre"] == "smaug-bpe"
    assert meta["tokenizer.ggml.bos_token_id"] == 128000
    assert meta["tokenizer.ggml.eos_token_id"] == 128012
    assert meta["tokenizer.ggml.padding_token_id"] == 128012
    # Absent, as in the real file: llama.cpp then adds no BOS for smaug-bpe.
    assert "tokenizer.ggml.add_bos_token" not in meta
    assert "tokenizer.ggml.add_eos_token" not in meta
    assert meta["tokenizer.chat_template"] == chat_template()
    assert info.array_lengths["tokenizer.ggml.tokens"] == 128256
    assert info.array_lengths["tokenizer.ggml.merges"] == 280147
    assert meta["smollm3.rope.freq_base"] == 5_000_000.0
    assert meta["smollm3.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-6)
    assert meta["smollm3.rope.dimension_count"] == 128  # heads of 128, as SmolLM3's
    assert info.context_length == 65536
    # 9 tensors a layer, token_embd and output_norm: no output.weight (tied).
    assert info.tensor_count == 4 * 9 + 2
    assert info.parameter_count == SMOLLM3_TINY.parameter_count


def test_the_3b_preset_has_the_real_files_tensors_and_hyperparameters() -> None:
    shapes = dict(SMOLLM3_3B.tensor_shapes())
    assert len(shapes) == 326  # as in HuggingFaceTB_SmolLM3-3B-Q4_K_M.gguf
    assert "output.weight" not in shapes
    assert shapes["token_embd.weight"] == (128256, 2048)
    assert shapes["blk.35.attn_k.weight"] == (512, 2048)
    assert shapes["blk.0.ffn_up.weight"] == (11008, 2048)
    assert SMOLLM3_3B.head_dim == 128
    assert (SMOLLM3_3B.n_ctx_train, SMOLLM3_3B.rope_freq_base) == (65536, 5e6)
    assert round(SMOLLM3_3B.parameter_count / 1e9, 2) == 3.08


def test_special_tokens_sit_at_smollm3s_ids_with_llama_31s_reserved_names() -> None:
    assert [special_token(i) for i in (128002, 128003, 128011, 128012, 128015, 128016)] == [
        "<think>",
        "</think>",
        "<|im_start|>",
        "<|im_end|>",
        "<tool_call>",
        "</tool_call>",
    ]
    assert special_token(128004) == "<|finetune_right_pad_id|>"
    assert special_token(128005) == "<|reserved_special_token_2|>"
    assert special_token(128019) == "<|reserved_special_token_11|>"
    assert special_token(128255) == "<|reserved_special_token_247|>"
    assert sorted(USER_DEFINED_IDS) == [128002, 128003, *range(128013, 128019)]


def test_the_stand_in_takes_llama_cpps_llama_3_vocabulary_below_128000() -> None:
    vocab = read_llama3_vocab()
    assert len(vocab.tokens) == 128256 and len(vocab.merges) == 280147
    assert vocab.tokens[9906] == "Hello"
    assert set(vocab.types[:128000]) == {1}  # NORMAL
    # llama.cpp's file is Llama-3's: its specials are not SmolLM3's.
    assert vocab.tokens[128011] == "<|reserved_special_token_6|>"


def test_a_stand_in_needs_the_whole_vocabulary(tmp_path: Path) -> None:
    small = LlamaDims(1, 256, 256, 2, 1, 1000, 64)
    with pytest.raises(ValueError, match="SmolLM3's 128256 tokens, not 1000"):
        write_smollm3_standin(tmp_path / "x.gguf", small)


def _sdist(folder: Path, version: str, vocab: bytes | None) -> Path:
    """A stand-in llama-cpp-python sdist holding `vocab` as llama.cpp's file."""
    tarball = folder / f"llama_cpp_python-{version}.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        members = {f"llama_cpp_python-{version}/README.md": b"readme"}
        if vocab is not None:
            name = f"llama_cpp_python-{version}/vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf"
            members[name] = vocab
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return tarball


def test_the_vocabulary_is_extracted_from_the_cached_sdist_once(tmp_path: Path) -> None:
    _sdist(tmp_path, "0.0.1", b"GGUF vocabulary")
    path = llama3_vocab_path(tmp_path)
    assert path == tmp_path / "llama_cpp_python-0.0.1.ggml-vocab-llama-bpe.gguf"
    assert path.read_bytes() == b"GGUF vocabulary"
    path.write_bytes(b"kept")
    assert llama3_vocab_path(tmp_path).read_bytes() == b"kept"  # not extracted again


def test_without_the_sdist_the_error_says_to_run_setup(tmp_path: Path) -> None:
    message = r"Llama-3 vocabulary .* not in .*: run scripts/setup, which keeps it there"
    with pytest.raises(VocabularyMissing, match=message):
        llama3_vocab_path(tmp_path)
    _sdist(tmp_path, "0.0.1", None)
    with pytest.raises(VocabularyMissing, match=r"holds no ggml-vocab-llama-bpe\.gguf"):
        llama3_vocab_path(tmp_path)


def test_setup_keeps_the_sdist_where_the_stand_in_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    from convert.llama3_vocab import sdist_folder
    from scripts.llama_build.wheels import sdist_path

    monkeypatch.setenv("MODEL_COMPOSE_WHEEL_CACHE", "/somewhere")
    assert sdist_path("1.2.3").parent == sdist_folder() == Path("/somewhere/sdist")
    monkeypatch.delenv("MODEL_COMPOSE_WHEEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/cache")
    assert sdist_path().parent == sdist_folder()


SCRIPT = Path(__file__).parents[2] / "scripts" / "make-synthetic-model"


def test_the_script_writes_a_quantized_stand_in(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(SCRIPT), "--preset", "smollm3-tiny", "--quant", "Q4_K_M", "smol.gguf"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("wrote smol.gguf: Q4_K_M, ")
    info = read_gguf_info(tmp_path / "smol.gguf")
    assert (info.architecture, info.name) == ("smollm3", "synthetic-smollm3-tiny")
    assert info.metadata["tokenizer.chat_template"] == chat_template()
