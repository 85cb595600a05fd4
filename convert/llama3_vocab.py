"""The Llama-3 BPE vocabulary that llama.cpp ships, for the SmolLM3 stand-in.

llama.cpp's source tree holds `models/ggml-vocab-llama-bpe.gguf` (7.8 MB, no
tensors): Llama-3's 128,256 tokens, their types and 280,147 merges, the
vocabulary its tokenizer tests run on. SmolLM3 uses that vocabulary with its
own special tokens, so the stand-in starts from it. The file is not ours to
commit and the Hub is out of reach, so it comes from the llama-cpp-python
source distribution that `scripts/setup` keeps in its cache
(`scripts/llama_build/wheels.py`, `sdist`): extracted from the tarball on
first use, next to it.
"""

from __future__ import annotations

import os
import struct
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import gguf

from runtime.errors import RuntimeFailure

VOCAB_FILE = "ggml-vocab-llama-bpe.gguf"
_MEMBER_SUFFIX = f"/vendor/llama.cpp/models/{VOCAB_FILE}"
_T = gguf.GGUFValueType
_FORMATS = {
    _T.UINT8: "<B",
    _T.INT8: "<b",
    _T.UINT16: "<H",
    _T.INT16: "<h",
    _T.UINT32: "<I",
    _T.INT32: "<i",
    _T.FLOAT32: "<f",
    _T.BOOL: "<?",
    _T.UINT64: "<Q",
    _T.INT64: "<q",
    _T.FLOAT64: "<d",
}


class VocabularyMissing(RuntimeFailure):
    """No llama-cpp-python source distribution to take the vocabulary from."""


@dataclass(frozen=True)
class BpeVocabulary:
    """A GPT-2 style BPE vocabulary as a GGUF file stores it."""

    tokens: tuple[str, ...]
    types: tuple[int, ...]  # gguf.TokenType values
    merges: tuple[str, ...]


def sdist_folder() -> Path:
    """Where `scripts/setup` keeps llama-cpp-python's source distribution: the
    same cache root as its wheels (`scripts/llama_build/wheels.py`, `cache_root`)."""
    if "MODEL_COMPOSE_WHEEL_CACHE" in os.environ:
        root = Path(os.environ["MODEL_COMPOSE_WHEEL_CACHE"])
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "model-compose" / "llama-cpp-python"
    return root / "sdist"


def llama3_vocab_path(folder: Path | None = None) -> Path:
    """`ggml-vocab-llama-bpe.gguf`, extracted from the cached sdist if need be."""
    folder = folder or sdist_folder()
    tarball = _pick_sdist(folder)
    target = tarball.with_name(tarball.name.removesuffix(".tar.gz") + "." + VOCAB_FILE)
    if not target.is_file():
        _extract(tarball, target)
    return target


def read_llama3_vocab(path: Path | None = None) -> BpeVocabulary:
    """The tokens, token types and merges of llama.cpp's Llama-3 vocabulary."""
    return _read(path or llama3_vocab_path())


@cache
def _read(path: Path) -> BpeVocabulary:
    # Read once per process: the tests write several stand-ins.
    arrays = _string_and_int_arrays(path.read_bytes())
    return BpeVocabulary(
        tokens=tuple(arrays["tokenizer.ggml.tokens"]),
        types=tuple(arrays["tokenizer.ggml.token_type"]),
        merges=tuple(arrays["tokenizer.ggml.merges"]),
    )


def _string_and_int_arrays(data: bytes) -> dict[str, list[Any]]:
    """The arrays in a tensor-less GGUF file's metadata (strings or numbers).

    `gguf.GGUFReader` takes 8 s over this file (it builds a numpy view per
    string); this walk takes a fraction of a second."""
    if data[:4] != b"GGUF":
        raise VocabularyMissing("the vocabulary file is not a GGUF file")
    unpack = struct.unpack_from

    def string(at: int) -> tuple[str, int]:
        (length,) = unpack("<Q", data, at)
        return data[at + 8 : at + 8 + length].decode("utf-8"), at + 8 + length

    (kv_count,) = unpack("<Q", data, 16)
    at = 24
    arrays: dict[str, list[Any]] = {}
    for _ in range(kv_count):
        key, at = string(at)
        (value_type,) = unpack("<I", data, at)
        at += 4
        if value_type == _T.STRING:
            _, at = string(at)
        elif value_type != _T.ARRAY:
            at += struct.calcsize(_FORMATS[value_type])
        else:
            item_type, count = unpack("<IQ", data, at)
            at += 12
            items: list[Any] = []
            if item_type == _T.STRING:
                for _ in range(count):
                    text, at = string(at)
                    items.append(text)
            else:
                end = at + struct.calcsize(_FORMATS[item_type]) * count
                items = [v for (v,) in struct.iter_unpack(_FORMATS[item_type], data[at:end])]
                at = end
            arrays[key] = items
    return arrays


def _pick_sdist(folder: Path) -> Path:
    """The installed llama-cpp-python's sdist, or else the newest one there."""
    try:
        wanted = folder / f"llama_cpp_python-{metadata.version('llama-cpp-python')}.tar.gz"
    except metadata.PackageNotFoundError:
        wanted = None
    if wanted is not None and wanted.is_file():
        return wanted
    found = sorted(folder.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        raise VocabularyMissing(
            f"llama.cpp's Llama-3 vocabulary comes from llama-cpp-python's source, which is not "
            f"in {folder}: run scripts/setup, which keeps it there"
        )
    return found[-1]


def _extract(tarball: Path, target: Path) -> None:
    with tarfile.open(tarball, "r:gz") as archive:
        member = next((m for m in archive if m.name.endswith(_MEMBER_SUFFIX)), None)
        source = archive.extractfile(member) if member is not None else None
        if source is None:
            raise VocabularyMissing(f"{tarball} holds no {VOCAB_FILE}")
        # Write beside the target and rename, so a reader never sees half a file.
        handle, scratch = tempfile.mkstemp(dir=target.parent, prefix=".vocab-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(source.read())
            os.replace(scratch, target)
        except BaseException:
            Path(scratch).unlink(missing_ok=True)
            raise
