"""The models `scripts/make-synthetic-model --preset NAME` writes (random weights)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from convert.smollm3_standin import SMOLLM3_3B, SMOLLM3_TINY, write_smollm3_standin
from convert.synthetic import TINY, LlamaDims, write_model


@dataclass(frozen=True)
class Preset:
    dims: LlamaDims
    # SmolLM3's architecture, tokenizer and chat template (convert.smollm3_standin);
    # else a plain llama with the byte-level vocabulary (convert.synthetic).
    smollm3: bool
    about: str


PRESETS: dict[str, Preset] = {
    "smollm3-3b": Preset(SMOLLM3_3B, True, "the SmolLM3-3B stand-in, the benchmark's model"),
    "smollm3-tiny": Preset(SMOLLM3_TINY, True, "a 4-layer SmolLM3 stand-in, for tests"),
    "tiny": Preset(TINY, False, "a 2-layer llama with a byte-level vocabulary, for tests"),
}


def write_preset(
    path: str | Path,
    preset: str,
    *,
    file_type: str = "F16",
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the preset named `preset` to `path`; its general.name is "synthetic-NAME"."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of: {', '.join(PRESETS)}")
    chosen = PRESETS[preset]
    write = write_smollm3_standin if chosen.smollm3 else write_model
    return write(
        path,
        chosen.dims,
        file_type=file_type,
        seed=seed,
        name=f"synthetic-{preset}",
        progress=progress,
    )
