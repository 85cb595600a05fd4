"""Transformers-style generation `params` → llama.cpp sampling settings.

Model-compose files are written for transformers, so they say
`repetition_penalty`, `do_sample`, `max_new_tokens`... We map every name that
has a meaning on llama.cpp, warn once at load about names that have none
(`pad_token_id`, `num_beams`...), and reject anything else as a typo.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime.engine.types import SamplingParams
from runtime.errors import InputError

FLOAT_PARAMS = {"temperature", "top_p", "min_p", "repetition_penalty", "repeat_penalty"}
INT_PARAMS = {
    "top_k",
    "max_output_length",
    "max_new_tokens",
    "max_tokens",
    "max_length",
    "seed",
    "num_return_sequences",
}
BOOL_PARAMS = {"do_sample", "return_full_text"}
STOP_PARAMS = {"stop", "stop_sequences"}
KNOWN_PARAMS = FLOAT_PARAMS | INT_PARAMS | BOOL_PARAMS | STOP_PARAMS

# Meaningful to transformers' generate(), meaningless to llama.cpp sampling.
IGNORED_PARAMS = {
    "pad_token_id",
    "eos_token_id",
    "bos_token_id",
    "decoder_start_token_id",
    "num_beams",
    "num_beam_groups",
    "early_stopping",
    "length_penalty",
    "diversity_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "encoder_repetition_penalty",
    "use_cache",
    "typical_p",
    "epsilon_cutoff",
    "eta_cutoff",
    "penalty_alpha",
    "min_length",
    "min_new_tokens",
    "bad_words_ids",
    "force_words_ids",
    "renormalize_logits",
    "output_scores",
    "output_attentions",
    "output_hidden_states",
    "return_dict_in_generate",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "remove_invalid_values",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
    "guidance_scale",
    "low_memory",
    "num_assistant_tokens",
    "prompt_lookup_num_tokens",
    "max_time",
    "truncation",
    "padding",
    "clean_up_tokenization_spaces",
}


@dataclass(frozen=True)
class GenerationSettings:
    sampling: SamplingParams
    max_tokens: int | None
    max_length: int | None
    stop: tuple[str, ...]
    num_return_sequences: int = 1
    return_full_text: bool = True


def check_param_names(params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(ignored names to warn about, unknown names to reject), sorted."""
    ignored = sorted(name for name in params if name in IGNORED_PARAMS)
    unknown = sorted(name for name in params if name not in KNOWN_PARAMS | IGNORED_PARAMS)
    return ignored, unknown


def _input_name(label: str) -> str:
    """`params.top_p` → `top_p`: errors show where, `InputError.name` says what."""
    return label.removeprefix("params.")


def _float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number, got {value!r}", _input_name(name))
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond any float
        raise InputError(f"{name} must be a number, got {value!r}", _input_name(name)) from None
    if not math.isfinite(number):
        # float() accepts "inf" and "nan"; int() of them raises a non-user error.
        raise InputError(f"{name} must be a number, got {value!r}", _input_name(name))
    return number


def _int(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # exact at any size: a huge max_output_length is clamped, not refused
    number = _float(name, value)
    if number != int(number):
        raise InputError(f"{name} must be a whole number, got {value!r}", _input_name(name))
    return int(number)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InputError(f"{name} must be true or false, got {value!r}", _input_name(name))


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v)
    raise InputError(f"stop sequences must be a string or a list of strings, got {value!r}")


def reasoning_budget(value: Any) -> int | None:
    """A rendered `reasoning_budget`: a whole number of tokens, 0 or more; None: not set."""
    if value is None:
        return None
    budget = _int("reasoning_budget", value)
    if budget < 0:
        raise InputError(f"reasoning_budget must be 0 or more, got {budget}", "reasoning_budget")
    return budget


def generation_settings(
    params: Mapping[str, Any],
    max_output_length: Any = None,
    stop_sequences: Any = None,
) -> GenerationSettings:
    """Rendered params (+ the action's own fields) → settings for the engine."""
    values: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
    floats = {k: _float(f"params.{k}", values[k]) for k in FLOAT_PARAMS if k in values}
    ints = {k: _int(f"params.{k}", values[k]) for k in INT_PARAMS if k in values}
    bools = {k: _bool(f"params.{k}", values[k]) for k in BOOL_PARAMS if k in values}
    # What the params leave out stays unset: the engine fills it with the
    # model's own defaults (engine.sampling_defaults).
    temperature = floats.get("temperature")
    greedy = bools.get("do_sample") is False or (temperature is not None and temperature <= 0.0)
    sampling = SamplingParams(
        temperature=temperature,
        top_p=floats.get("top_p"),
        top_k=ints.get("top_k"),
        min_p=floats.get("min_p"),
        repeat_penalty=floats.get("repetition_penalty", floats.get("repeat_penalty")),
        seed=ints.get("seed"),
        greedy=greedy,
    )
    max_tokens = None if max_output_length is None else _int("max_output_length", max_output_length)
    for name in ("max_output_length", "max_new_tokens", "max_tokens"):
        if max_tokens is None and name in ints:
            max_tokens = ints[name]
    for name, limit in (("max_output_length", max_tokens), ("max_length", ints.get("max_length"))):
        if limit is not None and limit < 1:
            raise InputError(f"{name} must be at least 1, got {limit}", name)
    stop = (
        _stops(stop_sequences) + _stops(values.get("stop")) + _stops(values.get("stop_sequences"))
    )
    count = ints.get("num_return_sequences", 1)
    if count < 1:
        raise InputError(f"num_return_sequences must be at least 1, got {count}")
    return GenerationSettings(
        sampling=sampling,
        max_tokens=max_tokens,
        max_length=ints.get("max_length"),
        stop=tuple(dict.fromkeys(stop)),
        num_return_sequences=count,
        return_full_text=bools.get("return_full_text", True),
    )
