"""The raw walk over a GGUF file's header: metadata and tensor descriptions,
over a memory map, with the `gguf` package's own type codes and block sizes.
Scalar values and short numeric arrays are kept; string arrays and long
arrays (the tokenizer's tokens, scores, merges) only have their length read,
which is what makes this fast (see `metadata`, which turns a `Header` into
what callers need).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from runtime.errors import ModelFileError

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


class Truncated(Exception):
    """A length points beyond the end of the file: it was cut short."""


class Corrupt(Exception):
    """A value no GGUF writer produces."""


@dataclass
class Tensor:
    type: int
    elements: int
    offset: int


@dataclass
class Header:
    version: int
    metadata: dict[str, Value]
    array_lengths: dict[str, int]
    tensors: list[Tensor]


class HeaderReader:
    def __init__(self, data: mmap.mmap, size: int) -> None:
        self._data = data
        self._size = size
        self._at = 0

    def read(self, path: Path) -> Header:
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
            raise Corrupt(f"{tensor_count} tensors, {kv_count} metadata entries")
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
            raise Corrupt(f"alignment {alignment!r}")
        data_start = -(-self._at // alignment) * alignment
        if any(data_start + t.offset + _nbytes(t) > self._size for t in tensors):
            raise Truncated
        return Header(version, metadata, array_lengths, tensors)

    def _tensor_info(self) -> Tensor:
        self._string()  # the name
        (n_dims,) = self._unpack("<I")
        if n_dims > 8:
            raise Corrupt(f"a tensor with {n_dims} dimensions")
        elements = 1
        for dim in self._unpack(f"<{n_dims}Q"):
            elements *= dim
        tensor_type, offset = self._unpack("<IQ")
        return Tensor(tensor_type, elements, offset)

    def _value(self, value_type: int) -> Scalar:
        if value_type == _T.STRING:
            return self._string()
        if value_type in _SCALAR_FORMATS:
            return self._unpack(_SCALAR_FORMATS[value_type])[0]
        raise Corrupt(f"unknown value type {value_type}")

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
            raise Corrupt(f"unknown array item type {item_type}")
        return None

    def _skip_strings(self, count: int) -> None:
        # The hot loop (hundreds of thousands of tokens and merges): no method calls.
        data, at, size, unpack = self._data, self._at, self._size, struct.unpack_from
        for _ in range(count):
            if at + 8 > size:
                raise Truncated
            at += 8 + unpack("<Q", data, at)[0]
        if at > size:
            raise Truncated
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
            raise Truncated


def _nbytes(tensor: Tensor) -> int:
    # A type newer than the gguf package: its size is unknown, assume it fits.
    return nbytes(tensor.type, tensor.elements) or 0


def nbytes(ggml_type: int | str, elements: int) -> int | None:
    """Bytes of `elements` values of a ggml type, given by code or by name
    ("Q8_0": 34 bytes per block of 32), from the `gguf` package's table;
    None for a type it does not know."""
    try:
        kind = (
            gguf.GGMLQuantizationType[ggml_type.upper()]
            if isinstance(ggml_type, str)
            else gguf.GGMLQuantizationType(ggml_type)
        )
        block, type_size = gguf.GGML_QUANT_SIZES[kind]
    except (ValueError, KeyError):
        return None
    return elements * type_size // block
