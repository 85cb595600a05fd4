"""Whether models load with llama.cpp's extra CPU buffer types.

llama.cpp's CPU backend can keep weights in "extra" buffer types: the
repacked (interleaved) Q4_0/Q4_K/IQ4_NL layouts that make decoding
fast, and, in a build compiled with AMX, the AMX layout. The AMX matmul kernel
of llama.cpp as vendored by llama-cpp-python (0.3.36 and every release before
it) crashes with SIGILL when GCC 12 compiled it: `ggml_tile_config_init`
builds its tile config on the stack, GCC drops the stores, and the first
`tilezero` faults (an upstream pull request moves it to static storage).

`scripts/setup` builds without AMX. This guard is for a llama-cpp-python
built elsewhere: when the library reports `AMX_INT8 = 1` and its version is
not known to be fixed, every model loads with `use_extra_bufts = False` (no
AMX; no repacking either, so decoding is slower), and one warning
says why and how to rebuild. The decision rests on what the library reports
(`llama_print_system_info`, its version), never on the machine's name.

MODEL_COMPOSE_EXTRA_BUFFERS=0 turns extra buffers off for every model (the
emergency fallback, and the benchmark's comparison); =1 keeps them even with
AMX, for a build you know works.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass

import llama_cpp

from runtime.errors import ModelLoadError

logger = logging.getLogger(__name__)

SETTING = "MODEL_COMPOSE_EXTRA_BUFFERS"
# The first llama-cpp-python release whose AMX kernel is fixed; None: none yet.
AMX_FIXED_IN: tuple[int, ...] | None = None
REBUILD_HINT = (
    "rebuild llama-cpp-python without AMX (scripts/setup does; by hand: CMAKE_ARGS="
    "'-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16 -DCMAKE_CXX_FLAGS=-mno-amx-tile "
    "-mno-amx-int8 -mno-amx-bf16' pip install --no-cache-dir --force-reinstall llama-cpp-python)"
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str | None = None  # why not, when the user should be warned


def system_features(text: str) -> dict[str, str]:
    """`llama_print_system_info()`'s `NAME = value` pairs (`AMX_INT8`: "1", ...)."""
    return dict(re.findall(r"(\w+) = (\w+)", text))


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def decide(
    features: dict[str, str],
    version: str,
    setting: str | None,
    fixed_in: tuple[int, ...] | None = AMX_FIXED_IN,
) -> Decision:
    """Extra buffers or not, from the library's facts and the user's setting."""
    chosen = None if setting is None else setting.strip()
    if chosen not in (None, "0", "1"):
        raise ModelLoadError(f"{SETTING} must be 0 or 1, got {setting!r}")
    if chosen == "0":
        return Decision(False)  # the user's choice: nothing to warn about
    amx = features.get("AMX_INT8") == "1"
    fixed = fixed_in is not None and version_tuple(version) >= fixed_in
    if not amx or fixed or chosen == "1":  # "1": the user vouches for this build
        return Decision(True)
    return Decision(
        False,
        f"this llama.cpp (llama-cpp-python {version}) was built with AMX (AMX_INT8 = 1), "
        "whose matmul kernel crashes with SIGILL; loading models without extra buffer "
        f"types (no AMX, no weight repacking: slower decoding). To fix it, "
        f"{REBUILD_HINT}",
    )


@functools.cache
def decision() -> Decision:
    """This process's decision: the library and the setting do not change. The
    first call logs the warning (once per process)."""
    features = system_features(llama_cpp.llama_print_system_info().decode(errors="replace"))
    made = decide(features, llama_cpp.__version__, os.environ.get(SETTING))
    if made.reason is not None:
        logger.warning("%s", made.reason)
    return made
