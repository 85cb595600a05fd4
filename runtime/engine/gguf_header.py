"""Read the few GGUF header fields the engine needs before loading a model.

llama.cpp's own errors for a file that is not GGUF at all are obscure, and the
default context length (the trained one, capped) must be known before the
context is created. Reading the start of the file in Python answers both
without loading the model twice. Only the metadata key/value section is read,
and reading stops as soon as the wanted keys are found.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runtime.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"

# GGUF value types → struct format of one scalar (strings and arrays are special).
_SCALARS: dict[int, str] = {
    0: "<B",  # uint8
    1: "<b",  # int8
    2: "<H",  # uint16
    3: "<h",  # int16
    4: "<I",  # uint32
    5: "<i",  # int32
    6: "<f",  # float32
    7: "<?",  # bool
    10: "<Q",  # uint64
    11: "<q",  # int64
    12: "<d",  # float64
}
_STRING = 8
_ARRAY = 9
# A garbage header must not make us loop for ages.
_MAX_KV = 1 << 20


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    tensor_count: int
    architecture: str | None
    name: str | None
    context_length: int | None  # the model's trained context, `{arch}.context_length`


class _Truncated(Exception):
    pass


class _Corrupt(Exception):
    pass


def read_gguf_header(path: str | Path) -> GGUFHeader:
    """The header of the GGUF file at `path`; `ModelLoadError` if it is not one."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    try:
        with path.open("rb") as file:
            return _Reader(file).read_header(path)
    except _Truncated:
        raise ModelLoadError(f"model file is truncated (incomplete download?): {path}") from None
    except _Corrupt as exc:
        raise ModelLoadError(f"model file has a corrupt GGUF header ({exc}): {path}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror or exc}") from exc


class _Reader:
    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._size = os.fstat(file.fileno()).st_size

    def read_header(self, path: Path) -> GGUFHeader:
        magic = self._file.read(4)
        if magic != GGUF_MAGIC:
            if len(magic) < 4:
                raise ModelLoadError(f"model file is empty or truncated, not GGUF: {path}")
            raise ModelLoadError(
                f"not a GGUF model file (it does not start with the GGUF magic bytes): {path}"
            )
        (version,) = self._unpack("<I")
        if version < 2:
            raise ModelLoadError(f"GGUF version {version} is too old for llama.cpp: {path}")
        tensor_count, kv_count = self._unpack("<QQ")
        if kv_count > _MAX_KV:
            raise _Corrupt(f"{kv_count} metadata entries")

        found: dict[str, object] = {}
        arch: str | None = None
        for _ in range(kv_count):
            key = self._read_string()
            (value_type,) = self._unpack("<I")
            if key in ("general.architecture", "general.name") or key == f"{arch}.context_length":
                found[key] = self._read_value(value_type)
                if key == "general.architecture" and isinstance(found[key], str):
                    arch = str(found[key])
            else:
                self._skip_value(value_type)
            if arch and {"general.name", f"{arch}.context_length"} <= found.keys():
                break

        name = found.get("general.name")
        context_length = found.get(f"{arch}.context_length")
        return GGUFHeader(
            version=version,
            tensor_count=tensor_count,
            architecture=arch,
            name=name if isinstance(name, str) else None,
            context_length=context_length if isinstance(context_length, int) else None,
        )

    def _unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        data = self._file.read(size)
        if len(data) < size:
            raise _Truncated
        return struct.unpack(fmt, data)

    def _read_string(self) -> str:
        (length,) = self._unpack("<Q")
        self._check_room(length)
        return self._file.read(length).decode("utf-8", errors="replace")

    def _read_value(self, value_type: int) -> object:
        if value_type == _STRING:
            return self._read_string()
        if value_type in _SCALARS:
            return self._unpack(_SCALARS[value_type])[0]
        self._skip_value(value_type)
        return None

    def _skip_value(self, value_type: int) -> None:
        if value_type == _STRING:
            (length,) = self._unpack("<Q")
            self._skip(length)
        elif value_type in _SCALARS:
            self._skip(struct.calcsize(_SCALARS[value_type]))
        elif value_type == _ARRAY:
            item_type, count = self._unpack("<IQ")
            if item_type in _SCALARS:
                self._skip(count * struct.calcsize(_SCALARS[item_type]))
            else:
                for _ in range(count):
                    self._skip_value(item_type)
        else:
            raise _Corrupt(f"unknown value type {value_type}")

    def _skip(self, size: int) -> None:
        self._check_room(size)
        self._file.seek(size, os.SEEK_CUR)

    def _check_room(self, size: int) -> None:
        # Seeking past the end succeeds silently; a length pointing beyond the
        # file means the file was cut short (or is garbage).
        if self._file.tell() + size > self._size:
            raise _Truncated
