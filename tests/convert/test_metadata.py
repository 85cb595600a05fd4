"""GGUF metadata read without loading the model, and clear errors for files
that are not GGUF models."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from convert.metadata import GGUFInfo, quantization_name, read_gguf_info
from runtime.errors import ModelLoadError
from tests.convert.conftest import TinyModelFactory


def write_gguf(path: Path, arch: str = "llama", **keys: int | str | list[int]) -> Path:
    """A GGUF file with the given `{arch}.*` keys (`_` for `.`) and two small tensors."""
    writer = gguf.GGUFWriter(path, arch)
    for key, value in keys.items():
        name = key.replace("__", ".")
        if isinstance(value, str):
            writer.add_string(name, value)
        elif isinstance(value, list):
            writer.add_array(name, value)
        else:
            writer.add_uint32(name, value)
    writer.add_tensor("a.weight", np.zeros((4, 64), np.float16))
    writer.add_tensor("b.weight", np.zeros(64, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_every_field_of_the_tiny_model_is_read(tiny_model: Path) -> None:
    info = read_gguf_info(tiny_model)
    assert info == GGUFInfo(
        path=tiny_model,
        file_size=tiny_model.stat().st_size,
        version=3,
        architecture="llama",
        name="tiny",
        tensor_count=21,
        parameter_count=951_552,
        file_type=1,
        quantization="F16",
        context_length=256,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        n_embd=256,
        head_dim=64,
        n_vocab=320,
        n_ff=256,
        split_count=None,
        split_index=None,
        metadata=info.metadata,
        array_lengths=info.array_lengths,
        tensor_types={"F16": 950_272, "F32": 1280},
    )
    # The tensors' data alone, without the metadata or the alignment padding.
    assert info.tensor_bytes == 950_272 * 2 + 1280 * 4
    assert info.metadata["tokenizer.ggml.model"] == "gpt2"
    assert info.array_lengths["tokenizer.ggml.tokens"] == 320


def test_the_metadata_agrees_with_the_gguf_packages_reader(
    tiny_model_factory: TinyModelFactory,
) -> None:
    path = tiny_model_factory(quant="Q4_K_M")
    info = read_gguf_info(path)
    reader = gguf.GGUFReader(path)
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            assert info.array_lengths[key] == len(field.data), key
        else:
            assert info.metadata[key] == pytest.approx(field.contents()), key
    keys = info.metadata.keys() | info.array_lengths.keys()
    assert len(keys) == len(reader.fields) - 3  # GGUF.version, tensor_count, kv_count
    assert info.parameter_count == sum(int(t.n_elements) for t in reader.tensors)
    assert info.tensor_count == len(reader.tensors)
    assert (info.quantization, info.file_type) == ("Q4_K_M", 15)
    assert info.tensor_types.keys() == {"Q4_K", "Q6_K", "F32"}


def test_the_embedded_models_metadata(embedded_model_path: Path) -> None:
    info = read_gguf_info(embedded_model_path)
    assert (info.architecture, info.quantization, info.context_length) == ("llama", "Q4_1", 8192)
    assert (info.n_layers, info.n_heads, info.n_kv_heads) == (30, 9, 3)
    assert (info.n_embd, info.head_dim, info.n_vocab) == (576, 64, 49152)
    assert info.parameter_count == 134_515_008
    assert info.file_size == 98_362_432


def test_the_quantization_is_named_from_llama_cpps_file_types() -> None:
    assert quantization_name(15) == "Q4_K_M"
    assert quantization_name("0") == "F32"
    assert quantization_name(1024 | 7) == "Q8_0"  # llama.cpp's "guessed" flag
    assert quantization_name(None) is None
    assert quantization_name(9999) is None


def test_without_a_file_type_the_quantization_is_the_type_of_most_weights(tmp_path: Path) -> None:
    info = read_gguf_info(write_gguf(tmp_path / "m.gguf"))
    assert (info.file_type, info.quantization) == (None, "F16")
    assert info.tensor_types == {"F16": 256, "F32": 64}


def test_missing_keys_are_none_and_kv_heads_default_to_heads(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "m.gguf",
        llama__attention__head_count=8,
        llama__embedding_length=512,
        tokenizer__ggml__tokens=["a", "b", "c"],  # type: ignore[arg-type]
    )
    info = read_gguf_info(path)
    assert (info.n_heads, info.n_kv_heads, info.head_dim, info.n_vocab) == (8, 8, 64, 3)
    assert (info.name, info.context_length, info.n_layers) == (None, None, None)


def test_an_explicit_key_length_is_the_head_dimension(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "m.gguf",
        llama__attention__head_count=8,
        llama__embedding_length=512,
        llama__attention__key_length=128,
    )
    assert read_gguf_info(path).head_dim == 128


def test_per_layer_head_counts_give_the_largest(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", "openelm", openelm__attention__head_count=[4, 8, 12])
    info = read_gguf_info(path)
    assert info.n_heads == 12
    assert info.metadata["openelm.attention.head_count"] == (4, 8, 12)


def test_split_files_say_which_part_they_are(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m-00002-of-00003.gguf", split__count=3, split__no=1)
    info = read_gguf_info(path)
    assert (info.split_count, info.split_index) == (3, 1)
    assert read_gguf_info(write_gguf(tmp_path / "whole.gguf")).split_count is None


# -- files that are not (whole) GGUF models ---------------------------------------


def test_a_missing_file_is_a_load_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.gguf"
    with pytest.raises(ModelLoadError) as caught:
        read_gguf_info(path)
    assert str(caught.value) == f"model file not found: {path}"


def test_a_directory_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as caught:
        read_gguf_info(tmp_path)
    assert str(caught.value) == f"model path is not a file: {tmp_path}"


def test_a_file_without_the_magic_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b'{"not": "gguf"}' * 10)
    with pytest.raises(ModelLoadError) as caught:
        read_gguf_info(path)
    assert str(caught.value) == (
        f"not a GGUF model file (it does not start with the GGUF magic bytes): {path}"
    )


def test_an_empty_file_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError) as caught:
        read_gguf_info(path)
    assert str(caught.value) == f"model file is empty or truncated, not GGUF: {path}"


@pytest.mark.parametrize("keep", [6, 60, 5_000, 1_000_000])
def test_a_file_cut_short_anywhere_is_truncated(
    tiny_model: Path, tmp_path: Path, keep: int
) -> None:
    # In the header, in the tokenizer's arrays, in the tensor data.
    path = tmp_path / "cut.gguf"
    with tiny_model.open("rb") as source, path.open("wb") as target:
        shutil.copyfileobj(source, target)
        target.truncate(keep)
    with pytest.raises(ModelLoadError) as caught:
        read_gguf_info(path)
    assert str(caught.value) == f"model file is truncated (incomplete download?): {path}"


def test_an_unknown_gguf_version_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "v9.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<I", 9) + tiny_model.read_bytes()[8:])
    with pytest.raises(ModelLoadError) as caught:
        read_gguf_info(path)
    assert str(caught.value) == (
        f"GGUF version 9 is not supported (llama.cpp reads versions 2 and 3): {path}"
    )


def test_a_garbage_value_type_is_a_corrupt_header(tmp_path: Path) -> None:
    key = b"general.name"
    path = tmp_path / "garbage.gguf"
    path.write_bytes(
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<I", 99)
        + b"\0" * 64
    )
    with pytest.raises(ModelLoadError) as caught:
        read_gguf_info(path)
    assert str(caught.value) == (
        f"model file has a corrupt GGUF header (unknown value type 99): {path}"
    )
