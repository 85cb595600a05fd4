"""What a GGUF file holds, read from its header without loading the model.

`read_gguf_info` answers `model-compose models`, the Web UI's model panel, the
memory preflight and the engine's checks before a load: architecture, size,
quantization, trained context, layers and heads.

Why not `gguf.GGUFReader`: it builds a numpy view per array element, so the
tokenizer arrays alone take 1.7 s on SmolLM2-135M (49k tokens, 49k merges) and
several seconds on a 128k-vocabulary model — on every load. This reader walks
the same format (the `gguf` package's own type codes and block sizes) over a
memory map, keeping scalar values and skipping array contents, in
milliseconds. The tests check it against `GGUFReader`.
"""

from __future__ import annotations

import collections
import mmap
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from runtime.engine.llama.files import FTYPE_GUESSED, llama_file_types
from runtime.errors import ModelFileError, ModelLoadError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)

Scalar = str | int | float | bool
# A metadata value: a scalar, or the items of a short numeric array (per-layer
# head counts and the like). String arrays and long arrays keep only their length.
Value = Scalar | tuple[int | float | bool, ...]

_T = gguf.GGUFValueType
_SCALAR_FORMATS: dict[int, str] = {
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
# Numeric arrays up to this length are read (per-layer values); longer ones
# (token types, scores) are skipped.
_MAX_READ_ARRAY = 4096
# A garbage header must not make us loop for ages.
_MAX_COUNT = 1 << 32


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
    split_count: int | None  # `split.count` for a model split over several files, else None
    split_index: int | None  # `split.no`, 0-based
    metadata: Mapping[str, Value] = field(repr=False)
    array_lengths: Mapping[str, int] = field(repr=False)
    tensor_types: Mapping[str, int] = field(repr=False)  # tensor type → elements of that type


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """The header of the GGUF file at `path`; `ModelFileError` naming the path
    if it is missing, not GGUF, corrupt or truncated (`ModelLoadError` if it
    cannot be read)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"model path is not a file: {path}")
    try:
        with path.open("rb") as file:
            size = path.stat().st_size
            if size < 4:
                raise ModelFileError(f"model file is empty or truncated, not GGUF: {path}")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _Parser(data, size).parse(path)
    except _Truncated:
        raise ModelFileError(f"model file is truncated (incomplete download?): {path}") from None
    except _Corrupt as exc:
        raise ModelFileError(f"model file has a corrupt GGUF header ({exc}): {path}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror or exc}") from exc


class _Truncated(Exception):
    pass


class _Corrupt(Exception):
    pass


@dataclass
class _Tensor:
    type: int
    elements: int
    offset: int


class _Parser:
    def __init__(self, data: mmap.mmap, size: int) -> None:
        self._data = data
        self._size = size
        self._at = 0

    def parse(self, path: Path) -> GGUFInfo:
        if self._data[:4] != GGUF_MAGIC:
            raise ModelFileError(
                f"not a GGUF model file (it does not start with the GGUF magic bytes): {path}"
            )
        self._at = 4
        (version,) = self._unpack("<I")
        if version not in SUPPORTED_VERSIONS:
            raise ModelFileError(
                f"GGUF version {version} is not supported (llama.cpp reads versions 2 and 3): "
                f"{path}"
            )
        tensor_count, kv_count = self._unpack("<QQ")
        if tensor_count > _MAX_COUNT or kv_count > _MAX_COUNT:
            raise _Corrupt(f"{tensor_count} tensors, {kv_count} metadata entries")
        metadata: dict[str, Value] = {}
        array_lengths: dict[str, int] = {}
        for _ in range(kv_count):
            key = self._string()
            (value_type,) = self._unpack("<I")
            if value_type == _T.ARRAY:
                item_type, length = self._unpack("<IQ")
                array_lengths[key] = length
                items = self._array(item_type, length)
                if items is not None:
                    metadata[key] = items
            else:
                metadata[key] = self._value(value_type)
        tensors = [self._tensor_info() for _ in range(tensor_count)]
        alignment = metadata.get("general.alignment", gguf.GGUF_DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise _Corrupt(f"alignment {alignment!r}")
        data_start = -(-self._at // alignment) * alignment
        if any(data_start + t.offset + _nbytes(t) > self._size for t in tensors):
            raise _Truncated
        return _info(path, self._size, version, metadata, array_lengths, tensors)

    def _tensor_info(self) -> _Tensor:
        self._string()  # the name
        (n_dims,) = self._unpack("<I")
        if n_dims > 8:
            raise _Corrupt(f"a tensor with {n_dims} dimensions")
        elements = 1
        for dim in self._unpack(f"<{n_dims}Q"):
            elements *= dim
        tensor_type, offset = self._unpack("<IQ")
        return _Tensor(tensor_type, elements, offset)

    def _value(self, value_type: int) -> Scalar:
        if value_type == _T.STRING:
            return self._string()
        if value_type in _SCALAR_FORMATS:
            return self._unpack(_SCALAR_FORMATS[value_type])[0]
        raise _Corrupt(f"unknown value type {value_type}")

    def _array(self, item_type: int, length: int) -> tuple[int | float | bool, ...] | None:
        if item_type in _SCALAR_FORMATS:
            fmt = _SCALAR_FORMATS[item_type]
            if length <= _MAX_READ_ARRAY:
                return self._unpack(f"<{length}{fmt[1]}")
            self._skip(length * struct.calcsize(fmt))
        elif item_type == _T.STRING:
            self._skip_strings(length)
        elif item_type == _T.ARRAY:
            for _ in range(length):  # nested arrays: rare, never needed
                inner_type, inner_length = self._unpack("<IQ")
                self._array(inner_type, inner_length)
        else:
            raise _Corrupt(f"unknown array item type {item_type}")
        return None

    def _skip_strings(self, count: int) -> None:
        # The hot loop (hundreds of thousands of tokens and merges): no method calls.
        data, at, size, unpack = self._data, self._at, self._size, struct.unpack_from
        for _ in range(count):
            if at + 8 > size:
                raise _Truncated
            at += 8 + unpack("<Q", data, at)[0]
        if at > size:
            raise _Truncated
        self._at = at

    def _string(self) -> str:
        (length,) = self._unpack("<Q")
        self._need(length)
        text = self._data[self._at : self._at + length].decode("utf-8", errors="replace")
        self._at += length
        return text

    def _unpack(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        self._need(size)
        values = struct.unpack_from(fmt, self._data, self._at)
        self._at += size
        return values

    def _skip(self, size: int) -> None:
        self._need(size)
        self._at += size

    def _need(self, size: int) -> None:
        # A length pointing beyond the end means the file was cut short (or is garbage).
        if self._at + size > self._size:
            raise _Truncated


def _nbytes(tensor: _Tensor) -> int:
    try:
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(tensor.type)]
    except (ValueError, KeyError):
        return 0  # a type newer than the gguf package: its size is unknown, assume it fits
    return tensor.elements * type_size // block


def _type_name(code: int) -> str:
    try:
        return gguf.GGMLQuantizationType(code).name
    except ValueError:
        return f"type {code}"


def _info(
    path: Path,
    size: int,
    version: int,
    metadata: dict[str, Value],
    array_lengths: dict[str, int],
    tensors: list[_Tensor],
) -> GGUFInfo:
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
        version=version,
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
        split_count=number("split.count"),
        split_index=number("split.no"),
        metadata=metadata,
        array_lengths=array_lengths,
        tensor_types=dict(tensor_types.most_common()),
    )
