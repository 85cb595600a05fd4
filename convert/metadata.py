"""What a GGUF file holds, read from its header without loading the model.

`read_gguf_info` answers `model-compose models`, the Web UI's model panel, the
memory preflight and the engine's checks before a load: architecture, size,
quantization, trained context, layers and heads.

Why not `gguf.GGUFReader`: it builds a numpy view per array element, so the
tokenizer arrays alone take 1.7 s on SmolLM2-135M (49k tokens, 49k merges) and
several seconds on a 128k-vocabulary model — on every load. Our reader
(`gguf_header`) walks the same format over a memory map, keeping scalar
values and skipping array contents, in milliseconds. The tests check it
against `GGUFReader`.
"""

from __future__ import annotations

import collections
import functools
import mmap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import gguf

from convert.gguf_header import Corrupt, Header, HeaderReader, Truncated, Value, nbytes
from runtime.engine.llama.files import FTYPE_GUESSED, llama_file_types
from runtime.errors import ModelFileError, ModelLoadError

# llama.cpp's file types (`llama_ftype`, `general.file_type`) by name, e.g. "Q4_K_M": 15.
LLAMA_FILE_TYPES: Mapping[str, int] = llama_file_types()
_FILE_TYPE_NAMES = {code: name for name, code in LLAMA_FILE_TYPES.items()}


def quantization_name(file_type: object) -> str | None:
    """GGUF `general.file_type` (llama.cpp's `llama_ftype`) → its name, e.g.
    3 → "Q4_1"; None for a missing or unknown value."""
    try:
        code = int(str(file_type))
    except ValueError:
        return None
    code &= ~FTYPE_GUESSED
    return _FILE_TYPE_NAMES.get(code)


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    file_size: int
    version: int
    architecture: str | None
    name: str | None
    tensor_count: int
    parameter_count: int  # elements of the tensors in this file (one shard of a split model)
    file_type: int | None  # `general.file_type`
    # "Q4_K_M", "F16"...: from `file_type`, else the type holding most weights
    # (then a tensor type name such as "Q4_K", without llama.cpp's _S/_M mix).
    quantization: str | None
    context_length: int | None  # the trained context, `{arch}.context_length`
    n_layers: int | None
    n_heads: int | None  # the largest, for models with per-layer counts
    n_kv_heads: int | None  # n_heads when the file does not say
    n_embd: int | None
    head_dim: int | None  # `{arch}.attention.key_length`, else n_embd / n_heads
    n_vocab: int | None
    n_ff: int | None  # `{arch}.feed_forward_length`: the largest, for per-layer values
    split_count: int | None  # `split.count` for a model split over several files, else None
    split_index: int | None  # `split.no`, 0-based
    metadata: Mapping[str, Value] = field(repr=False)
    array_lengths: Mapping[str, int] = field(repr=False)
    tensor_types: Mapping[str, int] = field(repr=False)  # tensor type → elements of that type

    @property
    def tensor_bytes(self) -> int | None:
        """Bytes of the tensors' data: the file less its metadata (which, with
        a 128k-token vocabulary, is about 8 MB); None when a type's size is unknown."""
        sizes = [nbytes(kind, elements) for kind, elements in self.tensor_types.items()]
        return None if None in sizes else sum(size or 0 for size in sizes)


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """The header of the GGUF file at `path`; `ModelFileError` naming the path
    if it is missing, not GGUF, corrupt or truncated (`ModelLoadError` if it
    cannot be read)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"model path is not a file: {path}")
    # A load reads the header twice (the pool's spec, then the load's checks):
    # with a 128k-token vocabulary that is 0.15 s each, so the same unchanged
    # file is read once.
    stat = path.stat()
    return _read_header(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _read_header(path: Path, size: int, mtime_ns: int) -> GGUFInfo:
    try:
        with path.open("rb") as file:
            if size < 4:
                raise ModelFileError(f"model file is empty or truncated, not GGUF: {path}")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                header = HeaderReader(data, size).read(path)
    except Truncated:
        raise ModelFileError(f"model file is truncated (incomplete download?): {path}") from None
    except Corrupt as exc:
        raise ModelFileError(f"model file has a corrupt GGUF header ({exc}): {path}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    return _info(path, size, header)


def _type_name(code: int) -> str:
    try:
        return gguf.GGMLQuantizationType(code).name
    except ValueError:
        return f"type {code}"


def _info(path: Path, size: int, header: Header) -> GGUFInfo:
    metadata, array_lengths, tensors = header.metadata, header.array_lengths, header.tensors

    def text(key: str) -> str | None:
        value = metadata.get(key)
        return value if isinstance(value, str) else None

    def number(key: str) -> int | None:
        value = metadata.get(key)
        if isinstance(value, tuple):  # per-layer values
            value = max((v for v in value if isinstance(v, int)), default=None)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    arch = text("general.architecture")
    tensor_types: collections.Counter[str] = collections.Counter()
    for tensor in tensors:
        tensor_types[_type_name(tensor.type)] += tensor.elements
    file_type = number("general.file_type")
    quantization = quantization_name(file_type) if file_type is not None else None
    if quantization is None and tensor_types:
        quantization = tensor_types.most_common(1)[0][0]
    n_embd = number(f"{arch}.embedding_length")
    n_heads = number(f"{arch}.attention.head_count")
    head_dim = number(f"{arch}.attention.key_length")
    if head_dim is None and n_embd and n_heads:
        head_dim = n_embd // n_heads
    return GGUFInfo(
        path=path,
        file_size=size,
        version=header.version,
        architecture=arch,
        name=text("general.name"),
        tensor_count=len(tensors),
        parameter_count=sum(t.elements for t in tensors),
        file_type=file_type,
        quantization=quantization,
        context_length=number(f"{arch}.context_length"),
        n_layers=number(f"{arch}.block_count"),
        n_heads=n_heads,
        n_kv_heads=number(f"{arch}.attention.head_count_kv") or n_heads,
        n_embd=n_embd,
        head_dim=head_dim,
        n_vocab=number(f"{arch}.vocab_size") or array_lengths.get("tokenizer.ggml.tokens"),
        n_ff=number(f"{arch}.feed_forward_length"),
        split_count=number("split.count"),
        split_index=number("split.no"),
        metadata=metadata,
        array_lengths=array_lengths,
        tensor_types=dict(tensor_types.most_common()),
    )
