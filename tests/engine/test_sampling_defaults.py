"""A model's sampling defaults: ours, a known model's recommendation, the
GGUF file's `general.sampling.*` keys, and explicit settings over all three."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import pytest

from convert.synthetic import write_llama_gguf
from runtime.engine.batched import BatchedEngine
from runtime.engine.llama.backend import Backend
from runtime.engine.llama.sampler import Sampler
from runtime.engine.sampling_defaults import (
    describe,
    fill_unset,
    model_sampling,
    recommended_sampling,
)
from runtime.engine.types import DEFAULT_SAMPLING, GenerationRequest, ModelSpec, SamplingParams


def test_a_model_that_recommends_nothing_gets_the_global_defaults() -> None:
    metadata = {"general.architecture": "llama", "general.name": "x"}
    assert recommended_sampling(metadata) == SamplingParams()
    global_defaults = model_sampling(metadata)
    assert global_defaults == DEFAULT_SAMPLING
    assert global_defaults == SamplingParams(
        temperature=0.8, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0
    )


def test_smollm3_gets_its_model_cards_temperature_and_top_p() -> None:
    defaults = model_sampling({"general.architecture": "smollm3"})
    assert (defaults.temperature, defaults.top_p) == (0.6, 0.95)
    assert (defaults.top_k, defaults.min_p, defaults.repeat_penalty) == (40, 0.05, 1.0)


def test_the_gguf_keys_win_over_the_known_model_table() -> None:
    # As GGUFInfo reads them (float32) and as llama.cpp prints them (strings).
    typed = {"general.architecture": "smollm3", "general.sampling.temp": 0.699999988079071}
    printed = {"general.architecture": "smollm3", "general.sampling.temp": "0.700000"}
    for metadata in (typed, printed):
        assert recommended_sampling(metadata) == SamplingParams(temperature=0.7, top_p=0.95)


def test_every_key_that_maps_onto_a_sampler_is_read() -> None:
    metadata = {
        "general.sampling.temp": 1.0,
        "general.sampling.top_p": 0.8,
        "general.sampling.top_k": 20,
        "general.sampling.min_p": 0.0,
        "general.sampling.penalty_repeat": 1.1,
        "general.sampling.mirostat": 2,  # no such sampler here: ignored
    }
    assert model_sampling(metadata) == SamplingParams(
        temperature=1.0, top_p=0.8, top_k=20, min_p=0.0, repeat_penalty=1.1
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("general.sampling.top_p", 1.5),
        ("general.sampling.temp", "warm"),
        ("general.sampling.temp", float("nan")),
        ("general.sampling.top_k", 2.5),
        ("general.sampling.penalty_repeat", 0),
        ("general.sampling.min_p", True),
    ],
)
def test_an_unusable_value_is_ignored_with_a_warning(
    key: str, value: object, caplog: pytest.LogCaptureFixture
) -> None:
    assert model_sampling({key: value}) == DEFAULT_SAMPLING
    assert key in caplog.text


def test_explicit_settings_win_and_only_unset_ones_are_filled() -> None:
    given = SamplingParams(temperature=1.2, seed=7, greedy=True)
    filled = fill_unset(given, model_sampling({"general.architecture": "smollm3"}))
    assert filled == SamplingParams(
        temperature=1.2, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0, seed=7, greedy=True
    )
    assert fill_unset(SamplingParams(seed=None), DEFAULT_SAMPLING).seed is None


def test_the_defaults_read_as_people_write_them() -> None:
    assert describe(model_sampling({"general.architecture": "smollm3"})) == (
        "temperature 0.6, top-p 0.95, top-k 40, min-p 0.05"
    )
    assert describe(SamplingParams(top_k=0, repeat_penalty=1.1)) == "top-k 0, repeat penalty 1.1"


def with_sampling(writer: gguf.GGUFWriter) -> None:
    writer.add_sampling_temp(0.7)
    writer.add_sampling_top_p(0.8)
    writer.add_sampling_top_k(20)


@pytest.fixture(scope="module")
def recommending_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose GGUF file recommends sampling settings."""
    path = tmp_path_factory.mktemp("sampling") / "recommending.gguf"
    return write_llama_gguf(path, n_layers=1, extra_metadata=with_sampling)


@pytest.fixture(scope="module")
def recommending(recommending_path: Path) -> Iterator[Backend]:
    backend = Backend.load(ModelSpec(str(recommending_path), n_ctx=64))
    yield backend
    backend.close()


def test_a_gguf_that_recommends_settings_gets_them_for_what_is_unset(
    recommending: Backend,
) -> None:
    expected = SamplingParams(temperature=0.7, top_p=0.8, top_k=20, min_p=0.05, repeat_penalty=1.0)
    assert recommending.info.sampling == expected
    with recommending.new_sampler(SamplingParams()) as sampler:
        assert sampler.params == expected


def test_an_explicit_setting_wins_over_the_gguf(recommending: Backend) -> None:
    with recommending.new_sampler(SamplingParams(temperature=1.1, greedy=True)) as sampler:
        assert sampler.params.temperature == 1.1
        assert sampler.params.top_k == 20
        assert sampler.params.greedy


def test_a_gguf_without_recommendations_gets_the_global_defaults(tmp_path: Path) -> None:
    backend = Backend.load(ModelSpec(str(write_llama_gguf(tmp_path / "m.gguf", n_layers=1))))
    try:
        assert backend.info.sampling == DEFAULT_SAMPLING
        with backend.new_sampler(SamplingParams()) as sampler:
            assert sampler.params == DEFAULT_SAMPLING
    finally:
        backend.close()


async def test_a_generation_samples_with_the_requests_settings_over_the_models(
    recommending_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = BatchedEngine.load(ModelSpec(str(recommending_path), n_ctx=64))
    used: list[SamplingParams] = []
    new_sampler = engine.model.new_sampler

    def spy(params: SamplingParams, grammar: str | None = None) -> Sampler:
        sampler = new_sampler(params, grammar)
        used.append(sampler.params)
        return sampler

    monkeypatch.setattr(engine.model, "new_sampler", spy)
    try:
        request = GenerationRequest(
            prompt="Once", sampling=SamplingParams(top_p=0.5, seed=1), max_tokens=2
        )
        await engine.submit(request).result()
    finally:
        await engine.close()
    assert used == [
        SamplingParams(temperature=0.7, top_p=0.5, top_k=20, min_p=0.05, repeat_penalty=1.0, seed=1)
    ]
