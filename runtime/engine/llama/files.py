"""llama.cpp on model files: its file-type names and its quantizer, for
`convert/` (GGUF metadata names, `model-compose quantize`)."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path

import llama_cpp

from runtime.engine.llama.log import listen_to_llama_log

# `general.file_type`'s "guessed" bit: a flag, not a type.
FTYPE_GUESSED = int(llama_cpp.LLAMA_FTYPE_GUESSED)


def llama_file_types() -> dict[str, int]:
    """llama.cpp's file types (`llama_ftype`) by name, e.g. "Q4_K_M": 15, in code order.

    From llama-cpp-python's constants, not a table of ours, so types added to
    llama.cpp keep their names when it is upgraded.
    """
    types = {}
    for constant in dir(llama_cpp):
        if constant.startswith("LLAMA_FTYPE_") and constant != "LLAMA_FTYPE_GUESSED":
            name = constant.removeprefix("LLAMA_FTYPE_MOSTLY_").removeprefix("LLAMA_FTYPE_ALL_")
            types[name] = int(getattr(llama_cpp, constant))
    return dict(sorted(types.items(), key=lambda item: item[1]))


def quantize_file(
    src: Path,
    dst: Path,
    file_type: int,
    *,
    allow_requantize: bool,
    threads: int | None,
    log: Callable[[int, str], None],
) -> int:
    """Run llama.cpp's quantizer (`llama_model_quantize`); its status (0: done).
    `log(level, text)` reads its log lines meanwhile (progress is only there)."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = file_type
    params.allow_requantize = allow_requantize
    params.nthread = threads or 0  # 0: every core
    with listen_to_llama_log(log):
        return int(
            llama_cpp.llama_model_quantize(
                str(src).encode(), str(dst).encode(), ctypes.byref(params)
            )
        )
