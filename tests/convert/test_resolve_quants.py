"""Which file of a GGUF repository is used: quant names in file names, the
default quant and its fallbacks, split sets (convert/quants.py; no network)."""

from __future__ import annotations

import pytest

from convert.quants import QUANT_FALLBACK_ORDER, choose_build, find_builds, quant_of
from runtime.errors import ModelUnavailableError


@pytest.mark.parametrize(
    ("filename", "quant"),
    [
        ("SmolLM3-Q4_K_M.gguf", "Q4_K_M"),
        ("HuggingFaceTB_SmolLM3-3B-Q4_K_S.gguf", "Q4_K_S"),
        ("zephyr-7b-beta.Q4_K_M.gguf", "Q4_K_M"),
        ("smollm2-1.7b-instruct-q4_k_m.gguf", "Q4_K_M"),
        ("SmolLM3-f16.gguf", "F16"),
        ("SmolLM3-3B-bf16.gguf", "BF16"),
        ("Qwen3-30B-A3B-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ("SmolLM2-360M-Instruct-IQ4_XS.gguf", "IQ4_XS"),
        ("SmolLM2-360M-Instruct-Q4_0_4_4.gguf", "Q4_0_4_4"),
        ("Llama-3.3-70B-Q8_0-00001-of-00002.gguf", "Q8_0"),
        ("Q5_K_M/Llama-3.3-70B-00001-of-00002.gguf", "Q5_K_M"),
        ("model.gguf", None),
        ("Qwen2-7B.gguf", None),
    ],
)
def test_the_quant_is_read_from_the_file_name(filename: str, quant: str | None) -> None:
    assert quant_of(filename) == quant


def builds(*names: str, sizes: dict[str, int] | None = None):
    return find_builds((name, (sizes or {}).get(name)) for name in names)


def choose(*names: str, **options) -> tuple[str, str]:
    sizes = options.pop("sizes", None)
    build, why = choose_build(builds(*names, sizes=sizes), "o/r-GGUF", **options)
    return build.filename, why


def test_the_default_quant_is_q4_k_m() -> None:
    assert choose("SmolLM3-Q8_0.gguf", "SmolLM3-Q4_K_M.gguf", "SmolLM3-f16.gguf") == (
        "SmolLM3-Q4_K_M.gguf",
        "Q4_K_M, the default quant",
    )


def test_the_fallback_order_is_documented_in_one_constant() -> None:
    assert QUANT_FALLBACK_ORDER == ("Q4_K_M", "Q4_K_S", "Q4_0", "Q5_K_M", "Q8_0")


@pytest.mark.parametrize(
    ("names", "chosen", "why"),
    [
        (
            ("m-Q8_0.gguf", "m-Q4_K_S.gguf", "m-Q4_0.gguf"),
            "m-Q4_K_S.gguf",
            "Q4_K_S; the repository has no Q4_K_M file",
        ),
        (
            ("m-Q8_0.gguf", "m-Q5_K_M.gguf", "m-Q4_0.gguf"),
            "m-Q4_0.gguf",
            "Q4_0; the repository has no Q4_K_M or Q4_K_S file",
        ),
        (
            ("m-Q8_0.gguf", "m-F16.gguf"),
            "m-Q8_0.gguf",
            "Q8_0; the repository has no Q4_K_M, Q4_K_S, Q4_0 or Q5_K_M file",
        ),
    ],
)
def test_without_the_default_quant_the_next_in_the_fallback_order_is_used(
    names: tuple[str, ...], chosen: str, why: str
) -> None:
    assert choose(*names) == (chosen, why)


def test_with_none_of_the_fallbacks_the_smallest_file_is_used() -> None:
    sizes = {"m-IQ3_M.gguf": 300, "m-Q6_K.gguf": 500, "m-F16.gguf": 1000}
    assert choose(*sizes, sizes=sizes) == (
        "m-IQ3_M.gguf",
        "IQ3_M, its smallest file; the repository has none of Q4_K_M, Q4_K_S, Q4_0, Q5_K_M, Q8_0",
    )


def test_a_quant_asked_for_is_matched_case_insensitively() -> None:
    names = ("smollm2-q4_k_m.gguf", "smollm2-q8_0.gguf")
    assert choose(*names, quant="q8_0") == ("smollm2-q8_0.gguf", "Q8_0, as asked")


def test_a_missing_quant_lists_the_quants_there_are_smallest_first() -> None:
    sizes = {"SmolLM3-f16.gguf": 6000, "SmolLM3-Q8_0.gguf": 3000, "SmolLM3-Q4_K_M.gguf": 1900}
    with pytest.raises(ModelUnavailableError) as error:
        choose(*sizes, sizes=sizes, quant="Q5_K_M")
    assert str(error.value) == ("o/r-GGUF has no Q5_K_M file; available quants: Q4_K_M, Q8_0, F16")


def test_projector_and_importance_matrix_files_are_not_models() -> None:
    names = ("mmproj-SmolVLM-Q8_0.gguf", "SmolVLM-Q8_0.gguf", "imatrix.gguf", "README.md")
    assert [b.filename for b in builds(*names)] == ["SmolVLM-Q8_0.gguf"]


def test_a_split_model_is_one_build_with_its_parts_in_order() -> None:
    names = (
        "big-Q4_K_M-00003-of-00003.gguf",
        "big-Q4_K_M-00001-of-00003.gguf",
        "big-Q4_K_M-00002-of-00003.gguf",
        "big-Q8_0-00001-of-00002.gguf",
        "big-Q8_0-00002-of-00002.gguf",
    )
    sizes = dict.fromkeys(names, 10)
    build, why = choose_build(builds(*names, sizes=sizes), "o/big-GGUF")
    assert build.parts == (
        "big-Q4_K_M-00001-of-00003.gguf",
        "big-Q4_K_M-00002-of-00003.gguf",
        "big-Q4_K_M-00003-of-00003.gguf",
    )
    assert (build.quant, build.size) == ("Q4_K_M", 30)
    assert why == "Q4_K_M, the default quant; split in 3 parts"


def test_an_incomplete_split_set_is_left_out() -> None:
    names = ("big-Q4_K_M-00001-of-00002.gguf", "big-Q8_0.gguf")
    assert choose(*names) == ("big-Q8_0.gguf", "Q8_0, its only model file")


def test_split_parts_in_a_quant_folder() -> None:
    names = ("Q5_K_M/big-00001-of-00002.gguf", "Q5_K_M/big-00002-of-00002.gguf")
    build, _ = choose_build(builds(*names), "o/big-GGUF", quant="Q5_K_M")
    assert build.parts == names


def test_an_explicit_file_wins_over_the_quant() -> None:
    names = ("m-Q4_K_M.gguf", "m-Q8_0.gguf")
    assert choose(*names, quant="Q4_K_M", filename="m-Q8_0.gguf") == (
        "m-Q8_0.gguf",
        "Q8_0, as named",
    )


def test_naming_a_later_part_of_a_split_model_gives_the_whole_set() -> None:
    names = ("big-00001-of-00002.gguf", "big-00002-of-00002.gguf")
    build, _ = choose_build(builds(*names), "o/big-GGUF", filename="big-00002-of-00002.gguf")
    assert build.parts == names


def test_an_unknown_file_name_lists_the_files_there_are() -> None:
    with pytest.raises(ModelUnavailableError) as error:
        choose("m-Q4_K_M.gguf", "m-Q8_0.gguf", filename="m-Q2_K.gguf")
    assert str(error.value) == (
        "o/r-GGUF has no GGUF file named m-Q2_K.gguf; its GGUF files: m-Q4_K_M.gguf, m-Q8_0.gguf"
    )


def test_a_repository_whose_only_file_names_no_quant_uses_it() -> None:
    assert choose("model.gguf") == ("model.gguf", "unknown quant, its only model file")
