import struct
from pathlib import Path

import pytest

from runtime.engine.gguf_header import read_gguf_header
from runtime.errors import ModelLoadError


def gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def kv_string(key: str, value: str) -> bytes:
    return gguf_string(key) + struct.pack("<I", 8) + gguf_string(value)


def kv_u32(key: str, value: int) -> bytes:
    return gguf_string(key) + struct.pack("<I", 4) + struct.pack("<I", value)


def kv_string_array(key: str, values: list[str]) -> bytes:
    body = b"".join(gguf_string(v) for v in values)
    return gguf_string(key) + struct.pack("<IIQ", 9, 8, len(values)) + body


def write_gguf(path: Path, kvs: list[bytes]) -> Path:
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs))
    return path


def test_the_header_gives_architecture_name_and_trained_context(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "m.gguf",
        [
            kv_string("general.architecture", "llama"),
            kv_string_array("tokenizer.ggml.tokens", ["a", "b", "c"]),
            kv_string("general.name", "Tiny"),
            kv_u32("llama.context_length", 2048),
        ],
    )
    header = read_gguf_header(path)
    assert (header.architecture, header.name, header.context_length) == ("llama", "Tiny", 2048)
    assert header.version == 3


def test_a_missing_file_is_a_load_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"not found.*nope\.gguf"):
        read_gguf_header(tmp_path / "nope.gguf")


def test_a_directory_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a file"):
        read_gguf_header(tmp_path)


def test_a_file_without_the_magic_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b'{"not": "gguf"}' * 10)
    with pytest.raises(ModelLoadError, match=r"not a GGUF model file.*model\.safetensors"):
        read_gguf_header(path)


def test_an_empty_file_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"empty or truncated.*empty\.gguf"):
        read_gguf_header(path)


def test_a_header_cut_short_is_truncated(tmp_path: Path) -> None:
    full = write_gguf(
        tmp_path / "full.gguf",
        [kv_string("general.architecture", "llama"), kv_string("general.name", "x" * 100)],
    )
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(full.read_bytes()[:60])
    with pytest.raises(ModelLoadError, match=r"truncated.*cut\.gguf"):
        read_gguf_header(cut)
