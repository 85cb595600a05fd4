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

import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import gguf

from runtime.errors import RuntimeFailure

VOCAB_FILE = "ggml-vocab-llama-bpe.gguf"
_MEMBER_SUFFIX = f"/vendor/llama.cpp/models/{VOCAB_FILE}"
# The metadata arrays a BpeVocabulary holds, in its fields' order.
_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges")


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
    # Read once per process (the tests write several stand-ins), and through a
    # JSON copy kept beside the file: `gguf.GGUFReader` takes about 8 s over
    # this file (a numpy view per string), the copy a fraction of a second.
    copy = path.with_name(path.name + ".json")
    try:
        fields = json.loads(copy.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        reader = gguf.GGUFReader(path)
        fields = {key: reader.fields[key].contents() for key in _ARRAYS}
        _write_atomically(copy, json.dumps(fields).encode("utf-8"))
    return BpeVocabulary(*(tuple(fields[key]) for key in _ARRAYS))


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
        _write_atomically(target, source.read())


def _write_atomically(target: Path, data: bytes) -> None:
    """Write beside the target and rename, so a reader never sees half a file."""
    handle, scratch = tempfile.mkstemp(dir=target.parent, prefix=".vocab-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(scratch, target)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
