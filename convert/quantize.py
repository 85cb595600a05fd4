"""Quantize a GGUF file locally through llama.cpp (`model-compose quantize`).

llama-cpp-python exposes llama.cpp's own quantizer (`llama_model_quantize`),
the code behind the `llama-quantize` tool, so no external binary is needed.
llama.cpp reports progress only in its log (one line per tensor,
`[  12/ 255] blk.1.attn_q.weight - ...`); we read those lines to call
`progress`. The output is written next to the target under a temporary name
and renamed once its metadata checks out, so a failed run leaves no
half-written model behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path

from convert.metadata import LLAMA_FILE_TYPES, GGUFInfo, read_gguf_info
from runtime.engine.llama.files import quantize_file
from runtime.errors import ModelLoadError, RuntimeFailure, UserError

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

# Types whose weights are not quantized: the starting points of a quantization.
UNQUANTIZED = ("F32", "F16", "BF16")
# llama.cpp refuses these without an importance matrix (computed from sample
# text with llama-imatrix), which we do not support.
NEEDS_IMATRIX = (
    "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "Q2_K_S"
)  # fmt: skip
# Named by llama.cpp, but its quantizer cannot write them ("invalid output file type").
CANNOT_WRITE = ("NVFP4",)
# Short names llama-quantize accepts for the usual K-quant mix.
ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}

_TENSOR_LINE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]")
_GGML_LOG_WARN = 3
_GGML_LOG_ERROR = 4


def quantization_targets() -> list[str]:
    """The type names `quantize` accepts, in llama.cpp's order."""
    excluded = (*NEEDS_IMATRIX, *CANNOT_WRITE)
    return [name for name in LLAMA_FILE_TYPES if name not in excluded]


def target_type(target: str) -> str:
    """The llama.cpp type name for `target` (case-insensitive, aliases
    resolved); `UserError` listing the valid ones for anything else."""
    name = target.strip().upper()
    name = ALIASES.get(name, name)
    if name in NEEDS_IMATRIX:
        raise UserError(
            f"{name} needs an importance matrix, which model-compose cannot make; "
            f"choose another type: {', '.join(quantization_targets())}"
        )
    if name in CANNOT_WRITE:
        raise UserError(
            f"llama.cpp cannot quantize to {name}; choose another type: "
            f"{', '.join(quantization_targets())}"
        )
    if name not in LLAMA_FILE_TYPES:
        raise UserError(
            f"unknown quantization type {target!r}; choose one of: "
            f"{', '.join(quantization_targets())}"
        )
    return name


def quantize(
    src: str | Path,
    dst: str | Path,
    target: str,
    *,
    allow_requantize: bool = False,
    threads: int | None = None,
    progress: Progress | None = None,
) -> GGUFInfo:
    """Quantize the GGUF file `src` to `target` (e.g. "Q4_K_M") into `dst`.

    Blocking (seconds for a small model, minutes for 3B); run it in a thread
    from async code. `progress(done, total)` counts tensors. `threads` None
    uses every core. Returns the metadata of the file written.
    """
    name = target_type(target)
    src, dst = Path(src), Path(dst)
    source = read_gguf_info(src)
    if source.quantization not in UNQUANTIZED and not allow_requantize:
        raise UserError(
            f"{src} is already quantized ({source.quantization or 'unknown type'}); "
            f"quantizing it again "
            f"loses more quality than quantizing its F16 or F32 original. To do it "
            f"anyway, pass --allow-requantize"
        )
    if dst.resolve() == src.resolve():
        raise UserError(f"the output file must not be the input file: {dst}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(dst.name + ".part")
    try:
        _run(src, partial, name, allow_requantize, threads, progress, source.tensor_count)
        written = read_gguf_info(partial)
        if written.quantization != name:
            raise RuntimeFailure(
                f"llama.cpp wrote {written.quantization or 'an unknown type'} instead of "
                f"{name} when quantizing {src}"
            )
        partial.replace(dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return dataclasses.replace(written, path=dst)


def _run(
    src: Path,
    dst: Path,
    name: str,
    allow_requantize: bool,
    threads: int | None,
    progress: Progress | None,
    tensor_count: int,
) -> None:
    log = _QuantizeLog(progress, tensor_count)
    log.report(0, tensor_count)
    status = quantize_file(
        src,
        dst,
        LLAMA_FILE_TYPES[name],
        allow_requantize=allow_requantize,
        threads=threads,
        log=log.read,
    )
    if status != 0:
        reason = "; ".join(log.errors) or f"llama_model_quantize returned {status}"
        raise ModelLoadError(f"llama.cpp cannot quantize {src} to {name}: {reason}")
    if log.fallbacks:
        # Rows must be a multiple of the type's block (256 for K-quants):
        # llama.cpp then picks another type for that tensor.
        logger.warning(
            "%d tensors of %s could not take %s's types and use another type instead",
            log.fallbacks,
            src.name,
            name,
        )
    log.report(log.total, log.total)


class _QuantizeLog:
    """Reads llama.cpp's quantization log: progress, fallbacks and errors."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self._progress = progress
        self.total = total
        self.errors: list[str] = []
        self.fallbacks = 0
        self._reported: tuple[int, int] | None = None

    def read(self, level: int, text: str) -> None:
        if match := _TENSOR_LINE.match(text):
            index, self.total = int(match[1]), int(match[2])
            self.report(index - 1, self.total)  # tensor `index` starts: index - 1 are done
        elif level == _GGML_LOG_WARN and "falling back" in text:
            self.fallbacks += 1
        elif level == _GGML_LOG_ERROR and (line := " ".join(text.strip(" \n=").split())):
            self.errors.append(line)

    def report(self, done: int, total: int) -> None:
        if self._progress is not None and (done, total) != self._reported:
            self._reported = (done, total)
            self._progress(done, total)
