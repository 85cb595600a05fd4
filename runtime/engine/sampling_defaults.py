"""What an unset sampling parameter means on a given model.

Precedence, lowest first: our defaults (`types.DEFAULT_SAMPLING`), the
recommendation a known model publishes (`KNOWN_MODELS`), the GGUF file's own
`general.sampling.*` keys, and last what the compose file or the request sets:
the engine fills only the fields they leave unset (`fill_unset`).

llama.cpp defines the GGUF keys (`LLM_KV_GENERAL_SAMPLING_*` in
src/llama-arch.cpp; gguf-py's `Keys.General.SAMPLING_*`, which its converter
fills from a model's generation_config.json), and its common library applies
them the same way, under the options a user gave explicitly
(`common_init_sampler_from_model` in common/common.cpp). We read the keys
that map onto our samplers; the others (sampler sequence, XTC, Mirostat,
penalty window) have no counterpart here.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping

from runtime.engine.types import DEFAULT_SAMPLING, SamplingParams

logger = logging.getLogger(__name__)

# The samplers a model's defaults fill in (`seed` is per request: None is random).
SAMPLERS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty")

GGUF_KEYS = {
    "general.sampling.temp": "temperature",
    "general.sampling.top_p": "top_p",
    "general.sampling.top_k": "top_k",
    "general.sampling.min_p": "min_p",
    "general.sampling.penalty_repeat": "repeat_penalty",
}

# Models whose model card recommends settings that their GGUF builds may not
# carry, by GGUF `general.architecture` (fine-tunes share it, and usually the
# recommendation). The file's own keys still win.
KNOWN_MODELS = {
    # HuggingFaceTB/SmolLM3-3B's model card (https://huggingface.co/HuggingFaceTB/SmolLM3-3B):
    # "We recommend setting temperature=0.6 and top_p=0.95 in the sampling parameters."
    "smollm3": SamplingParams(temperature=0.6, top_p=0.95),
}


def fill_unset(params: SamplingParams, defaults: SamplingParams) -> SamplingParams:
    """`params` with each unset sampler taken from `defaults`."""
    unset = {name: getattr(defaults, name) for name in SAMPLERS if getattr(params, name) is None}
    return dataclasses.replace(params, **unset) if unset else params


def describe(params: SamplingParams) -> str:
    """The samplers that are set, for people: "temperature 0.6, top-p 0.95, ..."
    (a repeat penalty of 1, no penalty, is left out)."""
    labels = {"top_p": "top-p", "top_k": "top-k", "min_p": "min-p"}
    parts = []
    for name in SAMPLERS:
        value = getattr(params, name)
        if value is None or (name == "repeat_penalty" and value == 1.0):
            continue
        parts.append(f"{labels.get(name, name.replace('_', ' '))} {value:g}")
    return ", ".join(parts)


def model_sampling(metadata: Mapping[str, object]) -> SamplingParams:
    """Every sampler's default on the model with this GGUF metadata (as
    `GGUFInfo.metadata` or llama.cpp's strings give it)."""
    return fill_unset(recommended_sampling(metadata), DEFAULT_SAMPLING)


def recommended_sampling(metadata: Mapping[str, object]) -> SamplingParams:
    """What the model itself recommends: its known-model entry overlaid with
    its GGUF keys; unset where neither says anything."""
    known = KNOWN_MODELS.get(str(metadata.get("general.architecture")), SamplingParams())
    found: dict[str, float | int] = {}
    for key, name in GGUF_KEYS.items():
        if key not in metadata:
            continue
        value = _value(name, metadata[key])
        if value is None:
            logger.warning("ignoring the model's %s = %r: not a usable value", key, metadata[key])
        else:
            found[name] = value
    return dataclasses.replace(known, **found)


def _value(name: str, raw: object) -> float | int | None:
    """A key's value as the sampler takes it, or None when it is unusable."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    # Float32 in the file: 0.6 reads back as 0.6000000238418579.
    number = float(f"{number:.6g}")
    if name == "top_k":
        return int(number) if number.is_integer() and number >= 0 else None
    if name in ("top_p", "min_p"):
        return number if 0.0 <= number <= 1.0 else None
    if name == "repeat_penalty":
        return number if number > 0.0 else None
    return number if number >= 0.0 else None  # temperature
