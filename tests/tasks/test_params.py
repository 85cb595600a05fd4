"""Transformers-style `params` → llama.cpp sampling, token limits and stops."""

from __future__ import annotations

import pytest

from runtime.engine.types import SamplingParams
from runtime.errors import InputError
from runtime.tasks.params import IGNORED_PARAMS, check_param_names, generation_settings


def test_no_params_leaves_every_sampler_to_the_models_defaults():
    settings = generation_settings({})
    assert settings.sampling == SamplingParams()  # all unset: the engine fills them
    assert settings.max_tokens is None
    assert settings.max_length is None
    assert settings.stop == ()
    assert settings.num_return_sequences == 1
    assert settings.return_full_text is True


def test_temperature_top_p_and_top_k_pass_through():
    sampling = generation_settings({"temperature": 0.7, "top_p": 0.9, "top_k": 50}).sampling
    assert (sampling.temperature, sampling.top_p, sampling.top_k) == (0.7, 0.9, 50)
    assert sampling.greedy is False


def test_min_p_passes_through():
    assert generation_settings({"min_p": 0.1}).sampling.min_p == 0.1


def test_repetition_penalty_becomes_the_repeat_penalty():
    assert generation_settings({"repetition_penalty": 1.1}).sampling.repeat_penalty == 1.1


def test_llama_cpps_own_repeat_penalty_name_is_accepted():
    assert generation_settings({"repeat_penalty": 1.3}).sampling.repeat_penalty == 1.3


def test_do_sample_false_means_greedy():
    assert generation_settings({"do_sample": False}).sampling.greedy is True


def test_do_sample_false_wins_over_a_temperature():
    assert generation_settings({"do_sample": False, "temperature": 0.9}).sampling.greedy is True


def test_do_sample_true_samples():
    assert generation_settings({"do_sample": True, "temperature": 0.7}).sampling.greedy is False


def test_a_temperature_of_zero_means_greedy():
    assert generation_settings({"temperature": 0}).sampling.greedy is True


@pytest.mark.parametrize("name", ["max_output_length", "max_new_tokens", "max_tokens"])
def test_every_output_length_name_sets_the_max_tokens(name):
    settings = generation_settings({name: 64})
    assert settings.max_tokens == 64
    assert settings.max_length is None


def test_the_actions_own_max_output_length_wins_over_params():
    settings = generation_settings({"max_output_length": 64, "max_new_tokens": 32}, 16)
    assert settings.max_tokens == 16


def test_max_output_length_in_params_wins_over_max_new_tokens():
    assert generation_settings({"max_new_tokens": 32, "max_output_length": 64}).max_tokens == 64


def test_max_length_caps_prompt_and_output_together():
    settings = generation_settings({"max_length": 2048})
    assert settings.max_length == 2048
    assert settings.max_tokens is None


def test_seed_passes_through():
    assert generation_settings({"seed": 42}).sampling.seed == 42


def test_stop_takes_a_string_or_a_list():
    assert generation_settings({"stop": "\n\n"}).stop == ("\n\n",)
    assert generation_settings({"stop": ["a", "b"]}).stop == ("a", "b")


def test_stops_from_the_action_and_params_are_merged_without_duplicates():
    settings = generation_settings(
        {"stop": ["END", "###"], "stop_sequences": "###"}, stop_sequences=["User:", "END"]
    )
    assert settings.stop == ("User:", "END", "###")


def test_empty_stop_strings_are_dropped():
    assert generation_settings({"stop": ["", "x"]}).stop == ("x",)


def test_numbers_written_as_strings_are_accepted():
    # `${input.temperature}` from a form or a query string arrives as text.
    settings = generation_settings(
        {"temperature": "0.5", "top_k": "20", "max_new_tokens": "12", "do_sample": "false"}
    )
    assert settings.sampling.temperature == 0.5
    assert settings.sampling.top_k == 20
    assert settings.max_tokens == 12
    assert settings.sampling.greedy is True


def test_a_whole_float_is_accepted_as_an_integer():
    assert generation_settings({"top_k": 40.0}).sampling.top_k == 40


def test_a_null_value_means_not_set():
    # `${input.seed}` left out renders null.
    settings = generation_settings({"seed": None, "temperature": None})
    assert settings.sampling.seed is None
    assert settings.sampling.temperature is None
    assert settings.sampling.greedy is False


def test_do_sample_alone_samples_with_the_models_defaults():
    assert generation_settings({"do_sample": True}).sampling == SamplingParams()


def test_num_return_sequences_and_return_full_text_are_read():
    settings = generation_settings({"num_return_sequences": 3, "return_full_text": False})
    assert settings.num_return_sequences == 3
    assert settings.return_full_text is False


# -- names -----------------------------------------------------------------------


def test_names_without_meaning_on_llama_cpp_are_reported_as_ignored():
    ignored, unknown = check_param_names(
        {"pad_token_id": 50256, "num_beams": 4, "early_stopping": True, "temperature": 0.7}
    )
    assert ignored == ["early_stopping", "num_beams", "pad_token_id"]
    assert unknown == []


def test_ignored_names_do_not_change_the_settings():
    ignored = {"pad_token_id": 50256, "num_beams": 4, "early_stopping": True}
    assert generation_settings(ignored) == generation_settings({})


def test_unknown_names_are_reported_sorted():
    ignored, unknown = check_param_names({"temprature": 0.7, "max_output_lenght": 10, "top_p": 1})
    assert ignored == []
    assert unknown == ["max_output_lenght", "temprature"]


def test_every_name_in_the_compatibility_list_is_known():
    names = [
        "temperature",
        "top_p",
        "top_k",
        "repetition_penalty",
        "do_sample",
        "max_output_length",
        "max_new_tokens",
        "max_length",
        "seed",
        "stop",
    ]
    assert check_param_names(dict.fromkeys(names, 1)) == ([], [])


def test_the_documented_ignored_names_are_ignored():
    assert {"pad_token_id", "num_beams", "early_stopping"} <= IGNORED_PARAMS


# -- bad values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": "hot"}, "params.temperature must be a number, got 'hot'"),
        ({"temperature": True}, "params.temperature must be a number, got True"),
        ({"top_p": [0.9]}, "params.top_p must be a number, got [0.9]"),
        ({"repetition_penalty": {}}, "params.repetition_penalty must be a number, got {}"),
        ({"top_k": 1.5}, "params.top_k must be a whole number, got 1.5"),
        ({"seed": "abc"}, "params.seed must be a number, got 'abc'"),
        ({"seed": "inf"}, "params.seed must be a number, got 'inf'"),
        ({"max_new_tokens": float("nan")}, "params.max_new_tokens must be a number, got nan"),
        ({"temperature": "nan"}, "params.temperature must be a number, got 'nan'"),
        ({"do_sample": "maybe"}, "params.do_sample must be true or false, got 'maybe'"),
        ({"do_sample": 2}, "params.do_sample must be true or false, got 2"),
        ({"max_new_tokens": 0}, "max_output_length must be at least 1, got 0"),
        ({"max_length": 0}, "max_length must be at least 1, got 0"),
        ({"num_return_sequences": 0}, "num_return_sequences must be at least 1, got 0"),
        ({"stop": 5}, "stop sequences must be a string or a list of strings, got 5"),
        ({"stop": ["a", 1]}, "stop sequences must be a string or a list of strings, got ['a', 1]"),
    ],
)
def test_a_bad_value_is_an_input_error_that_says_what_is_wrong(params, message):
    with pytest.raises(InputError) as error:
        generation_settings(params)
    assert str(error.value) == message


def test_a_bad_value_error_names_the_parameter():
    with pytest.raises(InputError) as error:
        generation_settings({"top_p": "high"})
    assert error.value.name == "top_p"


def test_a_bad_max_output_length_on_the_action_is_an_input_error():
    with pytest.raises(InputError, match="max_output_length must be at least 1, got -5"):
        generation_settings({}, max_output_length=-5)
    with pytest.raises(InputError, match="must be a number, got 'lots'"):
        generation_settings({}, max_output_length="lots")


def test_bad_stop_sequences_on_the_action_are_an_input_error():
    with pytest.raises(InputError, match="stop sequences must be a string or a list of strings"):
        generation_settings({}, stop_sequences={"x": 1})


def test_a_bad_max_output_length_on_the_action_is_not_called_a_param():
    with pytest.raises(InputError) as error:
        generation_settings({}, max_output_length="lots")
    assert str(error.value) == "max_output_length must be a number, got 'lots'"
